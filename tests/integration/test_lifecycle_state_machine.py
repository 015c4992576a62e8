"""The request and offer lifecycle as a state machine: Hypothesis plays random interleavings of
dispatch rounds, yes, no, timeouts, expiries, cancels with a reason (an agent's, or the citizen's
held by the `changes:` policy), moves to another slot, a moved job given back by its worker, fresh
rounds, hand-offs to an agency, agents' assignments, completion codes right and wrong, ratings,
problems, follow-ups, workers stood down, rework visits (a low rating or a problem; another worker
asked for), workers suspended, and the worker's day (on the way, arrived, start codes right and
wrong, codes reset by an agent, late visits flagged and taken back), through the real functions of
dispatch/offers.py, dispatch/lifecycle.py, dispatch/changes.py, dispatch/inbox.py,
dispatch/rework.py, dispatch/quality.py and dispatch/visit.py on a real database. After every step
the invariants hold: one accepted offer per request at most; requests and offers move only along
the lifecycle; every status change is in the audit trail, which tells the request's whole story; an
assigned job is exactly its worker's accepted offer; a finished job has its worker; a job has at
most one rework, of the same citizen, service and place, and only once it was done; a rework's
worker the citizen asked not to have is never asked or given it; a suspended worker gets no new
offer and no job; a visit starts only with its worker at the door; a worker whose job was taken
back is not offered it again."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
import sqlalchemy as sa
from hypothesis import event
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlmodel import Session, col, select

from core import slots
from core.clock import FrozenClock
from core.settings import CloseOutcome, Dispatch, Escalation, EscalationLevel, Rework, Settings, WorkersQuality
from dispatch import changes, citizen_calls, inbox, ladder, lifecycle, offers, quality, rework, visit
from dispatch.intake import unused_number
from dispatch.matching import Candidate
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import (
    AuditEvent,
    Caller,
    CitizenCall,
    CitizenCallStatus,
    Offer,
    OfferChannel,
    OfferStatus,
    Provider,
    RequestStatus,
    Role,
    ServiceRequest,
    User,
    Worker,
)
from tests.factories import GPO, add_worker

S, OS = RequestStatus, OfferStatus
# DESIGN.md: new → offered → assigned → completed → closed, with escalated and cancelled; and what
# the code documents: an agent's fresh round (back to new, from new, offered or escalated; offered
# still, when an offer is open: it stays open, and its worker is not texted again), an
# agent's assignment of a waiting request, a stood-down worker's job back to an agent (assigned →
# escalated), a problem after the job (completed → escalated), closed after the agent's follow-up;
# and the escalation ladder (dispatch/ladder): a request that climbed past the first rung, still
# unresolved (new, offered, assigned, escalated), closed by an officer after an answered, recorded
# call to the citizen at its current rung; a job moved to another slot given back by its worker
# (assigned → new: dispatched again).
ALLOWED: dict[RequestStatus, frozenset[RequestStatus]] = {
    S.NEW: frozenset({S.OFFERED, S.ESCALATED, S.ASSIGNED, S.CANCELLED, S.NEW, S.CLOSED}),
    S.OFFERED: frozenset({S.ASSIGNED, S.ESCALATED, S.CANCELLED, S.NEW, S.OFFERED, S.CLOSED}),
    # a visit not started in time is taken back and offered again in one transaction (visit.handle_late):
    # assigned → escalated → new, each move on the audit trail, one step as a step sees it.
    S.ASSIGNED: frozenset({S.COMPLETED, S.CANCELLED, S.ESCALATED, S.CLOSED, S.NEW}),
    S.COMPLETED: frozenset({S.CLOSED, S.ESCALATED}),
    S.ESCALATED: frozenset({S.NEW, S.ASSIGNED, S.CANCELLED, S.CLOSED}),
    S.CLOSED: frozenset(),
    S.CANCELLED: frozenset(),
}
# DESIGN.md: pending → accepted | declined | expired | withdrawn; the code adds accepted → withdrawn
# when a worker is stood down from a job in hand (lifecycle._take_back), pending → declined when a
# worker with a job in hand says yes (offers.Answer.BUSY, audited with offers.BUSY_REASON), and
# accepted → declined when a worker gives back a job moved to a time they cannot make
# (changes.give_up: not asked about it again).
OFFER_ALLOWED: dict[OfferStatus, frozenset[OfferStatus]] = {
    OS.PENDING: frozenset({OS.ACCEPTED, OS.DECLINED, OS.EXPIRED, OS.WITHDRAWN}),
    OS.ACCEPTED: frozenset(
        {OS.WITHDRAWN, OS.TAKEN_BACK, OS.DECLINED}
    ),  # taken back: not started in time (visit.py); declined: a moved job given back
    OS.DECLINED: frozenset(),
    OS.EXPIRED: frozenset(),
    OS.WITHDRAWN: frozenset(),
    OS.TAKEN_BACK: frozenset(),
}
SEEN: Counter[tuple[RequestStatus, RequestStatus]] = Counter()  # the moves the runs made, for -s
CLOSINGS: Counter[str] = Counter()  # how the officers' closes went, for -s
# Rungs short enough for the machine's time steps (5 s, 301 s, 1801 s) to pass their deadlines.
LADDER = Escalation(
    levels=tuple(
        EscalationLevel(who=who, name_en=who, name_hi=who, assign_within_minutes=5, resolve_within_minutes=30)
        for who in ("provider", "district_officer", "state_officer")
    ),
    close_outcomes=(CloseOutcome(code="resolved", en="Resolved", hi="समाधान हुआ"),),
)
ANSWERED: Counter[str] = Counter()  # the answers the workers got, for -s
REWORKS: Counter[str] = Counter()  # reworks booked and offered, suspensions, for -s
VISITS: Counter[str] = Counter()  # what the workers' starts and the late sweeps did, for -s
PHONES = (f"+9198{n:08d}" for n in itertools.count(10_000_000))  # unique across every run of the machine


@dataclass(frozen=True)
class Rows:
    """What the invariants read after a step: this run's rows."""

    requests: dict[int, ServiceRequest]
    offers: list[Offer]
    trail: list[tuple[int | None, str | None, str | None]]  # (request, from, to) of each status change, in order
    escalation_closes: list[AuditEvent]
    calls: dict[int | None, CitizenCall]


