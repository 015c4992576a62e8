"""What an SMS that reaches the helpline means, and what it changes.

A worker answers offers (yes/no), reports a job done with the citizen's code, says they are
available or busy, or gives back a job moved to a time they cannot make ("2 NUMBER"); a citizen
rates a finished job 1–5, or cancels their own request (CANCEL NUMBER, by `changes:`' policy; a
sender who did not book it is refused, and nothing changes). Anything else gets a short, helpful reply
and changes nothing but an audit event. Replies are returned, not sent: the view queues them
after the transaction has committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.settings import Changes, Rework, Settings, WorkersQuality
from dispatch import changes, offers, rework, visit
from dispatch.availability import Via, set_availability
from dispatch.replies import Reply, ReplyKind, parse, parse_rating
from storage.audit import AuditAction, record
from storage.db import session_scope
from storage.models import (
    CallbackRequest,
    CallbackStatus,
    Caller,
    Offer,
    OfferStatus,
    RequestStatus,
    ServiceRequest,
    Worker,
)

DEFAULT_REWORK, DEFAULT_STANDARDS = Rework(), WorkersQuality()
STATES = {"hi": {True: "उपलब्ध", False: "व्यस्त"}, "en": {True: "available", False: "busy"}}


@dataclass(frozen=True)
class Outgoing:
    """An SMS to send back, by template."""

    template: str
    values: dict[str, str] = field(default_factory=dict)
    request_id: int | None = None  # the request it is about: its timeline shows it, its log lines name it


@dataclass(frozen=True)
class Outcome:
    """What the message did: the replies to send and the follow-up jobs to queue."""

    replies: tuple[Outgoing, ...] = ()
    assigned: int | None = None  # request id: tell both sides
    redispatch: int | None = None  # request id: offer it to the next worker
    completed: int | None = None  # request id: free the worker, ask the citizen
    worker_changed: int | None = None  # worker id: bring the GEO index in step
    changed: changes.Changed | None = None  # a cancel: the workers it concerns are told
    language: str = "hi"
    recorded: tuple[int, ...] = ()  # SMS recorded with the change (the citizen's start code): send them


def handle(
    engine: sa.Engine,
    sender: str,
    body: str,
    now: datetime,
    *,
    allow_parallel_jobs: bool = False,
    rework_rules: Rework = DEFAULT_REWORK,
    standards: WorkersQuality = DEFAULT_STANDARDS,
    settings: Settings | None = None,
    rules: Changes | None = None,
) -> Outcome:
    """Act on one inbound SMS from `sender` (E.164); `allow_parallel_jobs` as in the dispatch settings,
    `rework_rules` and `standards` as in the `rework` and `workers_quality` settings; `settings` for
    what a visit message texts the citizen (without them, it is not understood); `rules` the
    `changes:` a citizen's own cancel is held by."""
    with Session(engine) as session:
        worker = session.exec(select(Worker).where(Worker.phone == sender, Worker.active)).first()
        caller = session.exec(select(Caller).where(Caller.phone == sender)).first()
    if worker is not None:
        reply = parse(body)
        if reply.kind in VISIT_KINDS and settings is not None:
            return _visit(engine, settings, worker, reply, now)
        return _from_worker(engine, worker, reply, now, allow_parallel_jobs)
    reply = parse(body)
    if reply.kind is ReplyKind.CANCEL:
        return _cancel(engine, caller, sender, reply, now, rules or Changes())
    if reply.kind is ReplyKind.RESCHEDULE:  # the time is changed on the phone, where the open slots are heard
        language = (caller.language if caller else None) or "hi"
        return Outcome((Outgoing("change_by_phone", {"number": reply.number or ""}),), language=language)
    return _from_citizen(engine, caller, sender, body, now, rework_rules, standards)


