"""`sewamitra soak` in its short form, as CI runs it: `sewamitra up` on a PostgreSQL database and a
Redis of its own, callers and workers through the signed webhooks, every kind of fault once, then
the audit. Every invariant must hold; the report prints each one and each fault's recovery."""

from __future__ import annotations

import io

import pytest

from devtools.soak import faults, run
from tests.factories import ROOT

# One process runs the module, so its one soak serves all three tests (`make test` spreads ungrouped tests).
pytestmark = pytest.mark.xdist_group("soak")


@pytest.fixture(scope="module")
def short_soak(postgres_server_url: str) -> run.Result:
    return run.main(run.SHORT, postgres_url=postgres_server_url, out=io.StringIO(), config=ROOT / "config.yaml")


@pytest.mark.slow
def test_every_invariant_holds_across_every_kind_of_fault(short_soak: run.Result) -> None:
    # What failed first, then the whole report: a long log cut in its middle (as CI's was) keeps both ends.
    assert not short_soak.failed, "\n".join(run.verdict(short_soak.invariants)) + "\n" + short_soak.report
    assert [fault.kind for fault in short_soak.faults] == list(faults.SCHEDULE)
    assert all(fault.recovered for fault in short_soak.faults), short_soak.report
    assert {fault.kind for fault in short_soak.faults} >= {
        faults.RQ_WORKER,
        faults.WEB_WORKER,
        faults.SCHEDULER,
        faults.REDIS_AOF,
        faults.REDIS_EMPTY,
        faults.DATABASE,
        faults.SMS_API,
    }


@pytest.mark.slow
def test_the_load_reached_every_part_of_the_helpline(short_soak: run.Result) -> None:
    """Callers booked and heard numbers, workers took offers and texted DONE, the helpline rang people."""
    for kind, count in short_soak.counts.items():
        assert count > 0, f"no {kind}:\n{short_soak.report}"


@pytest.mark.slow
def test_the_report_prints_each_invariant_and_each_fault_with_its_recovery(short_soak: run.Result) -> None:
    report = short_soak.report
    assert "| invariant" in report
    assert "| fault" in report
    for invariant in short_soak.invariants:
        assert f"| {invariant.name}" in report
        assert ("held" if invariant.held else "FAILED") in report
    for fault in short_soak.faults:
        assert fault.kind in report
        assert fault.answering_s is not None
    assert report.rstrip().endswith(f"all {len(short_soak.invariants)} held")
