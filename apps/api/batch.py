"""A batch of validated feature rows, as rows and as columns.

The rows are what every consumer of a request's rows takes (the prediction log, the shadow
queue, `LoadedModel.predict`): dicts, each what `FeatureRow.model_dump()` gives. The columns are
the same values the way the model wants them: one numpy array per numeric field (NaN where the
row says null), a list for any other field. `apps.api.rows` builds both in one pass; the model
then reads a matrix instead of walking dicts.

Only numpy here: the training image (which scores with `LoadedModel`) has no FastAPI.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np


class Rows(Sequence[dict[str, Any]]):
    """Validated rows (a sequence of dicts) that also carry their values as columns.

    Built from columns, the dicts are made only when somebody reads a row: the prediction
    path (the model, the log, the answer) reads the columns alone, and a 1,000-row batch then
    never pays for 1,000 dicts. Read-only."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(
        self,
        records: Iterable[dict[str, Any]] | None,
        columns: Mapping[str, Any],
        values: Mapping[str, list[Any]] | None = None,
    ) -> None:
        """`records`, or `values` (field -> its validated values, in row order) to make them
        from when first read."""
        self.columns: dict[str, Any] = dict(columns)
        """Field name -> its values in row order: a float64 array (NaN for null) for a numeric
        field, a list otherwise."""
        self._records = list(records) if records is not None else None
        self._values = dict(values or {})
        if self._records is None and not self._values:
            raise ValueError("Rows needs its records or its values")
        self._length = (
            len(self._records)
            if self._records is not None
            else len(next(iter(self._values.values())))
        )

    @property
    def field_values(self) -> dict[str, list[Any]]:
        """Field name -> its values in row order, as plain Python values (None for null)."""
        if not self._values:
            names = list(self.records[0]) if self.records else []
            self._values = {n: [r[n] for r in self.records] for n in names}
        return self._values

    @property
    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts (`FeatureRow.model_dump()`'s), made once."""
        if self._records is None:
            names = list(self._values)
            self._records = [
                dict(zip(names, v, strict=True)) for v in zip(*self._values.values(), strict=True)
            ]
        return self._records

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        return self.records[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Rows | list):
            return self.records == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Rows({self.records!r})"

    @classmethod
    def from_records(cls, records: Sequence[dict[str, Any]], numeric: Collection[str]) -> Rows:
        """Rows from validated dicts (all with the same keys); `numeric` fields become arrays."""
        names = list(records[0]) if records else []
        columns: dict[str, Any] = {}
        for name in names:
            values = [r[name] for r in records]
            columns[name] = np.array(values, dtype=np.float64) if name in numeric else values
        return cls(records, columns)

    def matrix(self, names: Sequence[str]) -> np.ndarray:
        """The numeric fields `names` as a (rows, names) float64 matrix, NaN where null."""
        out = np.empty((len(self), len(names)), dtype=np.float64)
        for j, name in enumerate(names):
            out[:, j] = self.columns[name]
        return out
