"""An alias's model, loaded as the serving API loads it, for the batch jobs."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

from apps.training.model_ops.common import OpsError
from apps.training.settings import ModelOpsSettings

if TYPE_CHECKING:
    from apps.api.model_store import LoadedModel


@contextlib.contextmanager
def model_cache(settings: ModelOpsSettings) -> Iterator[str]:
    if settings.model_cache_dir:
        yield settings.model_cache_dir
        return
    with tempfile.TemporaryDirectory(prefix="dex-ops-models-") as folder:
        yield folder


def load_alias(settings: ModelOpsSettings, alias: str, cache_dir: str) -> LoadedModel | None:
    """The alias's model as the API loads it (`ModelStore`: download, `LoadedModel.wrap`);
    None when the alias does not exist. Never a stale cached copy: a registry that cannot be
    reached is an error."""
    from apps.api.model_store import ModelStore

    # The store shortens MLflow's HTTP retries and timeout for a server's sake; a batch job
    # keeps MLflow's defaults for what follows (a retraining uploads the model).
    saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_HTTP_REQUEST_")}
    try:
        store = ModelStore(settings.tracking_uri, settings.model_name, alias, cache_dir)
        loaded = store.load()
    finally:
        for key in [k for k in os.environ if k.startswith("MLFLOW_HTTP_REQUEST_")]:
            del os.environ[key]
        os.environ.update(saved)
    if not store.registry_ok:
        raise OpsError(
            f"cannot load {settings.model_name}@{alias} from {settings.tracking_uri}: "
            f"{store.last_error}"
        )
    return None if store.absent else loaded
