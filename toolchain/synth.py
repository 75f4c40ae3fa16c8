"""Offline synthesis: run the real program under Pulumi's mock engine and record a plan.

`synthesize(stack)` reads `Pulumi.<stack>.yaml`, hands its config to the Pulumi runtime
exactly as the CLI would, runs `stacks.program.main` (the same entry point `pulumi up` runs)
under `pulumi.runtime.set_mocks`, and records every registration into a plan in the shape of
`pulumi stack export` (deployment version 3).

The run is a preview: whatever the mocks in `toolchain.mocks` do not compute stays unknown and
is written as Pulumi's unknown sentinel, and secrets are written as secret envelopes whose
ciphertext is withheld. Resources are ordered dependencies-first with ties broken by URN, so
two runs of the same stack give byte-identical plans.
"""

from __future__ import annotations

import heapq
import importlib.metadata
import json
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2
from pulumi.runtime import mocks as pulumi_mocks

from contracts.deployment import (
    SECRET_SIG,
    SIG_KEY,
    UNKNOWN,
    document,
    is_secret,
    redacted_secret,
)
from stacks.stackfiles import PROJECT, StackFile, read_stack_file
from toolchain import engine
from toolchain.mocks import DexMocks

PLAN_FORMAT = "dex-plan/1"
_PULUMI_VERSION = importlib.metadata.version("pulumi")


@dataclass
class _Record:
    urn: str
    type: str
    custom: bool
    id: str
    parent: str
    provider: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    ignore_changes: list[str]
    replace_on_changes: list[str]
    additional_secret_outputs: list[str]
    aliases: list[str] = field(default_factory=list)


def _wire(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A protobuf Struct as plain JSON values, with secret values withheld.

    What `json_format.MessageToDict` gives (the same values, keys in the same order), with
    integral numbers as ints, read straight off the message in about two thirds of the time
    (MessageToDict's generic walk was a fifth of the monitor's time)."""
    return _struct(struct)  # type: ignore[no-any-return]


def _struct(struct: struct_pb2.Struct) -> Any:
    out = {key: _value(value) for key, value in struct.fields.items()}
    if out.get(SIG_KEY) == SECRET_SIG:
        return redacted_secret(unknown=out.get("value") == UNKNOWN)
    return out


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "struct_value":
        return _struct(value.struct_value)
    if kind == "list_value":
        return [_value(v) for v in value.list_value.values]
    if kind == "bool_value":
        return value.bool_value
    if kind == "number_value":
        number = value.number_value
        if math.isinf(number) or math.isnan(number):
            raise ValueError(f"{number} has no JSON form")  # as MessageToDict refuses it
        return int(number) if number.is_integer() else number
    return None  # null_value, or not set


def _contains_special(value: Any) -> bool:
    if value == UNKNOWN:
        return True
    if isinstance(value, dict):
        return SIG_KEY in value or any(_contains_special(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_special(v) for v in value)
    return False


DYNAMIC_PROVIDER = "[serialized dynamic provider]"


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, plus a record of every registration with its parent, provider,
    dependencies and options (which `MockResourceArgs` does not carry)."""

    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.records: dict[str, _Record] = {}
        self.registered_outputs: dict[str, dict[str, Any]] = {}
        self.invokes: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def Invoke(self, request: Any) -> Any:
        # which provider answers each invoke: the engine denies a disabled default provider
        # to an invoke as to a resource (toolchain.first_deploy.engine_rules)
        with self._lock:
            self.invokes.append({"token": request.tok, "provider": request.provider})
        return super().Invoke(request)  # type: ignore[no-untyped-call]

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        inputs = _wire(request.object)
        outputs = _wire(response.object) if request.custom else {}
        for props in (inputs, outputs):
            if "__provider" in props:
                # a dynamic resource's provider travels as a serialized blob: not a property
                # a reviewer can read, and not byte-stable across Python builds
                props["__provider"] = DYNAMIC_PROVIDER
        for key, value in inputs.items():
            # Outputs echo the inputs; keep the inputs' secret/unknown markers, which the
            # mock monitor's deserialization dropped.
            if request.custom and (key not in outputs or _contains_special(value)):
                outputs[key] = value
        for key in request.additionalSecretOutputs:
            if key in outputs and not is_secret(outputs[key]):
                outputs[key] = redacted_secret(unknown=outputs[key] == UNKNOWN)
        record = _Record(
            urn=response.urn,
            type=request.type,
            custom=bool(request.custom),
            id=response.id if request.custom else "",
            parent=request.parent,
            provider=request.provider,
            dependencies=sorted(set(request.dependencies)),
            property_dependencies={
                k: sorted(set(v.urns)) for k, v in request.propertyDependencies.items() if v.urns
            },
            # remote components (helm v4 Chart, yaml v2 ConfigGroup) keep their inputs: what
            # they will render is decided by those inputs, not by children recorded here
            inputs=inputs if (request.custom or request.remote) else {},
            outputs=outputs,
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            delete_before_replace=bool(request.deleteBeforeReplace),
            ignore_changes=sorted(request.ignoreChanges),
            replace_on_changes=sorted(request.replaceOnChanges),
            additional_secret_outputs=sorted(request.additionalSecretOutputs),
            aliases=sorted(a.urn for a in request.aliases if a.urn),
        )
        with self._lock:
            self.records[response.urn] = record
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        with self._lock:
            self.registered_outputs[request.urn] = _wire(request.outputs)
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]


