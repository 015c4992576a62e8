"""`sewamitra bench checkout` at a toy size on the real PostgreSQL: both engines measured in every
round, the figures printed with the machine. Timings are printed, never asserted."""

from __future__ import annotations

import io

import pytest

from core.exceptions import SewamitraError
from devtools.bench import checkout


def test_both_engines_are_measured_in_every_round_and_the_report_names_the_machine(postgres_server_url: str) -> None:
    out = io.StringIO()

    clocks = checkout.main(20, 2, postgres_url=postgres_server_url, out=out)

    assert set(clocks) == {checkout.BASELINE, checkout.OURS}
    for measured in clocks.values():
        assert len(measured.cpu_us) == len(measured.wall_us) == 2
        assert all(value > 0 for value in measured.wall_us)
    report = out.getvalue()
    for line in ("# sewamitra bench checkout", "- CPU: ", "- PostgreSQL: ", "statements=20, rounds=2"):
        assert line in report
    assert f"| {checkout.BASELINE} " in report
    assert f"| {checkout.OURS} " in report


def test_a_run_too_small_to_alternate_is_refused(postgres_server_url: str) -> None:
    with pytest.raises(SewamitraError, match="--rounds at least 2"):
        checkout.main(20, 1, postgres_url=postgres_server_url, out=io.StringIO())
