"""Resource options every component shares: how a component takes what it waits for."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import pulumi


def take_depends_on(
    opts: pulumi.ResourceOptions | None,
) -> tuple[pulumi.ResourceOptions, list[pulumi.Resource]]:
    """A component's own options without `depends_on`, and that `depends_on`.

    Every component takes what it waits for through `opts.depends_on`, and hands it on to
    the children that need it. Pulumi does not pass a component's `depends_on` to its
    children; registering the component itself with it would hold back every child (each
    child's registration needs its parent's URN), also those that wait for less (the
    Observability rules wait for the CRDs only). So the component registers without it, and
    its children wait for exactly what they did before."""
    own = copy.copy(opts) if opts is not None else pulumi.ResourceOptions()
    wanted = own.depends_on
    own.depends_on = None
    if wanted is None:
        return own, []
    if isinstance(wanted, pulumi.Resource):
        return own, [wanted]
    if isinstance(wanted, Sequence) and all(isinstance(r, pulumi.Resource) for r in wanted):
        return own, [r for r in wanted if isinstance(r, pulumi.Resource)]
    raise TypeError("a component's `depends_on` must be resources, not outputs")