def _from_worker(engine: sa.Engine, worker: Worker, reply: Reply, now: datetime, allow_parallel_jobs: bool) -> Outcome:
    assert worker.id is not None
    language = worker.language
    if reply.kind is ReplyKind.DECLINE:
        given_back = _give_back(engine, worker, reply, now)
        if given_back is not None:
            return given_back
    if reply.kind in (ReplyKind.ACCEPT, ReplyKind.DECLINE):
        return _answer(engine, worker, reply, now, allow_parallel_jobs)
    if reply.kind is ReplyKind.DONE:
        return _done(engine, worker, reply, now)
    if reply.kind in (ReplyKind.AVAILABLE, ReplyKind.BUSY):
        available = reply.kind is ReplyKind.AVAILABLE
        with session_scope(engine) as session:
            set_availability(session, worker.id, available, actor=f"worker:{worker.id}", channel=Via.SMS, now=now)
        state = STATES[language if language in STATES else "hi"][available]
        return Outcome((Outgoing("availability_set", {"state": state}),), worker_changed=worker.id, language=language)
    _note_unclear(engine, f"worker:{worker.id}", reply)
    return Outcome((Outgoing("reply_help_worker"),), language=language)


def _answer(engine: sa.Engine, worker: Worker, reply: Reply, now: datetime, allow_parallel_jobs: bool) -> Outcome:
    assert worker.id is not None
    offer = _offer_meant(engine, worker.id, reply.number, now)
    if offer is None:
        return _no_open_offer(engine, worker, reply)
    request_number = _number_of(engine, offer.request_id)
    yes = reply.kind is ReplyKind.ACCEPT
    actor = f"worker:{worker.id}"
    result = offers.reply(engine, offer.id or 0, yes, now, actor, allow_parallel_jobs=allow_parallel_jobs)
    language = worker.language
    if result is offers.Answer.ACCEPTED:
        return Outcome(assigned=offer.request_id, language=language)
    if result is offers.Answer.BUSY:
        return Outcome(
            (busy_reply(engine, worker.id, offer.request_id),), redispatch=offer.request_id, language=language
        )
    if result is offers.Answer.DECLINED:
        return Outcome(
            (Outgoing("declined_ack", {"number": request_number}, offer.request_id),),
            redispatch=offer.request_id,
            language=language,
        )
    if _accepted_by(engine, offer.id or 0, worker.id):  # a second yes (SMS and call, or texted twice)
        return Outcome(
            (Outgoing("offer_already_yours", {"number": request_number}, offer.request_id),), language=language
        )
    return Outcome((Outgoing("already_taken", {"number": request_number}, offer.request_id),), language=language)


def busy_reply(engine: sa.Engine, worker_id: int, offer_request_id: int) -> Outgoing:
    """The text for a worker who said yes to a job with another in hand: finish that one first."""
    with Session(engine) as session:
        in_hand = offers.job_in_hand(session, worker_id, but_not=offer_request_id)
    return Outgoing("offer_busy", {"number": in_hand.number if in_hand else ""}, offer_request_id)


def _accepted_by(engine: sa.Engine, offer_id: int, worker_id: int) -> bool:
    with Session(engine) as session:
        offer = session.get(Offer, offer_id)
    return offer is not None and offer.worker_id == worker_id and offer.status is OfferStatus.ACCEPTED


def _offer_meant(engine: sa.Engine, worker_id: int, number: str | None, now: datetime) -> Offer | None:
    """The offer a reply answers: the one for the number given, else the worker's open one."""
    with Session(engine) as session:
        if number is None:
            return offers.pending_offer(session, worker_id, now)
        query = (
            select(Offer)
            .join(ServiceRequest, col(ServiceRequest.id) == Offer.request_id)
            .where(ServiceRequest.number == number, Offer.worker_id == worker_id)
            .order_by(col(Offer.id).desc())
        )
        return session.exec(query).first()


