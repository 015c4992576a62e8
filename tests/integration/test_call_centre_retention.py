"""Retention of what the call centre keeps about a citizen (issue 20, DPDP Act s.8(7)): an agent's
wrap-up note, a supervisor's review comments, a callback's notes and its tries' (and the audit
trail's copies of an agent's note), and the caller's number in the agent queue in Redis. A citizen
erased at their own request leaves none of it, and no number, in any table or Redis key, while
another citizen's stays; the nightly run blanks staff's notes `privacy.retention.call_notes` days
after the call (a callback's: after it closed) and keeps newer ones and an open callback's.

Everything is written the way the console and the voice webhooks write it (the desk's bridge and
the leg's end, the wrap-up form, the review form, the callback forms, the erasure approved on the
console); time passes for the rows (`answered_days_ago`, `closed_days_ago`), not for the nightly
job, whose clock stands still."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select

from callcentre import desk
from core.clock import FrozenClock
from core.settings import Settings
from dispatch import jobs
from storage import callqueue
from storage.models import (
    AgentCall,
    AuditEvent,
    CallbackAttempt,
    CallbackRequest,
    CallbackStatus,
    Caller,
    CallLog,
    CallReview,
    PrivacyRequest,
    RequestStatus,
    Role,
    ServiceRequest,
)
from tests.console import Console, add_user, signed_in
from tests.factories import ALWAYS_OPEN, call, engine_of, holds, jobs_context, redis_dump, table_dump, with_hours

# Both databases: a review's comments are found by searching its JSON as text (a cast each dialect
# writes its own way).
pytestmark = pytest.mark.both_databases

NOW = datetime(2027, 3, 3, 6, 0, tzinfo=UTC)  # 11:30 in Lucknow: the console's clock and the nightly run's
GONE, KEPT = "+919812345678", "+919876501234"  # citizens
ASHA_DESK = "+919811110001"  # the agent's desk phone: staff's, never erased
ENGLISH_PLUMBER_AT_226001 = "2,1,1,226001#,1,9"
SCORES = {"greeting": 10, "language": 10, "identity_check": 5, "resolution": 30, "courtesy": 20}  # 75 of 100


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


@dataclass
class CallCentre:
    """An agent at her desk, ready, and a supervisor, both signed in to the console."""

    app: Flask
    clock: FrozenClock
    agent: Console
    agent_id: int
    boss: Console

    @property
    def engine(self) -> sa.Engine:
        return engine_of(self.app)


@pytest.fixture
def centre(app: Flask, clock: FrozenClock) -> CallCentre:
    user = add_user(engine_of(app), "asha", Role.AGENT, phone=ASHA_DESK)
    agent = Console(app)
    agent.sign_in("asha")
    assert agent.post("/console/agent/ready").status_code == 302
    assert user.id is not None
    return CallCentre(app, clock, agent, user.id, signed_in(app, "sunita", Role.SUPERVISOR))


def talked(centre: CallCentre, call_sid: str, note: str, comment: str) -> int:
    """The caller on `call_sid` is put through to the agent; they talk; her desk phone hangs up; she
    gives the call a code with `note` and ends wrap-up; the supervisor reviews it with `comment`."""
    runtime = centre.app.extensions["sewamitra"]
    desk.bridged(runtime.redis, runtime.engine, centre.agent_id, call_sid, "hi", centre.clock.now())
    centre.clock.advance(timedelta(seconds=95))
    desk.leg_ended(runtime.redis, runtime.engine, centre.agent_id, runtime.settings.agents, centre.clock.now())
    with Session(centre.engine) as db:
        call_id = db.exec(select(AgentCall.id).where(AgentCall.call_sid == call_sid)).one()
    assert call_id is not None
    wrapped = {"call": call_id, "code": "complaint", "note": note, "then": "end"}
    assert centre.agent.post("/console/agent/wrap-up", wrapped).status_code == 302
    review = {f"points_{code}": points for code, points in SCORES.items()} | {"comment_courtesy": comment}
    assert centre.boss.post(f"/console/calls/{call_id}/review", review).status_code == 302
    return call_id


def callback_worked(centre: CallCentre, caller_id: int, notes: tuple[str, str, str], *, close: bool = True) -> int:
    """The agent promises the citizen a callback (`notes[0]`), tries it and finds nobody (`notes[1]`),
    then, `close`, reaches the citizen on the next try (`notes[2]`): each note where the console keeps it."""
    promised, tried, done = notes
    zone = ZoneInfo(centre.app.extensions["sewamitra"].settings.call_centre.timezone)
    due = (centre.clock.now() + timedelta(hours=1)).astimezone(zone).strftime("%Y-%m-%dT%H:%M")
    assert (
        centre.agent.post(f"/console/callers/{caller_id}/callback", {"due": due, "note": promised}).status_code == 302
    )
    with Session(centre.engine) as db:
        callback_id = db.exec(
            select(sa.func.max(CallbackRequest.id)).where(CallbackRequest.caller_id == caller_id)
        ).one()
    assert callback_id is not None
    tried_form = {"outcome": "no_answer", "note": tried}
    assert centre.agent.post(f"/console/callbacks/{callback_id}/outcome", tried_form).status_code == 302
    if close:
        done_form = {"outcome": "reached", "note": done}
        assert centre.agent.post(f"/console/callbacks/{callback_id}/outcome", done_form).status_code == 302
    return callback_id


def rang(centre: CallCentre, number: str) -> tuple[int, str]:
    """A citizen books a plumber on the phone: their caller's id and the call's id."""
    call(centre.app, ENGLISH_PLUMBER_AT_226001, from_number=number)
    with Session(centre.engine) as db:
        caller_id = db.exec(select(Caller.id).where(Caller.phone == number)).one()
        call_sid = db.exec(select(CallLog.call_sid).where(CallLog.from_number == number)).one()
    assert caller_id is not None
    return caller_id, call_sid


def notes_about(name: str) -> list[str]:
    """Every note staff write about a citizen called `name`: wrap-up, review, callback (promised, tried, done)."""
    return [
        f"{name} says the tap leaks again",
        f"{name} was kept waiting too long",
        f"{name}: ring after 5 pm",
        f"{name}: phone switched off",
        f"{name}: reached, plumber booked",
    ]


def worked(centre: CallCentre, number: str, name: str) -> tuple[int, int]:
    """A citizen rings and talks to the agent (a note, a review comment), is owed a callback the agent
    works (three notes), and waits in the agent queue again: their caller's and agent call's ids."""
    caller_id, call_sid = rang(centre, number)
    wrap_up, comment, *on_the_callback = notes_about(name)
    call_id = talked(centre, call_sid, wrap_up, comment)
    callback_worked(centre, caller_id, (on_the_callback[0], on_the_callback[1], on_the_callback[2]))
    again = callqueue.Call("CA" + uuid.uuid4().hex, number, "hi")  # as the queue's wait URL notes it
    callqueue.note_waiting(centre.app.extensions["sewamitra"].redis, again, 1, 10, centre.clock.now().timestamp())
    return caller_id, call_id


def requests_closed(engine: sa.Engine, caller_id: int) -> None:
    with Session(engine) as db, db.begin():
        db.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.caller_id) == caller_id)
            .values(status=RequestStatus.CLOSED)
        )


def review_of(engine: sa.Engine, call_id: int) -> CallReview:
    with Session(engine) as db:
        return db.exec(select(CallReview).where(CallReview.agent_call_id == call_id)).one()


def test_a_citizen_erased_leaves_no_number_and_no_note_about_them_in_the_call_centre(centre: CallCentre) -> None:
    engine, connection = centre.engine, centre.app.extensions["sewamitra"].redis
    gone_caller, gone_call = worked(centre, GONE, "Kamla")
    _, kept_call = worked(centre, KEPT, "Ramesh")
    requests_closed(engine, gone_caller)
    tables, keys = table_dump(engine), redis_dump(connection)
    assert holds(tables, GONE)
    assert holds(keys, GONE)  # waiting in the queue: its entry and the call's record
    for note in notes_about("Kamla"):
        assert note in tables, note  # where the console keeps it, the audit trail's copies included

    # The agent files the citizen's erasure from the caller's screen; the supervisor approves it.
    assert centre.agent.post(f"/console/data-requests/callers/{gone_caller}", {"kind": "erasure"}).status_code == 302
    with Session(engine) as db:
        request_id = db.exec(select(PrivacyRequest.id).where(PrivacyRequest.caller_id == gone_caller)).one()
    assert centre.boss.post(f"/console/data-requests/{request_id}/approve").status_code == 302

    tables, keys = table_dump(engine), redis_dump(connection)
    assert not holds(tables, GONE), "the erased citizen's number is still in a table"
    assert not holds(keys, GONE), "the erased citizen's number is still in Redis"
    assert "Kamla" not in tables, "a note about the erased citizen is still in a table"
    assert "Kamla" not in keys
    for note in notes_about("Ramesh"):
        assert note in tables, note  # another citizen's stay
    assert holds(tables, KEPT)
    assert holds(keys, KEPT)
    # What was done stays: the call's code, the review's scores and result, the tries' outcomes.
    with Session(engine) as db:
        erased = db.get(AgentCall, gone_call)
        assert erased is not None
        assert (erased.disposition, erased.disposition_note) == ("complaint", None)
        outcomes = db.exec(
            select(CallbackAttempt.outcome, CallbackAttempt.note).order_by(col(CallbackAttempt.id))
        ).all()
        [event] = db.exec(select(AuditEvent).where(AuditEvent.action == "privacy.erased")).all()
    review = review_of(engine, gone_call)
    assert review.scores == {code: {"points": points} for code, points in SCORES.items()}
    assert (review.points, review.passed) == (75, True)
    assert review_of(engine, kept_call).scores["courtesy"]["comment"] == "Ramesh was kept waiting too long"
    assert [outcome for outcome, _ in outcomes] == ["no_answer", "reached", "no_answer", "reached"]
    assert [note for _, note in outcomes] == [
        None,
        None,
        "Ramesh: phone switched off",
        "Ramesh: reached, plumber booked",
    ]
    # The decision's audit event counts what went, and names no one.
    assert event.detail["wrap_up_notes_blanked"] == 1
    assert event.detail["review_comments_blanked"] == 1
    assert event.detail["callback_notes_blanked"] == 3  # the callback's note and its two tries'
    assert event.detail["audit_events_scrubbed"] == 1  # the note the promise was audited with

    # A supervisor corrects the erased citizen's call later, with a note about them; the citizen asks
    # again: what was written since is blanked too (their calls are under the hash now).
    correction = {"code": "booked", "note": "Kamla rang back, plumber booked"}
    assert centre.boss.post(f"/console/calls/{gone_call}/disposition", correction).status_code == 302
    assert "Kamla" in table_dump(engine)
    assert centre.agent.post(f"/console/data-requests/callers/{gone_caller}", {"kind": "erasure"}).status_code == 302
    with Session(engine) as db:
        again = db.exec(select(sa.func.max(PrivacyRequest.id)).where(PrivacyRequest.caller_id == gone_caller)).one()
    assert centre.boss.post(f"/console/data-requests/{again}/approve").status_code == 302
    assert "Kamla" not in table_dump(engine)
    assert "Ramesh says the tap leaks again" in table_dump(engine)


# -- the nightly run ---------------------------------------------------------------------------------


@pytest.fixture
def nightly(app: Flask) -> Iterator[None]:
    """The job's context, as `sewamitra worker` installs it, with the clock frozen at the nightly run."""
    with jobs_context(app, FrozenClock(NOW)):
        yield


