"""The lake: storage addressed by URL (`file://`, `s3://`, `gs://`) through fsspec.

Every write is atomic for readers: a local file is written beside its target and renamed into
place; an object store receives the whole object in one PUT, so a reader sees the old object
or the new one, never half. Each partition of a layer is exactly one object, so a partition
is replaced atomically too.
"""

from __future__ import annotations

import contextlib
import glob as globmod
import io
import json
import os
import posixpath
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from contracts import lake as lake_contract


class LakeError(Exception):
    """A lake URL that cannot be used, with what is wrong."""


WORKERS = 4
"""Objects read or written at once: fsync, object-store round trips and Parquet coding all
release the GIL, so a few threads keep both the disk or network and the cores busy."""

LAYERS = lake_contract.LAYERS
"""The lake's layers: each may live in its own bucket (`DEX_LAKE_<LAYER>_URL`)."""


def _root(url: str) -> tuple[str, str]:
    """(protocol, root path) of a lake URL."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return "file", os.path.abspath(parsed.path if parsed.scheme else url)
    if parsed.scheme in ("s3", "gs"):
        if not parsed.netloc:
            raise LakeError(f"lake URL {url!r} names no bucket")
        return parsed.scheme, f"{parsed.netloc}{parsed.path}".rstrip("/")
    raise LakeError(f"lake URL {url!r}: scheme must be file://, s3:// or gs://")


class Lake:
    """A root URL and the filesystem behind it.

    Paths are addressed relative to the lake, first segment the layer (`raw/weather/...`).
    On one machine every layer is a folder under one root; in the cloud each layer is its own
    bucket: `layer_urls` maps a layer to its root, and everything else (quarantine, run state,
    reports) stays under `url`. All roots must share one scheme."""

    def __init__(
        self,
        url: str,
        storage_options: Mapping[str, Any] | None = None,
        layer_urls: Mapping[str, str] | None = None,
    ) -> None:
        self.protocol, self.root = _root(url)
        self.layer_roots: dict[str, str] = {}
        for layer, layer_url in sorted((layer_urls or {}).items()):
            protocol, root = _root(layer_url)
            if protocol != self.protocol:
                raise LakeError(
                    f"layer {layer!r} at {layer_url!r} uses {protocol}:// but the lake "
                    f"{url!r} uses {self.protocol}://; all layers must share one scheme"
                )
            self.layer_roots[layer] = root
        self.url = url.rstrip("/")
        self.fs = fsspec.filesystem(self.protocol, **dict(storage_options or {}))

    def _join(self, *parts: str) -> str:
        return posixpath.join(*parts) if self.protocol != "file" else os.path.join(*parts)

    def path(self, *parts: str) -> str:
        rel = posixpath.join(*parts) if parts else ""
        layer, _, rest = rel.partition("/")
        if layer in self.layer_roots:
            return self._join(self.layer_roots[layer], *([rest] if rest else []))
        return self._join(self.root, *parts)

    def _relative(self, found: str) -> str:
        """A filesystem path back to the lake-relative form `path` accepts."""
        for layer, root in self.layer_roots.items():
            prefix = root.rstrip("/") + "/"
            if found.startswith(prefix):
                return f"{layer}/{found[len(prefix) :]}"
        prefix = self.root.rstrip("/") + "/"
        return found[len(prefix) :] if found.startswith(prefix) else found

    def uri(self, *parts: str) -> str:
        """A full URL for lineage and reports."""
        if self.protocol == "file":
            return "file://" + self.path(*parts)
        return f"{self.protocol}://{self.path(*parts)}"

    # -- reads ---------------------------------------------------------------------------------
    def exists(self, *parts: str) -> bool:
        return bool(self.fs.exists(self.path(*parts)))

    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open(self.path(*parts), "rb") as fh:
            return fh.read()  # type: ignore[no-any-return]

    def read_json(self, *parts: str, default: Any = None) -> Any:
        if not self.exists(*parts):
            return default
        return json.loads(self.read_bytes(*parts))

    def read_parquet(self, *parts: str) -> pa.Table:
        return _decode(self.read_bytes(*parts))

    def read_many(self, rels: Sequence[str]) -> list[bytes]:
        """The bytes of many lake-relative paths, in order: concurrent GETs on an object store
        (one round trip each would dominate a run of many small objects)."""
        found = self.read_many_or_none(rels)
        for rel, data in zip(rels, found, strict=True):
            if data is None:
                raise FileNotFoundError(self.path(rel))
        return found  # type: ignore[return-value]

    def read_many_or_none(self, rels: Sequence[str]) -> list[bytes | None]:
        """`read_many`, with None for a path that does not exist."""
        paths = [self.path(rel) for rel in rels]
        if not paths:
            return []
        out: list[bytes | None] = []
        if self.protocol == "file":
            for p in paths:
                try:
                    with open(p, "rb") as fh:
                        out.append(fh.read())
                except FileNotFoundError:
                    out.append(None)
            return out
        found = self.fs.cat(paths, on_error="return")
        for p in paths:
            data = found.get(p, FileNotFoundError(p))
            if isinstance(data, FileNotFoundError):
                out.append(None)
            elif isinstance(data, BaseException):
                raise data
            else:
                out.append(data)
        return out

    def read_parquet_many(
        self, rels: Sequence[str], columns: Sequence[str] | None = None
    ) -> list[pa.Table]:
        """Many Parquet objects (only `columns`, if given), fetched together and decoded on a
        few threads."""
        blobs = self.read_many(rels)
        with ThreadPoolExecutor(WORKERS) as pool:
            return list(pool.map(lambda data: _decode(data, columns), blobs))

    def parquet_rows(self, *parts: str) -> int:
        """Rows of a Parquet object, from its footer (the data is not read)."""
        with self.fs.open(self.path(*parts), "rb") as fh:
            return int(pq.ParquetFile(fh).metadata.num_rows)

    def glob(self, pattern: str) -> list[str]:
        """Paths relative to the root matching `pattern`, sorted."""
        if self.protocol == "file":  # the standard library's glob: fsspec's costs far more
            found = globmod.glob(self.path(pattern))
        else:
            found = self.fs.glob(self.path(pattern))
        out = []
        for found_path in found:
            p = os.path.abspath(str(found_path)) if self.protocol == "file" else str(found_path)
            out.append(self._relative(p))
        return sorted(out)

    # -- writes --------------------------------------------------------------------------------
    def write_bytes(self, data: bytes, *parts: str) -> str:
        target = self.path(*parts)
        if self.protocol == "file":
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = f"{target}.tmp-{uuid.uuid4().hex}"
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(tmp)  # a failed write leaves nothing behind
                raise
        else:
            self.fs.pipe_file(target, data)  # one PUT: the object appears whole or not at all
        return target

    def write_json(self, value: Any, *parts: str) -> str:
        return self.write_bytes(
            (json.dumps(value, indent=2, sort_keys=True, default=str) + "\n").encode(), *parts
        )

    def write_parquet(self, table: pa.Table, *parts: str) -> str:
        buf = io.BytesIO()
        # Fixed settings and no writer-time metadata: the same rows give the same bytes.
        pq.write_table(
            table,
            buf,
            compression="zstd",
            use_dictionary=True,
            write_statistics=True,
            store_schema=True,
        )
        return self.write_bytes(buf.getvalue(), *parts)

    def write_parquet_many(self, items: Sequence[tuple[pa.Table, tuple[str, ...]]]) -> list[str]:
        """Write many (table, path parts) at once, each atomically as `write_parquet` does.
        If one fails, the exception is raised after the others finished: every object is
        either whole or untouched, and the caller has not recorded any of them yet."""
        with ThreadPoolExecutor(WORKERS) as pool:  # not pool.map: it cancels the rest on error
            futures = [pool.submit(self.write_parquet, table, *parts) for table, parts in items]
        for future in futures:
            error = future.exception()
            if error is not None:
                raise error
        return [future.result() for future in futures]

    def delete(self, *parts: str) -> None:
        if self.exists(*parts):
            self.fs.rm(self.path(*parts), recursive=True)


def _decode(data: bytes, columns: Sequence[str] | None = None) -> pa.Table:
    """A Parquet object as a table (the file reader: `pq.read_table` goes through the dataset
    layer, which costs more than the decoding for a small partition)."""
    return pq.ParquetFile(pa.BufferReader(data)).read(columns=columns)


def storage_options_from_env() -> dict[str, Any]:
    """S3-compatible endpoints (moto, MinIO) through `DEX_S3_ENDPOINT_URL`."""
    endpoint = os.environ.get(lake_contract.S3_ENDPOINT_ENV) or os.environ.get("AWS_ENDPOINT_URL")
    return {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}


def layer_urls_from_env() -> dict[str, str]:
    """Per-layer roots from `DEX_LAKE_RAW_URL`, `DEX_LAKE_BRONZE_URL`, ... (set in the cluster,
    where each layer is its own bucket)."""
    out = {}
    for layer in LAYERS:
        value = os.environ.get(lake_contract.layer_url_env(layer), "").strip()
        if value:
            out[layer] = value
    return out


def open_lake(url: str, *, layered: bool = True) -> Lake:
    """The lake at `url`; with `layered`, layers the environment puts in their own buckets
    are read and written there."""
    scheme = urlparse(url).scheme
    return Lake(
        url,
        storage_options_from_env() if scheme == "s3" else None,
        layer_urls_from_env() if layered else None,
    )