class Lifecycle(RuleBasedStateMachine):
    """One helpline's day, in random order; the database is shared by the runs, each run keeps to its own rows."""

    engine: ClassVar[sa.Engine]
    dispatch_rules: ClassVar[Dispatch]
    rework_rules: ClassVar[Rework] = Rework()
    standards: ClassVar[WorkersQuality] = WorkersQuality()
    settings: ClassVar[Settings]
    helpline: ClassVar[Settings]

    requests = Bundle("requests")
    workers = Bundle("workers")
    offers = Bundle("offers")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FrozenClock(datetime.now(UTC))
        self.request_status: dict[int, RequestStatus] = {}
        self.offer_status: dict[int, OfferStatus] = {}
        self.staff: list[int] = []
        self.suspended: dict[int, set[int]] = {}  # worker → the ids of their offers when suspended
        self.officer: int | None = None

    # -- the world ---------------------------------------------------------------------------------

    @initialize(target=workers)
    def first_workers(self) -> object:
        return multiple(self.hire(), self.hire())

    @rule(target=workers)
    def hire(self) -> int:
        worker_id = add_worker(self.engine, "Worker", next(PHONES), 0.5)
        self.staff.append(worker_id)
        return worker_id

    @rule(target=requests)
    def call_in(self) -> int:
        with session_scope(self.engine) as session:
            caller = Caller(phone=next(PHONES))
            session.add(caller)
            session.flush()
            request = ServiceRequest(
                caller_id=caller.id,
                number=unused_number(session),
                service_code="plumber",
                pincode="226001",
                district="LUCKNOW",
                latitude=GPO.latitude,
                longitude=GPO.longitude,
                created_at=self.clock.now(),
            )
            session.add(request)
            session.flush()
            assert request.id is not None
        self.request_status[request.id] = S.NEW
        return request.id

    @rule(seconds=st.sampled_from([5, 301, 1801]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    # -- dispatch and the workers' answers ---------------------------------------------------------

    @rule(target=offers, request=requests)
    def dispatch_round(self, request: int) -> object:
        candidates = [Candidate(worker_id, 1.0, None, 4.0) for worker_id in self.staff]
        with session_scope(self.engine) as session:
            found = session.get(ServiceRequest, request)
            assert found is not None
            first = rework.first_choice(session, found, self.rework_rules)
            made = offers.next_offers(
                session, request, candidates, self.dispatch_rules, self.clock.now(), first_choice=first
            ).offers
        if first is not None and made:
            offered = "to its first worker" if made[0].worker_id == first else "to another"
            event(f"a rework offered {offered}")
            REWORKS[f"offered {offered}"] += 1
        return multiple(*[offer.id for offer in made])

    @rule(offer=offers, yes=st.booleans())
    def answer(self, offer: int, yes: bool) -> None:
        with Session(self.engine) as session:
            asked = session.get(Offer, offer)
            assert asked is not None
            in_hand = offers.job_in_hand(session, asked.worker_id, but_not=asked.request_id)
            was_open = (
                asked.status is OS.PENDING and asked.expires_at is not None and asked.expires_at > self.clock.now()
            )
        answer = offers.reply(self.engine, offer, yes, self.clock.now(), "worker:test")
        event(f"answer: {answer.value}")
        ANSWERED[answer.value] += 1
        if yes and in_hand is not None:  # one job at a time (the default): a yes with a job in hand is refused
            assert answer is not offers.Answer.ACCEPTED, f"offer {offer}: a second job for worker {asked.worker_id}"
            assert (answer is offers.Answer.BUSY) == was_open, (offer, answer, was_open)

    @rule(offer=offers)
    def unanswered(self, offer: int) -> None:
        with session_scope(self.engine) as session:
            offers.expire(session, offer, self.clock.now())

    # -- agents ------------------------------------------------------------------------------------

    @rule(request=requests, really=st.integers(0, 3), by_citizen=st.booleans())
    def cancel(self, request: int, really: int, by_citizen: bool) -> None:
        if really:  # most citizens keep their request: cancelling less often lets the rest of the story happen
            return
        rules = self.helpline.changes
        why = changes.Why(rules.reasons[0], "" if by_citizen else "the citizen called it off")
        with session_scope(self.engine) as session:
            found = session.get(ServiceRequest, request)
            assert found is not None
            status = found.status
            allowed = changes.verdict(rules, found, self.clock.now()) is changes.Verdict.FREE
            done = changes.cancel(
                session, request, why, "caller:1", self.clock.now(), citizen=rules if by_citizen else None
            )
        if status not in changes.OPEN:
            assert not done.ok
        elif by_citizen and not allowed:  # the policy holds: an agent decides
            assert done.error == changes.NEEDS_AGENT
        else:
            assert done.ok, done

    @rule(request=requests, which=st.integers(0, 4), by_citizen=st.booleans())
    def move_slot(self, request: int, which: int, by_citizen: bool) -> None:
        open_slots = slots.upcoming(self.helpline, self.clock.now())
        if not open_slots:
            return
        with session_scope(self.engine) as session:
            before = session.get(ServiceRequest, request)
            assert before is not None
            worker, status = before.worker_id, before.status
            moved = changes.reschedule(
                session,
                self.helpline,
                request,
                open_slots[which % len(open_slots)],
                "caller:1",
                self.clock.now(),
                by_citizen=by_citizen,
            )
        after = self._request(request)
        assert (after.worker_id, after.status) == (worker, status), "a move changes the slot only"
        if moved.ok:
            assert moved.keeps == (worker if status is S.ASSIGNED else None)

    @rule(worker=workers, gives_back=st.booleans())
    def their_job_moved(self, worker: int, gives_back: bool) -> None:
        """An agent moves the job a worker has in hand; the worker keeps it, or cannot make the new
        time and gives it back at once."""
        open_slots = slots.upcoming(self.helpline, self.clock.now())
        with session_scope(self.engine) as session:
            job = offers.job_in_hand(session, worker)
            slot = next((s for s in open_slots if job and s.starts_at != job.slot_starts_at), None)
            if job is None or slot is None:
                return
            moved = changes.reschedule(session, self.helpline, job.id or 0, slot, "user:1", self.clock.now())
        assert moved.keeps == worker, moved
        if gives_back:
            self.give_back(worker, by_number=True)

    @rule(worker=workers, by_number=st.booleans())
    def give_back(self, worker: int, by_number: bool) -> None:
        with session_scope(self.engine) as session:
            job = offers.job_in_hand(session, worker)
            number = job.number if job is not None and by_number else None
            given = changes.give_up(session, worker, number, self.clock.now())
        if given is not None:  # only a job moved since they took it; dispatch does not ask them about it again
            assert given.worker_id is None
            assert given.status is S.NEW
            with Session(self.engine) as session:
                assert worker in offers.asked_before(session, given.id or 0)
            event("a moved job given back")

    @rule(request=requests)
    def hand_to_an_agency(self, request: int) -> None:
        with session_scope(self.engine) as session:
            agency = Provider(name=f"Agency {next(PHONES)}", district="LUCKNOW")
            session.add(agency)
            session.flush()
            assert agency.id is not None
            lifecycle.hand_to_agency(session, request, agency.id, "user:1", "their worker is near", self.clock.now())

    @rule(request=requests)
    def dispatch_again(self, request: int) -> None:
        with session_scope(self.engine) as session:
            lifecycle.redispatch(session, request, "user:1", "a fresh round", self.clock.now())

    @rule(request=requests, worker=workers)
    def assign(self, request: int, worker: int) -> None:
        with session_scope(self.engine) as session:
            lifecycle.assign(session, request, worker, "user:1", self.clock.now())

    @rule(request=requests)
    def follow_up(self, request: int) -> None:
        with session_scope(self.engine) as session:
            lifecycle.close_after_follow_up(session, request, "user:1", "sorted out on the phone", self.clock.now())

    @rule(worker=workers)
    def suspend(self, worker: int) -> None:
        with session_scope(self.engine) as session:
            if quality.suspend(session, worker, "complaints", "user:1", self.clock.now()):
                lifecycle.stand_down(session, worker, "user:1", "suspended", self.clock.now())
                offered = session.exec(select(Offer.id).where(Offer.worker_id == worker)).all()
                self.suspended[worker] = {int(o or 0) for o in offered}
                REWORKS["suspended"] += 1

    @rule(worker=workers)
    def lift(self, worker: int) -> None:
        with session_scope(self.engine) as session:
            if quality.lift_suspension(session, worker, "sorted out", "user:1", self.clock.now()):
                self.suspended.pop(worker, None)

    @rule(request=requests)
    def another_worker(self, request: int) -> None:
        with session_scope(self.engine) as session:
            rework.another_worker(session, request, "caller:test", "the citizen asked", self.clock.now())

    @rule(worker=consumes(workers))
    def stand_down(self, worker: int) -> None:
        with session_scope(self.engine) as session:
            session.execute(sa.update(Worker).where(col(Worker.id) == worker).values(active=False))
            lifecycle.stand_down(session, worker, "user:1", "deactivated", self.clock.now())
        self.staff.remove(worker)

    # -- the job -----------------------------------------------------------------------------------

    @rule(request=requests, right_code=st.booleans(), own_job=st.booleans())
    def done(self, request: int, right_code: bool, own_job: bool) -> None:
        found = self._request(request)
        worker = found.worker_id if own_job and found.worker_id else (self.staff or [0])[0]
        code = found.completion_code if right_code and found.completion_code else "0000"
        with session_scope(self.engine) as session:
            offers.complete(session, found.number, worker, code, self.clock.now())

    @rule(
        target=requests,
        request=requests,
        worker=workers,
        then=st.sampled_from(["nothing", "rated", "problem"]),
        rating=st.integers(1, 5),
    )
    def an_agents_worker_does_the_job(self, request: int, worker: int, then: str, rating: int) -> object:
        """An agent gives the job to a worker, who does it, and the citizen may rate it or report a
        problem at once: the quick way to a finished job and its rework. The moves between are checked
        as they happen."""
        with session_scope(self.engine) as session:
            if not lifecycle.assign(session, request, worker, "user:1", self.clock.now()).ok:
                return multiple()
        self.requests_move_only_along_the_lifecycle(self._read())  # the step between: assigned
        found = self._request(request)
        with session_scope(self.engine) as session:
            done = offers.complete(session, found.number, worker, found.completion_code or "", self.clock.now())
            assert done is not None
        if then == "nothing":
            return multiple()
        self.requests_move_only_along_the_lifecycle(self._read())  # the step between: completed
        if then == "rated":
            return self.rated(request, rating)
        return self.problem_reported(request, other=rating % 2 == 0)

    @rule(target=requests, request=requests, rating=st.integers(1, 5))
    def rated(self, request: int, rating: int) -> object:
        with session_scope(self.engine) as session:
            found = session.get(ServiceRequest, request)
            assert found is not None
            if not inbox.rate(session, found, rating, actor="caller:test"):
                return multiple()
            booked = rework.after_rating(
                session, request, rating, self.rework_rules, self.standards, "caller:test", self.clock.now()
            )
        return self._booked(booked)

    @rule(target=requests, request=requests, other=st.booleans())
    def problem_reported(self, request: int, other: bool) -> object:
        with session_scope(self.engine) as session:
            booked = rework.problem_reported(
                session,
                request,
                self.rework_rules,
                self.standards,
                "ivr:feedback",
                self.clock.now(),
                other_worker=other,
            )
        return self._booked(booked)

    def _booked(self, booked: rework.Reopened) -> object:
        if not booked.new or booked.rework_id is None:
            return multiple()
        event("a rework booked")
        REWORKS["booked"] += 1
        self.request_status[booked.rework_id] = S.NEW
        return multiple(booked.rework_id)

    @rule(request=requests)
    def problem(self, request: int) -> None:
        """A problem past the rework window: to an agent."""
        with session_scope(self.engine) as session:
            found = session.get(ServiceRequest, request)
            assert found is not None
            offers.move(
                session,
                found,
                S.COMPLETED,
                S.ESCALATED,
                "ivr:feedback",
                "the citizen reported a problem",
                self.clock.now(),
            )

    # -- the escalation ladder -----------------------------------------------------------------------

    @rule(request=requests, wait=st.sampled_from([0, 1801]))
    def climb(self, request: int, wait: int) -> None:
        """The sweeper's climb, after `wait` seconds (past every rung's deadlines, or none)."""
        self.clock.advance(timedelta(seconds=wait))
        level = self._request(request).escalation_level
        with session_scope(self.engine) as session:
            ladder.climb(session, request, level, LADDER, self.clock.now())
        assert self._request(request).escalation_level in (level, level + 1)

    @rule(request=requests, how=st.sampled_from(["recorded", "recorded", "not recorded", "unanswered"]))
    def officer_calls_the_citizen(self, request: int, how: str) -> None:
        answered, recorded = how != "unanswered", how == "recorded"
        with session_scope(self.engine) as session:
            found = session.get(ServiceRequest, request)
            officer = session.get(User, self._officer())
            assert found is not None
            assert officer is not None
            placed = citizen_calls.place(session, found, officer, self.clock.now())
            if isinstance(placed, citizen_calls.NoCall):
                return
            call_id = placed.id or 0
            citizen_calls.ended(session, call_id, answered, 60 if answered else 0, "test", self.clock.now())
            if recorded and answered:
                citizen_calls.recorded(session, call_id, f"CA{call_id:032x}", "twilio", f"RE{call_id:032x}", "u", 60)

    @rule(request=requests)
    def officer_closes(self, request: int) -> None:
        with Session(self.engine) as session:
            found = session.get(ServiceRequest, request)
            assert found is not None
            closable = ladder.why_not_closable(session, found) is None
        with session_scope(self.engine) as session:
            refused = ladder.close(
                session, request, LADDER, "resolved", "spoke to the citizen", "user:9", self.clock.now()
            )
        CLOSINGS["closed" if refused is None else refused.value] += 1
        assert (refused is None) is closable, (request, refused)

    def _officer(self) -> int:
        if self.officer is None:
            with session_scope(self.engine) as session:
                user = User(
                    username=f"dm.{next(PHONES)[1:]}",
                    password_hash="x",
                    role=Role.DISTRICT_OFFICER,
                    phone="+919811000001",
                )
                session.add(user)
                session.flush()
                self.officer = user.id
        assert self.officer is not None
        return self.officer

    # -- the worker's day --------------------------------------------------------------------------

    @rule(request=requests, minutes=st.integers(1, 300))
    def on_the_way(self, request: int, minutes: int) -> None:
        self._visit(request, lambda s, r, w: visit.on_the_way(s, self.settings, r, w, minutes, self.clock.now()))

    @rule(request=requests)
    def arrived(self, request: int) -> None:
        self._visit(request, lambda s, r, w: visit.arrived(s, self.settings, r, w, self.clock.now()))

    @rule(request=requests, right_code=st.booleans())
    def start(self, request: int, right_code: bool) -> None:
        found = self._request(request)
        code = found.start_code if right_code and found.start_code else "0000"
        done = self._visit(request, lambda s, r, w: visit.start(s, self.settings, r, w, code, self.clock.now()))
        if done is not None:
            event(f"start: {done.result.value}")
            VISITS[f"start: {done.result.value}"] += 1

    @rule(request=requests, which=st.sampled_from(visit.Code))
    def agent_resets_a_code(self, request: int, which: visit.Code) -> None:
        with session_scope(self.engine) as session:
            visit.reset_code(session, self.settings, request, which, "user:1", self.clock.now())

    @rule(request=requests, minutes=st.sampled_from([0, 16, 46]))
    def late_visit_swept(self, request: int, minutes: int) -> None:
        """Time passes (past the visit's due time, and past its grace too), then the sweeper looks."""
        self.clock.advance(timedelta(minutes=minutes))
        with session_scope(self.engine) as session:
            late = visit.handle_late(session, self.settings, request, self.clock.now())
        event(f"late: {late.what}")
        VISITS[f"late: {late.what}"] += 1

    def _visit(
        self, request: int, step: Callable[[Session, ServiceRequest, int], visit.Visited]
    ) -> visit.Visited | None:
        with session_scope(self.engine) as session:
            found = session.get(ServiceRequest, request)
            if found is None or found.worker_id is None:
                return None
            return step(session, found, found.worker_id)

    # -- what must always be true ------------------------------------------------------------------

    @invariant()
    def the_lifecycle_holds(self) -> None:
        """Every check below after every step, on one read of this run's rows (a read of its own for
        each check made the invariants four fifths of the run's time)."""
        rows = self._read()
        self.a_rework_redoes_one_finished_job_of_the_same_citizen(rows)
        self.a_suspended_worker_gets_no_new_offer_and_no_job(rows)
        self.a_visit_starts_only_with_its_worker_at_the_door_and_a_waiting_request_has_none(rows)
        self.a_worker_whose_job_was_taken_back_is_not_offered_it_again(rows)
        self.an_escalated_request_closes_only_after_an_answered_recorded_call_at_its_rung(rows)
        self.offers_move_only_along_their_lifecycle(rows)
        self.one_accepted_offer_and_it_is_the_assigned_workers(rows)
        self.requests_move_only_along_the_lifecycle(rows)
        self.the_audit_trail_tells_every_move(rows)  # against the statuses the check before recorded

    def an_escalated_request_closes_only_after_an_answered_recorded_call_at_its_rung(self, rows: Rows) -> None:
        for close in rows.escalation_closes:
            call = rows.calls[close.detail["citizen_call_id"]]
            assert call.request_id == close.entity_id
            assert call.status is CitizenCallStatus.ANSWERED
            assert call.recording_id is not None
            assert call.escalation_level == close.detail["level"] > ladder.FIRST

    def a_visit_starts_only_with_its_worker_at_the_door_and_a_waiting_request_has_none(self, rows: Rows) -> None:
        allowed = self.settings.visit.start_code_tries
        for request_id, request in rows.requests.items():
            assert request.start_code_tries <= allowed, request_id
            if request.started_at is not None:
                assert request.arrived_at is not None, request_id
                assert request.worker_id is not None, request_id
            if request.status in (S.NEW, S.OFFERED):  # taken back, or never assigned: nothing of a visit
                assert request.started_at is None, request_id
                assert request.start_code is None, request_id
                assert request.on_the_way_at is None, request_id
                assert request.late_flagged_at is None, request_id

    def a_worker_whose_job_was_taken_back_is_not_offered_it_again(self, rows: Rows) -> None:
        mine = rows.offers
        for taken in (o for o in mine if o.status is OS.TAKEN_BACK):
            later = [
                o
                for o in mine
                if o.request_id == taken.request_id
                and o.worker_id == taken.worker_id
                and (o.id or 0) > (taken.id or 0)
                and o.channel is not OfferChannel.AGENT  # an agent's choice, after phoning them, may
            ]
            assert later == [], (taken.request_id, taken.worker_id)

    def requests_move_only_along_the_lifecycle(self, rows: Rows) -> None:
        for request_id, before in self.request_status.items():
            now = rows.requests[request_id].status
            assert now == before or now in ALLOWED[before], f"request {request_id}: {before} → {now}"
            if now != before:
                event(f"{before.value} → {now.value}")
                SEEN[(before, now)] += 1
            self.request_status[request_id] = now

    def offers_move_only_along_their_lifecycle(self, rows: Rows) -> None:
        for offer in rows.offers:
            assert offer.id is not None
            before = self.offer_status.get(offer.id, OS.PENDING)
            assert offer.status == before or offer.status in OFFER_ALLOWED[before], (
                f"offer {offer.id}: {before} → {offer.status}"
            )
            self.offer_status[offer.id] = offer.status

    def the_audit_trail_tells_every_move(self, rows: Rows) -> None:
        for request_id in self.request_status:
            moves = [(old, new) for entity_id, old, new in rows.trail if entity_id == request_id]
            status = S.NEW
            for old, new in moves:
                assert new is not None, (request_id, moves)
                assert old == status.value, (request_id, moves)
                assert S(new) in ALLOWED[status], (request_id, moves)
                status = S(new)
            assert status == self.request_status[request_id], (request_id, moves)

    def one_accepted_offer_and_it_is_the_assigned_workers(self, rows: Rows) -> None:
        for request_id, request in rows.requests.items():
            mine = [o for o in rows.offers if o.request_id == request_id]
            accepted = [o for o in mine if o.status is OS.ACCEPTED]
            pending = [o for o in mine if o.status is OS.PENDING]
            assert len(accepted) <= 1, f"request {request_id} has {len(accepted)} accepted offers"
            assert len(pending) <= self.dispatch_rules.parallel_offers
            if request.status is S.ASSIGNED:
                assert request.worker_id is not None
                assert request.completion_code
                assert [o.worker_id for o in accepted] == [request.worker_id]
            if request.status not in offers.DISPATCHABLE:
                assert pending == [], f"a {request.status} request still asks {len(pending)} workers"
            if request.status is S.COMPLETED or (request.status is S.CLOSED and request.rating):
                assert request.worker_id is not None
                assert request.completed_at is not None

    def a_rework_redoes_one_finished_job_of_the_same_citizen(self, rows: Rows) -> None:
        mine = list(rows.requests.values())
        redone = Counter(r.rework_of_id for r in mine if r.rework_of_id is not None)
        assert all(count == 1 for count in redone.values()), redone
        for request in mine:
            if request.rework_of_id is None:
                continue
            original = rows.requests[request.rework_of_id]
            assert original.completed_at is not None
            assert original.worker_id is not None
            assert original.status is S.CLOSED
            assert (request.caller_id, request.service_code, request.pincode) == (
                original.caller_id,
                original.service_code,
                original.pincode,
            )
            if request.avoid_worker_id is not None:
                assert request.avoid_worker_id == original.worker_id
                theirs = [o for o in rows.offers if o.request_id == request.id and o.worker_id == original.worker_id]
                assert not [o for o in theirs if o.status in (OS.PENDING, OS.ACCEPTED)], theirs

    def a_suspended_worker_gets_no_new_offer_and_no_job(self, rows: Rows) -> None:
        for worker, before in self.suspended.items():
            later = [o for o in rows.offers if o.worker_id == worker and o.id not in before]
            assert later == [], f"suspended worker {worker} was offered {[o.id for o in later]}"
            in_hand = [r for r in rows.requests.values() if r.worker_id == worker]
            assert all(r.status is not S.ASSIGNED for r in in_hand)

    def _read(self) -> Rows:
        """This run's requests, their offers, their audit trail and escalation closes (with the calls
        the closes name), read in one session."""
        mine = list(self.request_status)
        with Session(self.engine) as session:
            requests = {
                r.id or 0: r for r in session.exec(select(ServiceRequest).where(col(ServiceRequest.id).in_(mine)))
            }
            every_offer = list(session.exec(select(Offer).where(col(Offer.request_id).in_(mine))))
            trail = session.exec(
                select(AuditEvent.entity_id, AuditEvent.from_status, AuditEvent.to_status)
                .where(AuditEvent.entity == "service_request", col(AuditEvent.entity_id).in_(mine))
                .where(col(AuditEvent.from_status).is_not(None))
                .order_by(col(AuditEvent.id))
            ).all()
            closes = list(
                session.exec(
                    select(AuditEvent).where(
                        AuditEvent.action == AuditAction.REQUEST_ESCALATION_CLOSED.value,
                        col(AuditEvent.entity_id).in_(mine),
                    )
                )
            )
            named = [close.detail["citizen_call_id"] for close in closes]
            calls = (
                {c.id: c for c in session.exec(select(CitizenCall).where(col(CitizenCall.id).in_(named)))}
                if named
                else {}
            )
        assert requests.keys() == self.request_status.keys()
        assert calls.keys() == set(named), "an escalation's close names a call that does not exist"
        return Rows(requests, every_offer, [(e, o, n) for e, o, n in trail], closes, calls)

    def _request(self, request_id: int) -> ServiceRequest:
        with Session(self.engine) as session:
            found = session.get(ServiceRequest, request_id)
        assert found is not None
        return found


@pytest.fixture
def machine(engine: sa.Engine, settings: Settings) -> type[Lifecycle]:
    Lifecycle.engine = engine
    Lifecycle.dispatch_rules = settings.dispatch.model_copy(update={"parallel_offers": 2, "max_offers": 4})
    # Visits late within the runs' time jumps: due 15 minutes after assignment, taken back 30 after that.
    late_soon = settings.visit.model_copy(update={"start_within_minutes": 15, "late_grace_minutes": 30})
    Lifecycle.settings = settings.model_copy(update={"visit": late_soon})
    Lifecycle.helpline = Lifecycle.settings
    return Lifecycle


def test_no_interleaving_of_answers_and_moves_breaks_the_lifecycle(machine: type[Lifecycle]) -> None:
    run_state_machine_as_test(machine, settings=hypothesis_settings(stateful_step_count=40))
    print("moves made:", {f"{old.value}→{new.value}": n for (old, new), n in sorted(SEEN.items())})
    print("answers:", dict(sorted(ANSWERED.items())))
    print("reworks:", dict(sorted(REWORKS.items())))
    print("officers' closes:", dict(sorted(CLOSINGS.items())))
    print("visits:", dict(sorted(VISITS.items())))
