"""The graph the engine walks: what each resource waits for, and the waves a first deploy
creates."""

from __future__ import annotations

from collections.abc import Iterable

from contracts.deployment import Plan, Resource
from toolchain.first_deploy.model import CONFIG_GROUP


class Graph:
    """What each resource waits for before the engine creates it: its recorded dependencies
    (explicit and from its inputs; the SDK already expanded components into their children)
    and its provider. A remote component (a yaml/v2 ConfigGroup) stands for what it applies."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.by_urn = plan.by_urn()
        self.prereqs: dict[str, set[str]] = {}
        for res in plan:
            found = set(res.dependencies)
            if res.provider:
                found.add(res.provider.rsplit("::", 1)[0])
            self.prereqs[res.urn] = {u for u in found if u in self.by_urn and u != res.urn}
        self._closure: dict[str, frozenset[str]] = {}

    def before(self, urn: str) -> frozenset[str]:
        """Everything created before `urn` (transitively)."""
        if urn in self._closure:
            return self._closure[urn]
        seen: set[str] = set()
        stack = list(self.prereqs.get(urn, ()))
        while stack:
            u = stack.pop()
            if u in seen:
                continue
            seen.add(u)
            if u in self._closure:
                seen |= self._closure[u]
                continue
            stack.extend(self.prereqs.get(u, ()))
        self._closure[urn] = frozenset(seen)
        return self._closure[urn]

    def waits_for(self, urn: str, want: Iterable[str]) -> bool:
        return any(w in self.before(urn) for w in want)

    def waves(self) -> list[list[Resource]]:
        """The resources the engine creates, by wave: wave N holds what depends only on
        waves before it (components, which create nothing, are left out)."""
        level: dict[str, int] = {}

        def depth(urn: str, trail: frozenset[str] = frozenset()) -> int:
            if urn in level:
                return level[urn]
            if urn in trail:  # a cycle cannot come from the engine; do not loop
                return 0
            deps = [d for d in self.prereqs.get(urn, ()) if self._creates(d)]
            level[urn] = 1 + max((depth(d, trail | {urn}) for d in deps), default=-1)
            return level[urn]

        out: dict[int, list[Resource]] = {}
        for res in self.plan:
            if self._creates(res.urn):
                out.setdefault(depth(res.urn), []).append(res)
        return [sorted(out[k], key=lambda r: r.urn) for k in sorted(out)]

    def _creates(self, urn: str) -> bool:
        res = self.by_urn[urn]
        return res.custom or res.type == CONFIG_GROUP
