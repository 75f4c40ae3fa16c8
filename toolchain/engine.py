"""The one seam between the toolchain and Pulumi's runtime internals.

Pulumi's Python SDK runs a program in-process under mocks only through private modules: the
settings singleton (pending RPCs, outputs, the root stack resource), `set_all_config`, the
stack runner, `_sync_await` and the stack trace every registration captures. Every such call
the toolchain makes is here, so a Pulumi upgrade that moves one breaks
`tests/unit/test_engine.py` by name instead of synthesis in odd ways. The SDK version these
calls are written against is the one in requirements.lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as pulumi_resource
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await


def reset() -> None:
    """Forget the previous run (root stack, pending RPCs, outputs) so several programs can
    run one after another in one process."""
    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_settings.SETTINGS.outputs.clear()
    pulumi_settings.set_root_resource(None)  # type: ignore[arg-type]


def _no_stack_trace() -> source_pb2.StackTrace:
    return source_pb2.StackTrace()


@contextmanager
def without_stack_traces() -> Iterator[None]:
    """Registrations carry no stack trace or source position while inside.

    Every registration walks the whole Python stack (`traceback.extract_stack`, a linecache
    check and a file URI per frame) so the CLI can show where a resource was declared. A mock
    monitor never reads it, and it grows with how deep in components a resource is declared:
    some 20 frames here, about a sixth of the event loop's time in a synthesis."""
    saved = pulumi_resource._get_stack_trace
    pulumi_resource._get_stack_trace = _no_stack_trace
    try:
        yield
    finally:
        pulumi_resource._get_stack_trace = saved


def run(
    program: Callable[[], None],
    *,
    config: Mapping[str, str],
    monitor: pulumi_mocks.MockMonitor,
    project: str,
    stack: str,
) -> None:
    """Run `program` as a preview of `project`/`stack` with `config` (as the CLI hands it:
    `dex:key` -> string), every registration answered by `monitor`; wait for every
    registration to finish. The config is cleared afterwards, also when the program fails.
    Registrations carry no stack traces (`without_stack_traces`): the monitor is a mock."""
    reset()
    set_all_config(dict(config), [])
    try:
        with without_stack_traces():
            pulumi_mocks.set_mocks(
                monitor.mocks, project=project, stack=stack, preview=True, monitor=monitor
            )
            root = pulumi_settings.get_root_resource()

            def body() -> None:
                program()
                if isinstance(root, pulumi.ComponentResource):
                    # set_mocks registered the root stack before the program exported
                    # anything; register its outputs again now that they exist.
                    root.register_outputs(dict(getattr(root, "outputs", {})))

            _sync_await(run_pulumi_func(body))
    finally:
        set_all_config({})
