"""The escalation ladder's rules, pure (dispatch.ladder.due and late): which rung a request goes to,
and when. Every rung's deadlines count from when the request reached it; unassigned past the
assignment deadline, or not completed past the resolution deadline, it goes up one; the top rung
is the last; a request no longer open never climbs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.settings import CloseOutcome, Escalation, EscalationLevel, load_settings
from dispatch.ladder import Climb, Late, due, late
from storage.models import RequestStatus
from tests.factories import ROOT

T0 = datetime(2030, 1, 1, 6, 0, tzinfo=UTC)
AGENCY = EscalationLevel(
    who="provider", name_en="Agency", name_hi="एजेंसी", assign_within_minutes=60, resolve_within_minutes=240
)
DISTRICT = EscalationLevel(
    who="district_officer", name_en="District", name_hi="ज़िला", assign_within_minutes=120, resolve_within_minutes=480
)
STATE = EscalationLevel(
    who="state_officer", name_en="State", name_hi="राज्य", assign_within_minutes=600, resolve_within_minutes=6000
)
LADDER = Escalation(levels=(AGENCY, DISTRICT, STATE), close_outcomes=(CloseOutcome(code="resolved", en="R", hi="ह"),))
OPEN = [RequestStatus.NEW, RequestStatus.OFFERED, RequestStatus.ASSIGNED, RequestStatus.ESCALATED]
DONE = [RequestStatus.COMPLETED, RequestStatus.CLOSED, RequestStatus.CANCELLED]


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def test_an_unassigned_request_goes_up_at_its_rungs_assignment_deadline_not_a_minute_before() -> None:
    assert due(LADDER, RequestStatus.NEW, 1, T0, False, minutes(59)) is None
    assert due(LADDER, RequestStatus.NEW, 1, T0, False, minutes(60)) == Climb(1, Late.UNASSIGNED)


def test_an_assigned_job_goes_up_only_at_the_resolution_deadline() -> None:
    assert due(LADDER, RequestStatus.ASSIGNED, 1, T0, True, minutes(239)) is None
    assert due(LADDER, RequestStatus.ASSIGNED, 1, T0, True, minutes(240)) == Climb(1, Late.UNRESOLVED)


def test_each_rung_has_its_own_deadlines_counted_from_when_the_request_reached_it() -> None:
    reached_district = minutes(60)
    assert due(LADDER, RequestStatus.ESCALATED, 2, reached_district, False, minutes(60 + 119)) is None
    assert due(LADDER, RequestStatus.ESCALATED, 2, reached_district, False, minutes(60 + 120)) == Climb(
        2, Late.UNASSIGNED
    )


def test_the_top_rung_is_the_last() -> None:
    assert due(LADDER, RequestStatus.ESCALATED, 3, T0, False, minutes(10**6)) is None


@pytest.mark.parametrize("status", DONE)
def test_a_request_no_longer_open_never_climbs(status: RequestStatus) -> None:
    assert due(LADDER, status, 1, T0, False, minutes(10**6)) is None


def test_an_unassigned_request_late_on_both_counts_is_late_for_want_of_a_worker() -> None:
    assert late(AGENCY, T0, False, minutes(300)) is Late.UNASSIGNED


@given(
    status=st.sampled_from(OPEN + DONE),
    level=st.integers(1, 3),
    assigned=st.booleans(),
    waited=st.integers(0, 20_000),
)
def test_a_climb_is_always_one_rung_from_where_the_request_is_and_only_past_a_deadline(
    status: RequestStatus, level: int, assigned: bool, waited: int
) -> None:
    climb = due(LADDER, status, level, T0, assigned, minutes(waited))
    rung = LADDER.level(level)
    past_assign = not assigned and waited >= rung.assign_within_minutes
    past_resolve = waited >= rung.resolve_within_minutes
    should = status in OPEN and level < LADDER.top and (past_assign or past_resolve)
    assert (climb is not None) is should
    if climb is not None:
        assert climb.level == level
        assert climb.late is (Late.UNASSIGNED if past_assign else Late.UNRESOLVED)


def test_config_yaml_has_three_rungs_agency_district_state_and_its_outcomes() -> None:
    settings = load_settings(ROOT / "config.yaml", {})
    ladder = settings.escalation
    assert [level.who for level in ladder.levels] == ["provider", "district_officer", "state_officer"]
    assert ladder.level(3).resolve_within_minutes == 7 * 24 * 60  # IGRS: seven days at the top
    assert [o.code for o in ladder.close_outcomes] == ["resolved", "not_reachable", "withdrew", "duplicate"]
    assert all(o.hi and o.en for o in ladder.close_outcomes)
    assert settings.sms.templates["escalated_to_officer"].dlt_template_id == "1107160000000000060"


def test_a_rung_above_the_first_must_be_answered_by_people_with_an_escalations_list() -> None:
    with pytest.raises(ValueError, match="escalation level 2: who must be one of"):
        Escalation(levels=(AGENCY, AGENCY), close_outcomes=LADDER.close_outcomes)


def test_a_ladder_with_two_outcomes_of_one_code_is_refused() -> None:
    twice = CloseOutcome(code="resolved", en="R", hi="ह")
    with pytest.raises(ValueError, match="appears twice"):
        Escalation(levels=(AGENCY,), close_outcomes=(twice, twice))