def _config_strings(config: Mapping[str, Any]) -> dict[str, str]:
    """Config as the Pulumi CLI hands it to a program: strings, objects as JSON."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            out[key] = json.dumps(value, separators=(",", ":"))
        else:
            out[key] = str(value)
    return out


def run_program(
    stack_file: StackFile,
    program: Callable[[], None] | None = None,
    overrides: Mapping[str, Any] | None = None,
    mocks: pulumi_mocks.Mocks | None = None,
) -> RecordingMonitor:
    """Run `program` (default: the real entry point) for a stack under the mock engine,
    answered by `mocks` (default: `DexMocks`)."""
    if program is None:
        from stacks.program import main

        program = main
    config = {**stack_file.config, **(overrides or {})}
    monitor = RecordingMonitor(mocks or DexMocks(stack_file.name))
    engine.run(
        program,
        config=_config_strings(config),
        monitor=monitor,
        project=PROJECT,
        stack=stack_file.name,
    )
    return monitor


def synthesize(
    stack: str,
    project_dir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    mocks: pulumi_mocks.Mocks | None = None,
) -> dict[str, Any]:
    """The plan of `stack`: a dict in the shape of `pulumi stack export`."""
    stack_file = read_stack_file(stack, project_dir)
    monitor = run_program(stack_file, overrides=overrides, mocks=mocks)
    return build_plan(monitor, stack_file)


def build_plan(monitor: RecordingMonitor, stack_file: StackFile) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for urn, rec in monitor.records.items():
        res: dict[str, Any] = {"urn": urn, "custom": rec.custom}
        if rec.custom:
            res["id"] = rec.id
        res["type"] = rec.type
        if rec.custom:
            res["inputs"] = rec.inputs
            res["outputs"] = rec.outputs
        else:
            if rec.inputs:
                res["inputs"] = rec.inputs
            res["outputs"] = monitor.registered_outputs.get(urn, {})
        if rec.parent:
            res["parent"] = rec.parent
        if rec.protect:
            res["protect"] = True
        if rec.retain_on_delete:
            res["retainOnDelete"] = True
        if rec.delete_before_replace:
            res["deleteBeforeReplace"] = True
        if rec.dependencies:
            res["dependencies"] = rec.dependencies
        if rec.provider:
            res["provider"] = rec.provider
        if rec.property_dependencies:
            res["propertyDependencies"] = dict(sorted(rec.property_dependencies.items()))
        if rec.additional_secret_outputs:
            res["additionalSecretOutputs"] = rec.additional_secret_outputs
        if rec.ignore_changes:
            res["ignoreChanges"] = rec.ignore_changes
        if rec.replace_on_changes:
            res["replaceOnChanges"] = rec.replace_on_changes
        if rec.aliases:
            res["aliases"] = rec.aliases
        resources.append(res)
    return document(
        order_resources(resources),
        manifest={"magic": "", "version": f"{PLAN_FORMAT} (pulumi {_PULUMI_VERSION})"},
        dex={
            "format": PLAN_FORMAT,
            "project": PROJECT,
            "stack": stack_file.name,
            "invokes": sorted({(i["token"], i["provider"]) for i in monitor.invokes}),
        },
    )


def order_resources(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Dependencies first (parent, provider, dependencies), ties broken by URN: a stable
    topological order, as in a real checkpoint, independent of registration order."""
    by_urn = {r["urn"]: r for r in resources}

    def prereqs(res: dict[str, Any]) -> set[str]:
        found = set(res.get("dependencies", []))
        if "parent" in res:
            found.add(res["parent"])
        if "provider" in res:
            found.add(res["provider"].rsplit("::", 1)[0])
        return {u for u in found if u in by_urn and u != res["urn"]}

    waiting = {urn: prereqs(r) for urn, r in by_urn.items()}
    dependents: dict[str, list[str]] = {urn: [] for urn in by_urn}
    for urn, needs in waiting.items():
        for need in needs:
            dependents[need].append(urn)
    ready = [urn for urn, needs in waiting.items() if not needs]
    heapq.heapify(ready)
    ordered: list[dict[str, Any]] = []
    while ready:
        urn = heapq.heappop(ready)
        ordered.append(by_urn[urn])
        for dep in dependents[urn]:
            waiting[dep].discard(urn)
            if not waiting[dep]:
                heapq.heappush(ready, dep)
    if len(ordered) != len(by_urn):  # a cycle cannot come from the engine; keep everything
        seen = {r["urn"] for r in ordered}
        ordered += [by_urn[u] for u in sorted(by_urn) if u not in seen]
    return ordered
