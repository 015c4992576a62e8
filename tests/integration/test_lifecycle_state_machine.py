"""The request and offer lifecycle as a state machine: Hypothesis plays random interleavings of
dispatch rounds, yes, no, timeouts, expiries, cancels with a reason (an agent's, or the citizen's
held by the `changes:` policy), moves to another slot, a moved job given back by its worker, fresh
rounds, hand-offs to an agency, agents' assignments, completion codes right and wrong, ratings,
problems, follow-ups and workers stood down, through the real functions of dispatch/offers.py,
dispatch/lifecycle.py, dispatch/changes.py and dispatch/inbox.py on a real
database. After every step the invariants hold: one accepted offer per request at most; requests
and offers move only along the lifecycle; every status change is in the audit trail, which tells
the request's whole story; an assigned job is exactly its worker's accepted offer; a finished job
has its worker."""

from __future__ import annotations

import itertools
from collections import Counter
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
from core.settings import Dispatch, Settings
from dispatch import changes, inbox, lifecycle, offers
from dispatch.intake import unused_number
from dispatch.matching import Candidate
from storage.db import session_scope
from storage.models import AuditEvent, Offer, OfferStatus, Provider, RequestStatus, ServiceRequest, Worker
from tests.factories import GPO, add_worker

S, OS = RequestStatus, OfferStatus
# DESIGN.md: new → offered → assigned → completed → closed, with escalated and cancelled; and what
# the code documents: an agent's fresh round (back to new, from new, offered or escalated; offered
# still, when an offer is open: it stays open, and its worker is not texted again), an
# agent's assignment of a waiting request, a stood-down worker's job back to an agent (assigned →
# escalated), a problem after the job (completed → escalated), closed after the agent's follow-up, and
# a job moved to another slot given back by its worker (assigned → new: dispatched again).
ALLOWED: dict[RequestStatus, frozenset[RequestStatus]] = {
    S.NEW: frozenset({S.OFFERED, S.ESCALATED, S.ASSIGNED, S.CANCELLED, S.NEW}),
    S.OFFERED: frozenset({S.ASSIGNED, S.ESCALATED, S.CANCELLED, S.NEW, S.OFFERED}),
    S.ASSIGNED: frozenset({S.COMPLETED, S.CANCELLED, S.ESCALATED, S.NEW}),
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
    OS.ACCEPTED: frozenset({OS.WITHDRAWN, OS.DECLINED}),
    OS.DECLINED: frozenset(),
    OS.EXPIRED: frozenset(),
    OS.WITHDRAWN: frozenset(),
}
SEEN: Counter[tuple[RequestStatus, RequestStatus]] = Counter()  # the moves the runs made, for -s
ANSWERED: Counter[str] = Counter()  # the answers the workers got, for -s
PHONES = (f"+9198{n:08d}" for n in itertools.count(10_000_000))  # unique across every run of the machine


class Lifecycle(RuleBasedStateMachine):
    """One helpline's day, in random order; the database is shared by the runs, each run keeps to its own rows."""

    engine: ClassVar[sa.Engine]
    dispatch_rules: ClassVar[Dispatch]
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
            request = ServiceRequest(
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
            made = offers.next_offers(session, request, candidates, self.dispatch_rules, self.clock.now()).offers
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

    @rule(request=requests, rating=st.integers(1, 5))
    def rated(self, request: int, rating: int) -> None:
        with session_scope(self.engine) as session:
            found = session.get(ServiceRequest, request)
            assert found is not None
            inbox.rate(session, found, rating, actor="caller:test")

    @rule(request=requests)
    def problem(self, request: int) -> None:
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

    # -- what must always be true ------------------------------------------------------------------

    @invariant()
    def requests_move_only_along_the_lifecycle(self) -> None:
        for request_id, before in self.request_status.items():
            now = self._request(request_id).status
            assert now == before or now in ALLOWED[before], f"request {request_id}: {before} → {now}"
            if now != before:
                event(f"{before.value} → {now.value}")
                SEEN[(before, now)] += 1
            self.request_status[request_id] = now

    @invariant()
    def offers_move_only_along_their_lifecycle(self) -> None:
        for offer in self._offers():
            assert offer.id is not None
            before = self.offer_status.get(offer.id, OS.PENDING)
            assert offer.status == before or offer.status in OFFER_ALLOWED[before], (
                f"offer {offer.id}: {before} → {offer.status}"
            )
            self.offer_status[offer.id] = offer.status

    @invariant()
    def the_audit_trail_tells_every_move(self) -> None:
        with Session(self.engine) as session:
            for request_id in self.request_status:
                moves = session.exec(
                    select(AuditEvent.from_status, AuditEvent.to_status)
                    .where(AuditEvent.entity == "service_request", AuditEvent.entity_id == request_id)
                    .where(col(AuditEvent.from_status).is_not(None))
                    .order_by(col(AuditEvent.id))
                ).all()
                status = S.NEW
                for old, new in moves:
                    assert new is not None, (request_id, moves)
                    assert old == status.value, (request_id, moves)
                    assert S(new) in ALLOWED[status], (request_id, moves)
                    status = S(new)
                assert status == self.request_status[request_id], (request_id, moves)

    @invariant()
    def one_accepted_offer_and_it_is_the_assigned_workers(self) -> None:
        for request_id in self.request_status:
            request = self._request(request_id)
            mine = [o for o in self._offers() if o.request_id == request_id]
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

    def _request(self, request_id: int) -> ServiceRequest:
        with Session(self.engine) as session:
            found = session.get(ServiceRequest, request_id)
        assert found is not None
        return found

    def _offers(self) -> list[Offer]:
        with Session(self.engine) as session:
            query = select(Offer).where(col(Offer.request_id).in_(list(self.request_status)))
            return list(session.exec(query).all())


@pytest.fixture
def machine(engine: sa.Engine, settings: Settings) -> type[Lifecycle]:
    Lifecycle.engine = engine
    Lifecycle.dispatch_rules = settings.dispatch.model_copy(update={"parallel_offers": 2, "max_offers": 4})
    Lifecycle.helpline = settings
    return Lifecycle


def test_no_interleaving_of_answers_and_moves_breaks_the_lifecycle(machine: type[Lifecycle]) -> None:
    run_state_machine_as_test(machine, settings=hypothesis_settings(stateful_step_count=40))
    print("moves made:", {f"{old.value}→{new.value}": n for (old, new), n in sorted(SEEN.items())})
    print("answers:", dict(sorted(ANSWERED.items())))