def answered_days_ago(engine: sa.Engine, call_id: int, days: int) -> None:
    with Session(engine) as db, db.begin():
        db.execute(
            sa.update(AgentCall).where(col(AgentCall.id) == call_id).values(answered_at=NOW - timedelta(days=days))
        )


def closed_days_ago(engine: sa.Engine, callback_id: int, days: int) -> None:
    """The callback was made, and closed (or, open, made) `days` ago."""
    at = NOW - timedelta(days=days)
    with Session(engine) as db, db.begin():
        callback = db.get(CallbackRequest, callback_id)
        assert callback is not None
        callback.created_at = at
        callback.handled_at = at if callback.status is not CallbackStatus.PENDING else None
        db.add(callback)


def notes_of_callback(engine: sa.Engine, callback_id: int) -> list[str | None]:
    """The callback's note, its tries' notes, and the reasons of its audit events that carry a note."""
    with Session(engine) as db:
        callback = db.get(CallbackRequest, callback_id)
        assert callback is not None
        tries = db.exec(select(CallbackAttempt.note).where(CallbackAttempt.callback_id == callback_id)).all()
        audited = db.exec(
            select(AuditEvent.reason)
            .where(
                AuditEvent.entity == "callback_request",
                AuditEvent.entity_id == callback_id,
                col(AuditEvent.action).in_(("callback.scheduled", "callback.handled")),
            )
            .order_by(col(AuditEvent.id))
        ).all()
    return [callback.note, *tries, *audited]