def _no_open_offer(engine: sa.Engine, worker: Worker, reply: Reply) -> Outcome:
    """A yes with no offer open: the job went to someone else, or there never was one."""
    with Session(engine) as session:
        last = session.exec(select(Offer).where(Offer.worker_id == worker.id).order_by(col(Offer.id).desc())).first()
        number = session.get(ServiceRequest, last.request_id).number if last else None  # type: ignore[union-attr]
    if last is not None and number is not None and last.status is OfferStatus.ACCEPTED:
        return Outcome(
            (Outgoing("offer_already_yours", {"number": number}, last.request_id),), language=worker.language
        )
    _note_unclear(engine, f"worker:{worker.id}", reply, "no open offer")
    if last is not None and number is not None and reply.kind is ReplyKind.ACCEPT:
        return Outcome((Outgoing("already_taken", {"number": number}, last.request_id),), language=worker.language)
    return Outcome((Outgoing("offer_none"),), language=worker.language)


def _done(engine: sa.Engine, worker: Worker, reply: Reply, now: datetime) -> Outcome:
    assert worker.id is not None
    if reply.number is None or reply.code is None:
        _note_unclear(engine, f"worker:{worker.id}", reply, "DONE without number and code")
        return Outcome((Outgoing("reply_help_worker"),), language=worker.language)
    with session_scope(engine) as session:
        request = offers.complete(session, reply.number, worker.id, reply.code, now)
    if request is None:
        return Outcome((Outgoing("code_mismatch", {"number": reply.number}),), language=worker.language)
    return Outcome(
        (Outgoing("completed_worker", {"number": request.number}, request.id),),
        completed=request.id,
        worker_changed=worker.id,
        language=worker.language,
    )


def _give_back(engine: sa.Engine, worker: Worker, reply: Reply, now: datetime) -> Outcome | None:
    """A no that answers no open offer but a job of theirs moved since they took it: they give it back,
    and it is offered again. None when the no is an offer's to answer (or there is no such job)."""
    assert worker.id is not None
    with session_scope(engine) as session:
        pending = offers.pending_offer(session, worker.id, now)
        asked = session.get(ServiceRequest, pending.request_id) if pending else None
        if asked is not None and reply.number in (None, asked.number):
            return None
        job = changes.give_up(session, worker.id, reply.number, now)
        if job is None:
            return None
    return Outcome(
        (Outgoing("declined_ack", {"number": job.number}, job.id),),
        redispatch=job.id,
        worker_changed=worker.id,
        language=worker.language,
    )


def _cancel(
    engine: sa.Engine, caller: Caller | None, sender: str, reply: Reply, now: datetime, rules: Changes
) -> Outcome:
    """CANCEL NUMBER from the citizen who booked it: cancelled (by the policy: too close to the visit,
    an agent rings them back); from anyone else, refused, and nothing changes."""
    language = (caller.language if caller else None) or "hi"
    with session_scope(engine) as session:
        request = _to_cancel(session, caller, reply.number)
        if request is None or caller is None or request.caller_id != caller.id:
            return _not_yours(session, request, sender, reply, language)
        assert request.id is not None
        number = {"number": request.number}
        verdict = changes.verdict(rules, request, now)
        if verdict is changes.Verdict.CLOSED:
            done = request.status is RequestStatus.CANCELLED
            return Outcome(
                (Outgoing("request_cancelled" if done else "reply_help_citizen", number, request.id),),
                language=language,
            )
        if verdict is changes.Verdict.AGENT:
            _ring_back(session, caller, request, now)
            return Outcome((Outgoing("change_by_agent", number, request.id),), language=language)
        reason = rules.reasons[reply.reason - 1] if reply.reason and reply.reason <= len(rules.reasons) else None
        why = changes.Why(reason, "" if reason else "by SMS")
        changed = changes.cancel(session, request.id, why, f"caller:{caller.id}", now, citizen=rules, via="sms")
    if not changed.ok:
        return Outcome((Outgoing("reply_help_citizen", number, request.id),), language=language)
    return Outcome((Outgoing("request_cancelled", number, request.id),), changed=changed, language=language)


