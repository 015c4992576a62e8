"""What a worker means by "on my way", "arrived" and "start" by SMS, in English, Hinglish and Hindi,
and what is refused: a visit message that does not fit is UNKNOWN, never a guess. And when a visit
is late, by the pure rule of dispatch/visit.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.settings import load_settings
from dispatch import visit
from dispatch.replies import MAX_BODY, Reply, ReplyKind, parse
from storage.models import RequestStatus, ServiceRequest
from tests.factories import ROOT

K = ReplyKind


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("OMW 1234567 30", Reply(K.ON_THE_WAY, number="1234567", minutes=30)),
        ("omw 30 1234567", Reply(K.ON_THE_WAY, number="1234567", minutes=30)),
        ("On my way 20 min", Reply(K.ON_THE_WAY, minutes=20)),
        ("on the way, 1234567, 45 mins", Reply(K.ON_THE_WAY, number="1234567", minutes=45)),
        ("OTW 1234567 15m", Reply(K.ON_THE_WAY, number="1234567", minutes=15)),
        ("रास्ते में हूँ १२३४५६७ २० मिनट", Reply(K.ON_THE_WAY, number="1234567", minutes=20)),
        ("raste mein 1234567 25 min ji", Reply(K.ON_THE_WAY, number="1234567", minutes=25)),
        ("ARRIVED 1234567", Reply(K.ARRIVED, number="1234567")),
        ("arrived", Reply(K.ARRIVED)),
        ("Reached!", Reply(K.ARRIVED)),
        ("पहुँच गया 1234567", Reply(K.ARRIVED, number="1234567")),
        ("pahuch gaya", Reply(K.ARRIVED)),
        ("START 1234567 4821", Reply(K.START, number="1234567", code="4821")),
        ("start 4821 1234567", Reply(K.START, number="1234567", code="4821")),
        ("Start 12345674821", Reply(K.START, number="1234567", code="4821")),
        ("start 123 4567 4821", Reply(K.START, number="1234567", code="4821")),
        ("START 4821", Reply(K.START, code="4821")),
        ("शुरू १२३४५६७ ४८२१", Reply(K.START, number="1234567", code="4821")),
        ("shuru kaam 4821", Reply(K.START, code="4821")),
        ("START code 4821", Reply(K.START, code="4821")),
    ],
)
def test_the_worker_says_where_the_visit_is(body: str, expected: Reply) -> None:
    assert parse(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        "OMW",  # no ETA: the citizen would be told nothing
        "OMW 1234567",  # the number, but no ETA
        "OMW 0",  # no time at all
        "OMW 1234567 1000",  # four digits is a code, not minutes
        "OMW 20 30",  # two ETAs
        "OMW 1234567 7654321 20",  # two jobs
        "OMW 20 please call the customer",  # a message for a person
        "arrived 12",
        "arrived 1234567 4821",  # a code with an arrival: START or DONE was meant
        "START",
        "START 1234567",  # no code
        "START 4821 4821",  # two codes
        "START 1234567 4821 9",
        "START 48210",
        "start now",
        "on my way but late 20",
        "way 20",  # not the phrase
        "1234567 4821",  # START or DONE? neither is guessed from digits alone
    ],
)
def test_a_visit_message_that_does_not_fit_is_not_guessed(body: str) -> None:
    assert parse(body).kind is K.UNKNOWN


@pytest.mark.parametrize(
    "body",
    [
        "OMW " + "9" * 5000,  # a huge number
        "START 1234567 " + "४" * 3000,
        "OMW\u200b 1234567\u200d 20",  # invisible characters
        "ＯＭＷ １２３４５６７ ２０",  # fullwidth
        "OMW 1234567 20 " + "min " * 400,  # past the token limit
        "START 1234567 4821 <script>alert(1)</script>",
        "arrived\x00 1234567",
        "OMW 1234567 ٢٠",  # Arabic-Indic digits are not ours
    ],
)
def test_hostile_visit_bodies_are_read_within_bounds_or_not_at_all(body: str) -> None:
    reply = parse(body)
    assert reply.kind in (K.ON_THE_WAY, K.ARRIVED, K.START, K.UNKNOWN)
    if reply.minutes is not None:
        assert 1 <= reply.minutes <= 999
    if reply.number is not None:
        assert len(reply.number) == 7
    if reply.code is not None:
        assert len(reply.code) == 4


def test_fullwidth_and_invisible_characters_read_as_the_worker_meant() -> None:
    assert parse("ＯＭＷ １２３４５６７ ２０") == Reply(K.ON_THE_WAY, number="1234567", minutes=20)
    assert parse("OMW\u200b 1234567\u200d 20") == Reply(K.ON_THE_WAY, number="1234567", minutes=20)


def test_the_offer_replies_and_done_read_as_before() -> None:
    assert parse("1").kind is K.ACCEPT
    assert parse("nahi").kind is K.DECLINE
    assert parse("DONE 1234567 4821") == Reply(K.DONE, number="1234567", code="4821")


@given(st.text(max_size=MAX_BODY + 50))
def test_any_text_parses_to_a_reply_whose_fields_fit(body: str) -> None:
    reply = parse(body)
    if reply.kind is K.ON_THE_WAY:
        assert reply.minutes is not None
        assert 1 <= reply.minutes <= 999
    if reply.kind is K.START:
        assert reply.code is not None
        assert len(reply.code) == 4


# -- lateness: pure -------------------------------------------------------------------------------

SETTINGS = load_settings(ROOT / "config.yaml", {})
NOW = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)


def job(**fields: object) -> ServiceRequest:
    values: dict[str, object] = {"status": RequestStatus.ASSIGNED, "assigned_at": NOW}
    request = ServiceRequest(number="1234567", service_code="plumber", pincode="226001", district="LUCKNOW")
    for name, value in (values | fields).items():
        setattr(request, name, value)
    return request


def test_a_visit_is_late_at_its_slots_end_and_taken_back_the_grace_after_it_was_flagged() -> None:
    grace = timedelta(minutes=SETTINGS.visit.late_grace_minutes)
    slot = job(slot_ends_at=NOW + timedelta(hours=3))
    assert visit.lateness(slot, SETTINGS, NOW + timedelta(hours=3) - timedelta(seconds=1)) is visit.Lateness.ON_TIME
    assert visit.lateness(slot, SETTINGS, NOW + timedelta(hours=3)) is visit.Lateness.LATE
    assert visit.lateness(slot, SETTINGS, NOW + timedelta(hours=9)) is visit.Lateness.LATE  # never flagged yet
    flagged = job(slot_ends_at=NOW + timedelta(hours=3), late_flagged_at=NOW + timedelta(hours=4))
    assert visit.lateness(flagged, SETTINGS, NOW + timedelta(hours=4) + grace / 2) is visit.Lateness.LATE
    assert visit.lateness(flagged, SETTINGS, NOW + timedelta(hours=4) + grace) is visit.Lateness.TAKE_BACK


def test_without_a_slot_the_visit_is_due_a_configured_while_after_assignment() -> None:
    due = NOW + timedelta(minutes=SETTINGS.visit.start_within_minutes)
    assert visit.deadline(job(), SETTINGS) == due
    assert visit.lateness(job(), SETTINGS, due - timedelta(seconds=1)) is visit.Lateness.ON_TIME
    assert visit.lateness(job(), SETTINGS, due) is visit.Lateness.LATE


def test_a_started_or_no_longer_assigned_visit_is_never_late() -> None:
    later = NOW + timedelta(days=3)
    assert visit.lateness(job(started_at=NOW), SETTINGS, later) is visit.Lateness.ON_TIME
    assert visit.lateness(job(status=RequestStatus.COMPLETED), SETTINGS, later) is visit.Lateness.ON_TIME
    assert visit.lateness(job(assigned_at=None), SETTINGS, later) is visit.Lateness.ON_TIME
