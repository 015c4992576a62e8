"""The soak report's last lines: what CI's log shows when it cuts the report's middle out."""

from __future__ import annotations

from devtools.soak.audit import Invariant
from devtools.soak.run import verdict


def test_all_held_ends_the_report() -> None:
    held = [Invariant("no request stuck new or offered", "closed 88", True)] * 12
    assert verdict(held) == ["all 12 held"]


def test_a_failed_invariant_is_named_with_its_figure_before_the_count() -> None:
    invariants = [
        Invariant("no request stuck new or offered", "closed 88", True),
        Invariant("no webhook answered with a 5xx", "1 answered 5xx", False),
        Invariant("drained: nothing left under way after the load", "quiet", True),
    ]
    assert verdict(invariants) == [
        "- no webhook answered with a 5xx: 1 answered 5xx",
        "",
        "FAILED: 1 of 3 invariants",
    ]