def _to_cancel(session: Session, caller: Caller | None, number: str | None) -> ServiceRequest | None:
    """The request named; with no number, the sender's one open request (none when they have several)."""
    if number is not None:
        return session.exec(select(ServiceRequest).where(ServiceRequest.number == number)).first()
    if caller is None:
        return None
    open_ones = session.exec(
        select(ServiceRequest).where(
            ServiceRequest.caller_id == caller.id, col(ServiceRequest.status).in_(changes.OPEN)
        )
    ).all()
    return open_ones[0] if len(open_ones) == 1 else None


def _not_yours(session: Session, request: ServiceRequest | None, sender: str, reply: Reply, language: str) -> Outcome:
    """A CANCEL for a request the sender did not book (or none they can name): refused, audited."""
    actor = f"phone:{sender[-4:]}"
    if request is None and reply.number is None:
        record(session, AuditAction.SMS_UNCLEAR, actor=actor, entity="sms", reason="CANCEL without a number")
        return Outcome((Outgoing("reply_help_citizen"),), language=language)
    if request is not None:
        why = "asked by SMS from a number that did not book it"
        offers.audit(session, actor, AuditAction.REQUEST_CHANGE_REFUSED, request, reason=why)
    else:
        record(session, AuditAction.SMS_UNCLEAR, actor=actor, entity="sms", reason="CANCEL of an unknown number")
    return Outcome((Outgoing("cancel_not_yours", {"number": reply.number or ""}),), language=language)


def _ring_back(session: Session, caller: Caller, request: ServiceRequest, now: datetime) -> None:
    """A callback about the request for an agent, once while one is waiting."""
    waiting = session.exec(
        select(CallbackRequest.id).where(
            CallbackRequest.request_id == request.id,
            CallbackRequest.reason == changes.CALLBACK_REASON,
            CallbackRequest.status == CallbackStatus.PENDING,
        )
    ).first()
    if waiting is not None:
        return
    callback = CallbackRequest(
        phone=caller.phone,
        caller_id=caller.id,
        language=caller.language or request.language,
        reason=changes.CALLBACK_REASON,
        request_id=request.id,
        created_at=now,
    )
    session.add(callback)
    session.flush()
    record(
        session,
        AuditAction.CALLBACK_REQUESTED,
        actor=f"caller:{caller.id}",
        entity="callback_request",
        entity_id=callback.id,
        reason=changes.CALLBACK_REASON,
    )


# -- the worker's day: on my way, arrived, start (dispatch/visit.py) ---------------------------------

VISIT_KINDS = frozenset({ReplyKind.ON_THE_WAY, ReplyKind.ARRIVED, ReplyKind.START})


def _visit(engine: sa.Engine, settings: Settings, worker: Worker, reply: Reply, now: datetime) -> Outcome:
    """OMW, ARRIVED or START from the worker: the step recorded, the citizen texted what they need
    (the ETA and the start code), the worker answered."""
    assert worker.id is not None
    with session_scope(engine) as session:
        request = visit.job_of(session, worker.id, reply.number)
        if request is None:
            done = visit.Visited(visit.Result.REFUSED)
        elif reply.kind is ReplyKind.ON_THE_WAY:
            done = visit.on_the_way(session, settings, request, worker.id, reply.minutes or 0, now)
        elif reply.kind is ReplyKind.ARRIVED:
            done = visit.arrived(session, settings, request, worker.id, now)
        else:
            done = visit.start(session, settings, request, worker.id, reply.code or "", now)
    if done.request is None:
        _note_unclear(engine, f"worker:{worker.id}", reply, "no job in hand to match")
        if reply.number is None:
            return Outcome((Outgoing("reply_help_worker"),), language=worker.language)
    answer = visit_answer(done, reply.number or "")
    return Outcome((answer,), language=worker.language, recorded=done.sms)


