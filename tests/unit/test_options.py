"""components/options.py: how every component takes what it waits for."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from components.options import take_depends_on

pytestmark = pytest.mark.unit


class _Fake(pulumi.Resource):
    """A resource object without registering it (take_depends_on only looks at its type)."""

    def __init__(self) -> None:
        pass


def test_the_component_keeps_its_other_options_and_hands_on_what_it_waits_for() -> None:
    a, b = _Fake(), _Fake()
    parent = _Fake()
    opts = pulumi.ResourceOptions(parent=parent, protect=True, depends_on=[a, b])
    own, wanted = take_depends_on(opts)
    assert wanted == [a, b]
    assert own.depends_on is None
    assert (own.parent, own.protect) == (parent, True)
    assert opts.depends_on == [a, b], "the caller's options are not changed"


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, []), (pulumi.ResourceOptions(), [])],
)
def test_nothing_to_wait_for(given: pulumi.ResourceOptions | None, expected: list[Any]) -> None:
    own, wanted = take_depends_on(given)
    assert wanted == expected
    assert own.depends_on is None


def test_a_single_resource_is_a_list_of_one() -> None:
    only = _Fake()
    assert take_depends_on(pulumi.ResourceOptions(depends_on=only))[1] == [only]


def test_outputs_are_refused_by_name() -> None:
    with pytest.raises(TypeError, match="must be resources"):
        take_depends_on(pulumi.ResourceOptions(depends_on=pulumi.Output.from_input([])))  # type: ignore[arg-type]