def wrap_up_note(engine: sa.Engine, call_id: int) -> str | None:
    with Session(engine) as db:
        found = db.get(AgentCall, call_id)
        assert found is not None
        return found.disposition_note


def test_the_nightly_run_blanks_staffs_notes_past_their_time_and_keeps_newer_ones(
    centre: CallCentre, nightly: None
) -> None:
    """`privacy.retention.call_notes` is 90 days as config.yaml ships: a call answered 91 days ago
    loses its notes, one answered 89 days ago keeps them; a callback closed 91 days ago loses its
    notes, one closed 89 days ago and one still open since 200 days keep theirs."""
    engine = centre.engine
    caller_id, first_sid = rang(centre, GONE)
    _, second_sid = rang(centre, KEPT)
    old_call = talked(centre, first_sid, "old wrap-up note", "old comment")
    new_call = talked(centre, second_sid, "new wrap-up note", "new comment")
    answered_days_ago(engine, old_call, 91)
    answered_days_ago(engine, new_call, 89)
    old_callback = callback_worked(centre, caller_id, ("old promise", "old try", "old done"))
    new_callback = callback_worked(centre, caller_id, ("new promise", "new try", "new done"))
    open_callback = callback_worked(centre, caller_id, ("open promise", "open try", ""), close=False)
    closed_days_ago(engine, old_callback, 91)
    closed_days_ago(engine, new_callback, 89)
    closed_days_ago(engine, open_callback, 200)
    assert notes_of_callback(engine, old_callback) == ["old promise", "old try", "old done", "old promise"]

    counts = jobs.erase_expired()

    assert wrap_up_note(engine, old_call) is None
    assert review_of(engine, old_call).scores == {code: {"points": points} for code, points in SCORES.items()}
    assert (review_of(engine, old_call).points, review_of(engine, old_call).passed) == (75, True)
    assert notes_of_callback(engine, old_callback) == [None, None, None, None]
    assert wrap_up_note(engine, new_call) == "new wrap-up note"
    assert review_of(engine, new_call).scores["courtesy"] == {"points": 20, "comment": "new comment"}
    assert review_of(engine, new_call).scores["greeting"] == {"points": 10, "comment": ""}
    assert notes_of_callback(engine, new_callback) == ["new promise", "new try", "new done", "new promise"]
    assert notes_of_callback(engine, open_callback) == ["open promise", "open try", "open promise"]
    assert (counts["wrap_up_notes_blanked"], counts["review_comments_blanked"]) == (1, 1)
    assert counts["callback_notes_blanked"] == 3
    assert counts["audit_events_scrubbed"] == 1  # the promise's callback.scheduled
    assert counts["numbers"] == 0  # the citizens rang today: their numbers stay
    with Session(engine) as db:
        [run] = db.exec(select(AuditEvent).where(AuditEvent.action == "privacy.retention_run")).all()
    assert run.detail == counts

    # The next night finds nothing more to blank.
    again = jobs.erase_expired()
    blanked = ("wrap_up_notes_blanked", "review_comments_blanked", "callback_notes_blanked", "audit_events_scrubbed")
    assert [again[name] for name in blanked] == [0, 0, 0, 0]