def visit_answer(done: visit.Visited, number: str) -> Outgoing:
    """The worker's SMS after a step of their visit."""
    request_id = done.request.id if done.request else None
    values = {"number": done.request.number if done.request else number}
    if done.result is visit.Result.NOTED and done.request and done.request.started_at:
        return Outgoing("started_worker", values, request_id)
    on_the_way = done.result in (visit.Result.NOTED, visit.Result.AGAIN)
    if on_the_way and done.request and done.request.on_the_way_at and done.request.arrived_at is None:
        return Outgoing("on_the_way_worker", {**values, "minutes": str(done.request.eta_minutes or "")}, request_id)
    if done.result in (visit.Result.NOTED, visit.Result.AGAIN, visit.Result.NO_CODE):
        return Outgoing("arrived_worker", values, request_id)
    if done.result in (visit.Result.WRONG_CODE, visit.Result.LOCKED):
        return Outgoing("start_code_wrong", {**values, "tries": str(done.tries_left)}, request_id)
    return Outgoing("visit_refused", values, request_id)


def _from_citizen(
    engine: sa.Engine,
    caller: Caller | None,
    sender: str,
    body: str,
    now: datetime,
    rework_rules: Rework,
    standards: WorkersQuality,
) -> Outcome:
    """A rating of the citizen's latest finished job; a low one books its rework visit."""
    rating = parse_rating(body)
    language = (caller.language if caller else None) or "hi"
    if caller is None or rating is None:
        _note_unclear(engine, f"phone:{sender[-4:]}", parse(body), "not a worker, not a rating")
        return Outcome((Outgoing("reply_help_citizen"),), language=language)
    with session_scope(engine) as session:
        request = session.exec(
            select(ServiceRequest)
            .where(ServiceRequest.caller_id == caller.id, ServiceRequest.status == RequestStatus.COMPLETED)
            .order_by(col(ServiceRequest.completed_at).desc())
        ).first()
        if request is None:
            return Outcome((Outgoing("reply_help_citizen"),), language=language)
        actor = f"caller:{caller.id}"
        if not rate(session, request, rating, actor=actor):
            return Outcome((Outgoing("rating_thanks", {"number": request.number}, request.id),), language=language)
        reopened = rework.after_rating(session, request.id or 0, rating, rework_rules, standards, actor, now)
    if reopened.new and reopened.rework_id is not None:
        values = {"number": reopened.number or "", "original": request.number}
        return Outcome(
            (Outgoing("rework_citizen", values, reopened.rework_id),),
            redispatch=reopened.rework_id,
            worker_changed=request.worker_id,
            language=language,
        )
    return Outcome(
        (Outgoing("rating_thanks", {"number": request.number}, request.id),),
        worker_changed=request.worker_id,
        language=language,
    )


def rate(session: Session, request: ServiceRequest, rating: int, actor: str) -> bool:
    """The citizen's rating closes the request and moves the worker's average (in one UPDATE, so two
    ratings arriving together both count)."""
    moved = session.execute(
        sa.update(ServiceRequest)
        .where(col(ServiceRequest.id) == request.id, col(ServiceRequest.status) == RequestStatus.COMPLETED)
        .values(status=RequestStatus.CLOSED, rating=rating)
    ).rowcount  # type: ignore[attr-defined]
    if not moved or request.worker_id is None:
        return False
    total = sa.func.coalesce(col(Worker.rating), 0) * col(Worker.rating_count) + rating
    average = sa.func.round(sa.cast(total / (col(Worker.rating_count) + 1), sa.Numeric(6, 3)), 2)
    session.execute(
        sa.update(Worker)
        .where(col(Worker.id) == request.worker_id)
        .values(rating=average, rating_count=col(Worker.rating_count) + 1)
    )
    session.refresh(request)
    offers.audit(
        session,
        actor,
        AuditAction.REQUEST_CLOSED,
        request,
        from_status=RequestStatus.COMPLETED.value,
        reason=f"rated {rating}",
    )
    return True


def _number_of(engine: sa.Engine, request_id: int) -> str:
    with Session(engine) as session:
        request = session.get(ServiceRequest, request_id)
        return request.number if request else ""


def _note_unclear(engine: sa.Engine, actor: str, reply: Reply, reason: str = "not understood") -> None:
    with session_scope(engine) as session:
        record(
            session,
            AuditAction.SMS_UNCLEAR,
            actor=actor,
            entity="sms",
            reason=reason,
            detail={"kind": reply.kind.value},
        )
