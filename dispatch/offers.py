"""The life of a request's offers, in the database: offer, accept, decline, expire, escalate,
complete. Every change of state is a compare-and-set UPDATE, so two replies racing each other
(or a retried job racing the sweeper) can never both win; each change is an audit event.

Functions that take a session flush but never commit: the job or view that calls them owns the
transaction, and sends SMS or places calls only after it has committed. `reply` owns its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from core import numbers, slots
from core.settings import Dispatch
from dispatch import quality
from dispatch.matching import Candidate
from storage.audit import AuditAction, record, record_rows, row
from storage.db import ArrayInsert, any_id, session_scope
from storage.models import (
    AuditEvent,
    Offer,
    OfferChannel,
    OfferStatus,
    RequestStatus,
    ServiceRequest,
    Worker,
    WorkerSkill,
)

DISPATCHABLE = (RequestStatus.NEW, RequestStatus.OFFERED)
# A job in the worker's hands: the one status in which a request is theirs and not yet done.
IN_HAND = (RequestStatus.ASSIGNED,)
BUSY_REASON = "busy: already has a job in hand"  # a yes refused, told apart from a no in the audit trail
# A job taken back starts its next visit afresh: no news of the last worker's day, no codes of theirs.
VISIT_CLEARED: dict[str, object] = {
    "completion_code": None,
    "on_the_way_at": None,
    "eta_minutes": None,
    "arrived_at": None,
    "started_at": None,
    "start_code": None,
    "start_code_tries": 0,
    "late_flagged_at": None,
}


def new_round(now: datetime, reach_km: float | None = None) -> dict[str, Any]:
    """A request's columns as a fresh round of offers starts: its offer count and escalation clock
    start again from `now`, reaching `reach_km` (None: the service's own radius)."""
    return {
        "round_started_at": now,
        "round_radius_km": reach_km,
        "updated_at": now,
        "dispatch_round": col(ServiceRequest.dispatch_round) + 1,
    }


class Answer(StrEnum):
    ACCEPTED = "accepted"
    DECLINED = "declined"
    TAKEN = "taken"  # someone else already has the job
    TOO_LATE = "too_late"  # this offer expired or was withdrawn
    BUSY = "busy"  # the worker already has a job in hand: this offer is closed, the request goes on
    NO_OFFER = "no_offer"


@dataclass(frozen=True)
class Dispatched:
    """What one round of dispatch did: new offers to send, or an escalation, or nothing."""

    offers: tuple[Offer, ...] = ()
    workers: tuple[Worker, ...] = ()  # whom the offers ask, in their order (loaded: the offers' senders need them)
    escalated: bool = False
    reason: str = ""
    again: bool = False  # nobody could be asked now, but a worker another transaction held may be free shortly
    request: ServiceRequest | None = None  # the request offered, when the round made offers
    opened: bool = False  # the round's offers are the request's first: it goes from new to offered


def audit(
    session: Session,
    actor: str,
    action: AuditAction,
    request: ServiceRequest,
    *,
    from_status: str | None = None,
    reason: str | None = None,
    **detail: object,
) -> None:
    """A move of a request, recorded with the status it reached."""
    session.add(AuditEvent(**_moved(action, request, actor=actor, from_status=from_status, reason=reason, **detail)))


def next_offers(
    session: Session,
    request_id: int,
    candidates: Sequence[Candidate],
    rules: Dispatch,
    now: datetime,
    *,
    first_choice: int | None = None,
    police_valid_days: int = 0,
    together: Together | None = None,
) -> Dispatched:
    """One round of dispatch: expire stale offers, then offer to the best eligible candidates or,
    when the request has waited or been refused too long, escalate it. A rework is offered to its
    `first_choice` (the worker who did the job) alone, if they were never asked about it and may
    take it; its `avoid_worker_id` is never asked. A police verification older than
    `police_valid_days` (0: no limit) no longer holds.

    The request is moved to offered and its offers are inserted with their audit events, unless the
    round is one of a batch tried `together`: then the batch does both for all its rounds
    (`record_offers`) before it commits."""
    request = session.get(ServiceRequest, request_id)
    if request is None or request.status not in DISPATCHABLE:
        return Dispatched(reason="not dispatchable")
    first_round = request.status is RequestStatus.NEW  # no open offers in this round: nothing to expire or count
    if not first_round:
        if not _hold(session, request, now):
            return Dispatched(reason="changed meanwhile")
        expire_stale(session, request_id, now)
    since = request.round_started_at or request.created_at  # an agent may start a new round of offers
    earlier = [] if _never_offered(request) else _offers_of(session, request_id)
    offers = [o for o in earlier if o.dispatch_round == request.dispatch_round]
    # Open offers count whichever round made them: an agent's new round waits for one still open (its
    # worker was texted; asking them again would be a second SMS for one job) as for its own.
    live = [o for o in earlier if o.status is OfferStatus.PENDING]
    if len(live) >= rules.parallel_offers:
        return Dispatched(reason="waiting for an answer")
    if len(offers) >= rules.max_offers or now - since >= timedelta(seconds=rules.escalate_after):
        return _escalate(session, request, "no worker took it in time", now)
    limit = rules.parallel_offers - len(live)
    chosen, held_elsewhere = _choose(
        session, request, candidates, earlier, rules, limit, now.date(), first_choice, police_valid_days, together
    )
    if not chosen and not live:
        return _nobody_now(session, request, held_elsewhere, now)
    first = request.status is RequestStatus.NEW
    if (
        first
        and together is None
        and not _compare_and_set(session, request, RequestStatus.NEW, RequestStatus.OFFERED, now)
    ):
        return Dispatched(reason="changed meanwhile")
    made = tuple(_offer(session, request, worker, rules, now, together) for worker in chosen)
    result = Dispatched(offers=made, workers=tuple(chosen), request=request, opened=first)
    if together is None:
        record_offers(session, [result], now)
    else:
        together.offered.update(offer.worker_id for offer in made)
    return result


@dataclass
class Together:
    """What a batch tried together tells its rounds. The workers its earlier rounds offered, whose
    offers are not written yet: without parallel jobs they are not free, as a worker with an open
    offer in the database is not. And the workers it held and read for all its first rounds at once
    (`hold_for`), as `_eligible` holds and reads a round's own."""

    offered: set[int] = field(default_factory=set)
    tried: frozenset[int] = frozenset()  # the workers the batch tried to hold
    held: frozenset[int] = frozenset()  # of those, the ones it holds (the others another transaction does)
    free: dict[int, Worker] = field(default_factory=dict)  # of those, the ones free of any job and question
    skills: dict[int, set[str]] = field(default_factory=dict)  # the free workers' skills
    unanswered: set[int] = field(default_factory=set)  # the free workers whose latest offers went unanswered


def hold_for(
    session: Session, rules: Dispatch, rounds: Sequence[tuple[ServiceRequest, Sequence[Candidate]]]
) -> Together:
    """A batch's `Together`, holding and reading at once the workers each first round would hold and
    read (without parallel jobs): two statements for the batch rather than two a round. A round that
    wants a worker outside them (a later round's, a rework's first choice) holds and reads its own."""
    if rules.allow_parallel_jobs:
        return Together()
    wanted: list[int] = []
    for request, candidates in rounds:
        if _never_offered(request):
            avoid = request.avoid_worker_id
            ids = [c.worker_id for c in candidates if c.worker_id != avoid][: _wanted_at_most(rules.parallel_offers)]
            wanted += [worker_id for worker_id in ids if worker_id not in wanted]
    if not wanted:
        return Together()
    held = hold_workers(session, wanted, skip_locked=True)
    rows = session.exec(FREE_WITH_SKILLS, params={"wanted": held}).all() if held else []
    together = Together(tried=frozenset(wanted), held=frozenset(held))
    for worker, skill in rows:
        together.free[worker.id or 0] = worker
        together.skills.setdefault(worker.id or 0, set()).add(skill)
    latest = rules.voice_after_unanswered_sms
    if latest > 0 and together.free:
        answers: dict[int, list[str]] = {}
        for worker_id, status in session.execute(LATEST_ANSWERS_OF, {"ids": list(together.free), "latest": latest}):
            answers.setdefault(worker_id, []).append(status)
        together.unanswered = {worker_id for worker_id, them in answers.items() if _unanswered(them, latest)}
    return together


def record_offers(session: Session, rounds: Sequence[Dispatched], now: datetime) -> set[int]:
    """The rounds' requests still new moved to offered (the rounds of a batch tried together leave it
    to this), their offers inserted (their ids, for the audit trail and the jobs that send them), then their
    audit events: one statement for each, however many rounds. A round whose request changed
    meanwhile (an agent cancelled it, say) writes nothing: the ids of their requests."""
    waiting = [
        r.request for r in rounds if r.opened and r.request is not None and r.request.status is RequestStatus.NEW
    ]
    changed = _open(session, waiting, now)
    rounds = [r for r in rounds if r.request is None or r.request.id not in changed]
    made = [offer for result in rounds for offer in result.offers]
    if not made:
        return changed
    _insert(session, made)
    events = []
    for result in rounds:
        request = result.request
        if request is None or not result.offers:
            continue
        if result.opened:
            new = RequestStatus.NEW.value
            events.append(_moved(AuditAction.REQUEST_OFFERED, request, from_status=new, reason="first offer sent"))
        events += [
            _moved(AuditAction.OFFER_SENT, request, worker_id=o.worker_id, offer_id=o.id, channel=o.channel.value)
            for o in result.offers
        ]
    record_rows(session, events)
    return changed


def _insert(session: Session, made: Sequence[Offer]) -> None:
    """New offers inserted in one statement and given their ids, the session's as if read back. On
    PostgreSQL one text however many (`storage.db.ArrayInsert`): a batch's, flushed as one VALUES an
    offer, were a new text each size, parsed anew by psycopg."""
    rows = [{name: getattr(offer, name) for name in _OFFER_COLUMNS} for offer in made]
    ids = _INSERT_OFFERS.ids(session.connection(), rows)
    for offer, offer_id in zip(made, ids, strict=True):
        offer.id = offer_id
        make_transient_to_detached(offer)  # as loaded: the session keeps it, and has nothing of it to write
        session.add(offer)


# Every column of an offer but its id, each as the model holds it (a default included).
_OFFER_COLUMNS = tuple(column.name for column in sa.inspect(Offer).local_table.c if column.name != "id")
_INSERT_OFFERS = ArrayInsert.of(Offer, _OFFER_COLUMNS)


def _open(session: Session, requests: Sequence[ServiceRequest], now: datetime) -> set[int]:
    """Move these requests from new to offered, each only if still new, in one UPDATE; those that were
    not (their ids)."""
    if not requests:
        return set()
    ids = [request.id for request in requests if request.id is not None]
    moved = set(session.execute(OPEN, {"ids": ids, "at": now}).scalars())
    for request in requests:
        if request.id in moved:
            set_committed_value(request, "status", RequestStatus.OFFERED)  # what the UPDATE wrote
            set_committed_value(request, "updated_at", now)
    return set(ids) - moved


OPEN = (
    sa.update(ServiceRequest)
    .where(
        col(ServiceRequest.id).in_(sa.bindparam("ids", expanding=True)),
        col(ServiceRequest.status) == RequestStatus.NEW,
    )
    .values(status=RequestStatus.OFFERED, updated_at=sa.bindparam("at"))
    .returning(col(ServiceRequest.id))
    .execution_options(synchronize_session=False)
)


def _moved(
    action: AuditAction,
    request: ServiceRequest,
    *,
    actor: str = "dispatch",
    from_status: str | None = None,
    reason: str | None = None,
    **detail: object,
) -> dict[str, Any]:
    """A move of `request` by `actor` as an audit row, with the status it reached: `audit` adds it to
    the session, a round inserts its rows at once (`record_rows`)."""
    return row(
        action,
        actor=actor,
        entity="service_request",
        entity_id=request.id,
        from_status=from_status,
        to_status=request.status.value,
        reason=reason,
        detail=detail,
    )


def _choose(
    session: Session,
    request: ServiceRequest,
    candidates: Sequence[Candidate],
    earlier: Sequence[Offer],
    rules: Dispatch,
    limit: int,
    today: date,
    first_choice: int | None,
    police_valid_days: int,
    together: Together | None,
) -> tuple[list[Worker], bool]:
    """Whom this round asks: a rework's first choice alone, if never asked about it and able to take
    it; else the best eligible candidates. Never a worker the request's citizen asked not to have."""
    asked = not_again(earlier) | ({request.avoid_worker_id} if request.avoid_worker_id else frozenset())
    if first_choice is not None and first_choice not in asked and all(o.worker_id != first_choice for o in earlier):
        first = [Candidate(first_choice, 0.0, None, None)]
        chosen, held_elsewhere = _eligible(
            session, request, first, asked, rules, min(limit, 1), today, police_valid_days, together
        )
        if chosen:
            return chosen, held_elsewhere
    return _eligible(session, request, candidates, asked, rules, limit, today, police_valid_days, together)


def _offers_of(session: Session, request_id: int) -> list[Offer]:
    return list(session.exec(OFFERS_OF, params={"request": request_id}).all())


OFFERS_OF = select(Offer).where(col(Offer.request_id) == sa.bindparam("request"))


# Offers whose worker is not asked about the request again by dispatch: still open, said no, let it
# run out, or took it and did not start the visit in time. Only an agent's explicit choice (assign)
# gives such a worker the job; a withdrawn offer (the request escalated under it) was never answered,
# and its worker may be asked in a later round.
NOT_AGAIN = (OfferStatus.PENDING, OfferStatus.DECLINED, OfferStatus.EXPIRED, OfferStatus.TAKEN_BACK)


def not_again(offers: Sequence[Offer]) -> frozenset[int]:
    """The workers dispatch does not ask again about the request these offers are of."""
    return frozenset(o.worker_id for o in offers if o.status in NOT_AGAIN)


def asked_before(session: Session, request_id: int) -> frozenset[int]:
    """`not_again`, from the database: the workers a new round of this request leaves out."""
    return not_again(_offers_of(session, request_id))


def _nobody_now(session: Session, request: ServiceRequest, held_elsewhere: bool, now: datetime) -> Dispatched:
    """Nobody new to ask: wait for an offer still open; with none, escalate, unless a worker in range
    was held by another transaction (answering another offer, or asked by another round): then look
    again shortly."""
    if held_elsewhere:
        return Dispatched(reason="the workers in range are held elsewhere", again=True)
    return _escalate(session, request, "no eligible worker in range", now)


def _hold(session: Session, request: ServiceRequest, now: datetime) -> bool:
    """Lock the request row for this round, if it is still offered in the same round: an agent's
    cancel, assignment or new round waits for this round to commit, then finds it changed."""
    held = session.execute(HOLD, {"request": request.id, "round": request.dispatch_round, "at": now}).rowcount  # type: ignore[attr-defined]
    if held:
        set_committed_value(request, "updated_at", now)  # what the UPDATE wrote
    return bool(held)


# Built once: a round runs these for every request, and building them cost as much as running them.
# The session is not searched for the rows they change (synchronize_session): the callers set what
# they wrote on the one request they hold.
HOLD = (
    sa.update(ServiceRequest)
    .where(
        col(ServiceRequest.id) == sa.bindparam("request"),
        col(ServiceRequest.status) == RequestStatus.OFFERED,
        col(ServiceRequest.dispatch_round) == sa.bindparam("round"),
    )
    .values(updated_at=sa.bindparam("at"))
    .execution_options(synchronize_session=False)
)


def _eligible(
    session: Session,
    request: ServiceRequest,
    candidates: Sequence[Candidate],
    asked: frozenset[int],
    rules: Dispatch,
    limit: int,
    today: date,
    police_valid_days: int,
    together: Together | None = None,
) -> tuple[list[Worker], bool]:
    """The first `limit` candidates the database confirms (the index may lag a moment behind),
    in the ranking's order; and whether any was left out because another transaction held them.
    In a batch tried `together`, without parallel jobs, a worker its rounds offered is not free, and
    the workers it held and read for all its rounds are not held and read again."""
    wanted = [c.worker_id for c in candidates if c.worker_id not in asked][: _wanted_at_most(limit)]
    if not wanted or limit < 1:
        return [], False
    held_elsewhere = False
    query = WITH_SKILL
    if not rules.allow_parallel_jobs:
        offered = together.offered if together is not None else set()
        if together is not None and together.tried.issuperset(wanted):
            held = [worker_id for worker_id in wanted if worker_id in together.held]
            free = [worker_id for worker_id in held if worker_id not in offered]
            skill = request.service_code
            ready = [together.free[w] for w in free if w in together.free and skill in together.skills[w]]
            return _confirmed(wanted, ready, limit, today, police_valid_days), len(held) < len(wanted)
        # Checked after the workers are held, in a statement of its own: it sees every offer and every
        # assignment another transaction made to them before letting them go.
        held = hold_workers(session, wanted, skip_locked=True)
        wanted, held_elsewhere, query = held, len(held) < len(wanted), FREE_WITH_SKILL
        wanted = [worker_id for worker_id in wanted if worker_id not in offered]
    # Selected by primary key and filtered here, so no query plan can favour a poor index.
    rows = session.exec(query, params={"wanted": wanted, "skill": request.service_code}).all() if wanted else []
    return _confirmed(wanted, rows, limit, today, police_valid_days), held_elsewhere


def candidates_wanted(rules: Dispatch, request: ServiceRequest) -> int:
    """How many of the ranked candidates the request's next round can look at (0: no telling). A new
    request's first round looks at `first_round_wanted` of them, besides the worker its citizen asked
    not to have; a later round passes over the workers asked before."""
    if not _never_offered(request):
        return 0
    wanted = first_round_wanted(rules)
    return wanted + 1 if wanted and request.avoid_worker_id is not None else wanted


def _never_offered(request: ServiceRequest) -> bool:
    """New, in its first round: no worker was ever offered it (an agent's new round sets it back to
    new in the next round)."""
    return request.status is RequestStatus.NEW and request.dispatch_round == 0


def first_round_wanted(rules: Dispatch) -> int:
    """How many of the ranked candidates a new request's first round asks the database about
    (`hold_for`, `_eligible`); 0, all of them, with parallel jobs, where the free are ranked first."""
    return 0 if rules.allow_parallel_jobs else _wanted_at_most(rules.parallel_offers)


def _wanted_at_most(limit: int) -> int:
    """How many of the nearest candidates a round asks the database about, to find `limit` to offer."""
    return max(limit * 4, 8)


def _confirmed(
    wanted: Sequence[int], rows: Sequence[Worker], limit: int, today: date, police_valid_days: int
) -> list[Worker]:
    """The first `limit` of `wanted` whose rows say they may take the job, in `wanted`'s order."""
    found = {
        worker.id: worker
        for worker in rows
        if worker.available and quality.may_visit(worker, today, police_valid_days) is None
    }
    return [found[worker_id] for worker_id in wanted if worker_id in found][:limit]


# The workers wanted (by id) who have the skill; and of those, the ones free of any job and question.
WITH_SKILL = select(Worker).where(
    col(Worker.id).in_(sa.bindparam("wanted", expanding=True)),
    sa.exists().where(
        col(WorkerSkill.worker_id) == col(Worker.id), col(WorkerSkill.service_code) == sa.bindparam("skill")
    ),
)
_FREE = (
    ~sa.exists().where(col(ServiceRequest.worker_id) == col(Worker.id), col(ServiceRequest.status).in_(IN_HAND)),
    ~sa.exists().where(col(Offer.worker_id) == col(Worker.id), col(Offer.status) == OfferStatus.PENDING),
)  # one job, one question
FREE_WITH_SKILL = WITH_SKILL.where(*_FREE)
# The workers wanted who are free, each with each of their skills (a batch's: `hold_for`, on PostgreSQL).
FREE_WITH_SKILLS = (
    select(Worker, WorkerSkill.service_code)
    .join(WorkerSkill, col(WorkerSkill.worker_id) == col(Worker.id))
    .where(col(Worker.id) == any_id("wanted"), *_FREE)
)


def hold_workers(session: Session, worker_ids: Sequence[int], *, skip_locked: bool) -> list[int]:
    """Hold the workers' rows until the transaction ends, so that what is decided about their jobs
    and offers is decided by one transaction at a time; the ids held, in the order given.

    PostgreSQL locks the rows (FOR NO KEY UPDATE: an offer or an assignment inserted elsewhere that
    only points at the worker is not held up); with `skip_locked` a worker another transaction holds
    is left out rather than waited for, so dispatch never waits on a worker's answer (and the two can
    never deadlock). SQLite has one writer at a time: a write that changes nothing takes that lock
    before anything is read."""
    if not worker_ids:
        return []
    if session.get_bind().dialect.name == "sqlite":
        session.execute(sa.update(Worker).where(col(Worker.id).in_(worker_ids)).values(active=col(Worker.active)))
        return list(worker_ids)
    held = set(session.exec(HOLD_WORKERS[skip_locked], params={"ids": list(worker_ids)}).all())
    return [worker_id for worker_id in worker_ids if worker_id in held]


HOLD_WORKERS = {
    skip: select(Worker.id).where(col(Worker.id) == any_id("ids")).with_for_update(key_share=True, skip_locked=skip)
    for skip in (False, True)
}


def busy_then(session: Session, request: ServiceRequest, worker_ids: Sequence[int], now: datetime) -> frozenset[int]:
    """Of these workers, those with a job in hand whose time (`core.slots.window`: its slot, or the next
    hours for one booked as soon as possible) overlaps this request's: one query, for the ranking."""
    if not worker_ids:
        return frozenset()
    starts, ends = slots.window(request.slot_starts_at, request.slot_ends_at, now)
    asap_starts, asap_ends = slots.window(None, None, now)
    overlaps = sa.and_(col(ServiceRequest.slot_starts_at) < ends, col(ServiceRequest.slot_ends_at) > starts)
    if asap_starts < ends and asap_ends > starts:  # a job in hand booked as soon as possible is under way now
        overlaps = sa.or_(overlaps, col(ServiceRequest.slot_starts_at).is_(None))
    query = sa.select(col(ServiceRequest.worker_id)).where(
        col(ServiceRequest.worker_id).in_(worker_ids),
        col(ServiceRequest.status).in_(IN_HAND),
        col(ServiceRequest.id) != request.id,
        overlaps,
    )
    return frozenset(worker_id for (worker_id,) in session.execute(query.distinct()) if worker_id is not None)


def job_in_hand(session: Session, worker_id: int, but_not: int | None = None) -> ServiceRequest | None:
    """The job the worker has taken and not yet finished (another than `but_not`), if any."""
    query = select(ServiceRequest).where(ServiceRequest.worker_id == worker_id, col(ServiceRequest.status).in_(IN_HAND))
    if but_not is not None:
        query = query.where(col(ServiceRequest.id) != but_not)
    return session.exec(query.order_by(col(ServiceRequest.assigned_at))).first()


def _offer(
    session: Session,
    request: ServiceRequest,
    worker: Worker,
    rules: Dispatch,
    now: datetime,
    together: Together | None = None,
) -> Offer:
    """An offer by SMS, or by a call to a worker who prefers calls or let SMS offers go unanswered."""
    assert worker.id is not None
    assert request.id is not None
    by_voice = worker.voice_preferred or (
        rules.voice_after_unanswered_sms > 0 and _latest_went_unanswered(session, worker.id, rules, together)
    )
    return Offer(
        request_id=request.id,
        worker_id=worker.id,
        created_at=now,
        dispatch_round=request.dispatch_round,
        expires_at=now + timedelta(seconds=rules.offer_timeout),
        channel=OfferChannel.VOICE if by_voice else OfferChannel.SMS,
    )


def _latest_went_unanswered(session: Session, worker_id: int, rules: Dispatch, together: Together | None) -> bool:
    """Whether the worker's latest `voice_after_unanswered_sms` offers all went unanswered. In a batch
    tried `together`, an offer one of its rounds made them is their latest (and open), and what the
    batch read of the workers it holds is not read again."""
    if together is not None and worker_id in together.offered:
        return False
    if together is not None and worker_id in together.free:
        return worker_id in together.unanswered
    latest = session.exec(LATEST_ANSWERS, params={"worker": worker_id, "latest": rules.voice_after_unanswered_sms})
    return _unanswered(latest.all(), rules.voice_after_unanswered_sms)


def _unanswered(latest: Sequence[str], at_least: int) -> bool:
    """Whether a worker's latest `at_least` offers (`latest`, newest first) all went unanswered."""
    return len(latest) >= at_least and all(status == OfferStatus.EXPIRED for status in latest[:at_least])


LATEST_ANSWERS = (
    select(Offer.status)
    .where(col(Offer.worker_id) == sa.bindparam("worker"))
    .order_by(col(Offer.id).desc())
    .limit(sa.bindparam("latest"))
)
# The same for several workers at once (a batch's: `hold_for`, on PostgreSQL): (worker, status), newest first.
_NEWEST_FIRST = (
    sa.select(
        col(Offer.worker_id).label("worker_id"),
        col(Offer.status).label("status"),
        sa.func.row_number().over(partition_by=col(Offer.worker_id), order_by=col(Offer.id).desc()).label("newer"),
    )
    .where(col(Offer.worker_id) == any_id("ids"))
    .subquery()
)
LATEST_ANSWERS_OF = (
    sa.select(_NEWEST_FIRST.c.worker_id, _NEWEST_FIRST.c.status)
    .where(_NEWEST_FIRST.c.newer <= sa.bindparam("latest"))
    .order_by(_NEWEST_FIRST.c.worker_id, _NEWEST_FIRST.c.newer)
)


def _escalate(session: Session, request: ServiceRequest, reason: str, now: datetime) -> Dispatched:
    """To an agent: every offer still open (this round's, or one an agent's new round left open) closes."""
    assert request.id is not None
    withdraw_pending(session, request.id, now)
    if not move(session, request, request.status, RequestStatus.ESCALATED, "dispatch", reason, now):
        return Dispatched(reason="changed meanwhile")
    return Dispatched(escalated=True, reason=reason)


def expire_stale(session: Session, request_id: int, now: datetime) -> int:
    """Pending offers past their time become expired (unanswered)."""
    result = session.execute(
        sa.update(Offer)
        .where(
            col(Offer.request_id) == request_id, col(Offer.status) == OfferStatus.PENDING, col(Offer.expires_at) <= now
        )
        .values(status=OfferStatus.EXPIRED, answered_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def expire(session: Session, offer_id: int, now: datetime, reason: str = "no answer in time") -> bool:
    """This one offer goes unanswered (its time ran out, or it could not be delivered)."""
    offer = session.get(Offer, offer_id)
    if offer is None or not set_offer(session, offer_id, OfferStatus.PENDING, OfferStatus.EXPIRED, now):
        return False
    request = session.get(ServiceRequest, offer.request_id)
    if request is not None:
        audit(
            session,
            "dispatch",
            AuditAction.OFFER_EXPIRED,
            request,
            reason=reason,
            offer_id=offer_id,
            worker_id=offer.worker_id,
        )
    return True


def accept(session: Session, offer_id: int, now: datetime, actor: str, *, allow_parallel_jobs: bool = False) -> Answer:
    """The worker says yes. The first yes for a request wins; every later one finds it taken. A
    worker who already has a job in hand (when parallel jobs are not allowed) is refused: BUSY."""
    offer = session.get(Offer, offer_id)
    if offer is None:
        return Answer.NO_OFFER
    request_id, worker_id = offer.request_id, offer.worker_id
    if not allow_parallel_jobs:
        # The worker's row first: their two yeses, or a yes and a dispatch round, take turns.
        hold_workers(session, [worker_id], skip_locked=False)
        if (in_hand := job_in_hand(session, worker_id, but_not=request_id)) is not None and _refuse_busy(
            session, offer, in_hand, now, actor
        ):
            return Answer.BUSY
    # The request row next: a concurrent accept waits on it, then finds it no longer dispatchable.
    if not hand_over(session, request_id, worker_id, DISPATCHABLE, now):
        return Answer.TAKEN
    if not set_offer(session, offer_id, OfferStatus.PENDING, OfferStatus.ACCEPTED, now, not_expired_at=now):
        raise _Lost()  # the request was ours only if the offer was still open
    withdraw_pending(session, request_id, now)
    request = session.get(ServiceRequest, request_id)
    assert request is not None
    session.refresh(request)
    audit(
        session,
        actor,
        AuditAction.REQUEST_ASSIGNED,
        request,
        from_status=RequestStatus.OFFERED.value,
        worker_id=worker_id,
        offer_id=offer_id,
    )
    return Answer.ACCEPTED


def _refuse_busy(session: Session, offer: Offer, in_hand: ServiceRequest, now: datetime, actor: str) -> bool:
    """Close the open offer of a worker who has a job in hand, as a no with its own reason; False
    when the offer is no longer open (the answer is then what it would have been)."""
    if not set_offer(session, offer.id, OfferStatus.PENDING, OfferStatus.DECLINED, now, not_expired_at=now):
        return False
    request = session.get(ServiceRequest, offer.request_id)
    if request is not None:
        audit(
            session,
            actor,
            AuditAction.OFFER_DECLINED,
            request,
            reason=BUSY_REASON,
            offer_id=offer.id,
            worker_id=offer.worker_id,
            job_in_hand=in_hand.id,
        )
    return True


def hand_over(
    session: Session, request_id: int, worker_id: int, statuses: Sequence[RequestStatus], now: datetime
) -> bool:
    """The request becomes the worker's, with a new completion code, if it is still in one of `statuses`."""
    assigned = session.execute(
        sa.update(ServiceRequest)
        .where(col(ServiceRequest.id) == request_id, col(ServiceRequest.status).in_(statuses))
        .values(
            status=RequestStatus.ASSIGNED,
            worker_id=worker_id,
            assigned_at=now,
            updated_at=now,
            completion_code=numbers.completion_code(),
        )
    ).rowcount  # type: ignore[attr-defined]
    return bool(assigned)


def withdraw_pending(session: Session, request_id: int, now: datetime) -> None:
    """Every offer of the request still waiting for an answer is closed."""
    session.execute(
        sa.update(Offer)
        .where(col(Offer.request_id) == request_id, col(Offer.status) == OfferStatus.PENDING)
        .values(status=OfferStatus.WITHDRAWN, answered_at=now)
    )


class _Lost(Exception):
    """The offer closed while the request was being assigned: the transaction must roll back."""


def reply(
    engine: sa.Engine, offer_id: int, yes: bool, now: datetime, actor: str, *, allow_parallel_jobs: bool = False
) -> Answer:
    """A worker's yes or no to one offer, however it came (SMS, a call, the console), in a
    transaction of its own: a yes that finds its offer closed undoes everything it did."""
    try:
        with session_scope(engine) as session:
            if yes:
                return accept(session, offer_id, now, actor, allow_parallel_jobs=allow_parallel_jobs)
            return decline(session, offer_id, now, actor)
    except _Lost:
        return Answer.TOO_LATE
    except sa.exc.IntegrityError:  # the one-accepted-offer index caught a second yes
        return Answer.TAKEN


def decline(session: Session, offer_id: int, now: datetime, actor: str) -> Answer:
    if not set_offer(session, offer_id, OfferStatus.PENDING, OfferStatus.DECLINED, now):
        return Answer.TOO_LATE
    offer = session.get(Offer, offer_id)
    request = session.get(ServiceRequest, offer.request_id) if offer else None
    if request is not None and offer is not None:
        audit(session, actor, AuditAction.OFFER_DECLINED, request, offer_id=offer_id, worker_id=offer.worker_id)
    return Answer.DECLINED


def set_offer(
    session: Session,
    offer_id: int | None,
    old: OfferStatus,
    new: OfferStatus,
    now: datetime | None,
    not_expired_at: datetime | None = None,
) -> bool:
    """Move one offer from `old` to `new` only if it is still `old` (a compare-and-set)."""
    query = sa.update(Offer).where(col(Offer.id) == offer_id, col(Offer.status) == old)
    if not_expired_at is not None:
        query = query.where(col(Offer.expires_at) > not_expired_at)
    changed = session.execute(query.values(status=new, answered_at=now)).rowcount  # type: ignore[attr-defined]
    return bool(changed)


def move(
    session: Session,
    request: ServiceRequest,
    old: RequestStatus,
    new: RequestStatus,
    actor: str,
    reason: str,
    now: datetime,
    **detail: object,
) -> bool:
    """Move a request along its lifecycle, only if it is still where we think it is; audited."""
    moved = _compare_and_set(session, request, old, new, now)
    if moved:
        audit(session, actor, AuditAction.request_moved(new), request, from_status=old.value, reason=reason, **detail)
    return moved


def _compare_and_set(
    session: Session, request: ServiceRequest, old: RequestStatus, new: RequestStatus, now: datetime
) -> bool:
    moved = session.execute(COMPARE_AND_SET, {"request": request.id, "old": old, "new": new, "at": now}).rowcount  # type: ignore[attr-defined]
    if moved:
        set_committed_value(request, "status", new)  # what the UPDATE wrote; no second write
        set_committed_value(request, "updated_at", now)
    return bool(moved)


COMPARE_AND_SET = (
    sa.update(ServiceRequest)
    .where(col(ServiceRequest.id) == sa.bindparam("request"), col(ServiceRequest.status) == sa.bindparam("old"))
    .values(status=sa.bindparam("new"), updated_at=sa.bindparam("at"))
    .execution_options(synchronize_session=False)
)


MAX_CODE_TRIES = 5  # wrong completion codes a worker may send for one job; then only an agent can close it


def complete(session: Session, number: str, worker_id: int, code: str, now: datetime) -> ServiceRequest | None:
    """The worker reports the job done with the citizen's code; None (and an audit event) when the
    job is not theirs, the code is wrong, or too many wrong codes came before."""
    request = session.exec(select(ServiceRequest).where(ServiceRequest.number == number)).first()
    if request is None or request.worker_id != worker_id:
        _refuse(session, worker_id, None, "not their job", number)
        return None
    if _wrong_codes(session, request.id or 0) >= MAX_CODE_TRIES:
        _refuse(session, worker_id, request.id, "too many wrong codes", number)
        return None
    done = session.execute(
        sa.update(ServiceRequest)
        .where(
            col(ServiceRequest.id) == request.id,
            col(ServiceRequest.status) == RequestStatus.ASSIGNED,
            col(ServiceRequest.completion_code) == code,
        )
        .values(status=RequestStatus.COMPLETED, completed_at=now, updated_at=now)
    ).rowcount  # type: ignore[attr-defined]
    if not done:
        _refuse(session, worker_id, request.id, "wrong code, or not assigned", number)
        return None
    session.refresh(request)
    audit(
        session,
        f"worker:{worker_id}",
        AuditAction.REQUEST_COMPLETED,
        request,
        from_status=RequestStatus.ASSIGNED.value,
        reason=None if request.started_at is not None else DONE_UNSTARTED,
    )
    return request


# The citizen's completion code is the proof the work was done, so a job reported done without the
# start code (the worker never texted START) still completes; it is flagged on its timeline.
DONE_UNSTARTED = "done without the start code"
COMPLETION_CODE = "completion code"  # the reason of a REQUEST_CODE_RESET of the completion code


def _wrong_codes(session: Session, request_id: int) -> int:
    """Wrong completion codes since the code was last reset by an agent (a reset unlocks the job)."""
    of_request = (AuditEvent.entity == "service_request", AuditEvent.entity_id == request_id)
    last_reset = (
        select(sa.func.coalesce(sa.func.max(AuditEvent.id), 0))
        .where(*of_request, AuditEvent.action == AuditAction.REQUEST_CODE_RESET, AuditEvent.reason == COMPLETION_CODE)
        .scalar_subquery()
    )
    query = (
        select(sa.func.count())
        .select_from(AuditEvent)
        .where(
            *of_request, AuditEvent.action == AuditAction.REQUEST_COMPLETION_REFUSED, col(AuditEvent.id) > last_reset
        )
    )
    return int(session.exec(query).one())


def _refuse(session: Session, worker_id: int, request_id: int | None, reason: str, number: str) -> None:
    record(
        session,
        AuditAction.REQUEST_COMPLETION_REFUSED,
        actor=f"worker:{worker_id}",
        entity="service_request" if request_id else "worker",
        entity_id=request_id or worker_id,
        reason=reason,
        detail={"number": number[:8]},
    )


def pending_offer(session: Session, worker_id: int, now: datetime) -> Offer | None:
    """The worker's open offer, newest first (a worker is asked about one job at a time)."""
    query = (
        select(Offer)
        .where(Offer.worker_id == worker_id, Offer.status == OfferStatus.PENDING, col(Offer.expires_at) > now)
        .order_by(col(Offer.id).desc())
    )
    return session.exec(query).first()
