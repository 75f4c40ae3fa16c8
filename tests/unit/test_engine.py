"""The seam into Pulumi's runtime internals (toolchain/engine.py): what synthesis relies on,
asserted against the pinned SDK so an upgrade that moves an internal fails here by name."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from pulumi.runtime import mocks as pulumi_mocks

from toolchain import engine
from toolchain.synth import RecordingMonitor

pytestmark = pytest.mark.unit


class _Echo(pulumi_mocks.Mocks):
    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []


def _run(stack: str, program: Any, config: dict[str, str] | None = None) -> RecordingMonitor:
    monitor = RecordingMonitor(_Echo())
    engine.run(program, config=config or {}, monitor=monitor, project="p", stack=stack)
    return monitor


def _bucket(name: str) -> None:
    pulumi.CustomResource("test:index:Bucket", name, {"size": 1})


def test_a_program_runs_to_completion_and_its_exports_reach_the_root_stack() -> None:
    def program() -> None:
        _bucket("b")
        pulumi.export("greeting", pulumi.Output.from_input("hello"))

    monitor = _run("one", program)
    types = {r.type for r in monitor.records.values()}
    assert types == {"pulumi:pulumi:Stack", "test:index:Bucket"}
    root = next(u for u, r in monitor.records.items() if r.type == "pulumi:pulumi:Stack")
    assert monitor.registered_outputs[root] == {"greeting": "hello"}


def test_runs_in_one_process_do_not_see_each_other() -> None:
    first = _run("one", lambda: _bucket("a"))
    second = _run("two", lambda: _bucket("b"))
    assert any("::a" in u for u in first.records)
    assert not any("::a" in u for u in second.records)
    assert all(u.startswith("urn:pulumi:two::p::") for u in second.records)


def test_config_reaches_the_program_and_is_cleared_after_it_even_when_it_fails() -> None:
    seen: dict[str, str | None] = {}

    def program() -> None:
        seen["size"] = pulumi.Config("dex").get("size")

    _run("one", program, {"dex:size": "3"})
    assert seen == {"size": "3"}

    def failing() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _run("one", failing, {"dex:size": "4"})
    assert pulumi.Config("dex").get("size") is None, "a failed run left its config behind"


class _TraceSpy(RecordingMonitor):
    def __init__(self) -> None:
        super().__init__(_Echo())
        self.frames: list[int] = []

    def RegisterResource(self, request: Any) -> Any:
        self.frames.append(len(request.stackTrace.frames))
        return super().RegisterResource(request)


def test_registrations_carry_no_stack_trace_inside_a_run_and_pulumis_is_restored() -> None:
    """Pulumi captures the whole Python stack on every registration for the CLI; a mock
    monitor never reads it, so a run swaps it out, and puts Pulumi's own back afterwards,
    also when the program fails."""
    from pulumi.runtime import resource as pulumi_resource

    original = pulumi_resource._get_stack_trace
    spy = _TraceSpy()
    engine.run(lambda: _bucket("b"), config={}, monitor=spy, project="p", stack="one")
    assert spy.frames
    assert set(spy.frames) == {0}
    assert pulumi_resource._get_stack_trace is original

    def failing() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        engine.run(failing, config={}, monitor=_TraceSpy(), project="p", stack="one")
    assert pulumi_resource._get_stack_trace is original
