"""Callbacks worked to an end (issue 20). A caller who hangs up in the agent queue after waiting
`agents.missed_caller_after_seconds` gets a callback (reason `missed`, at most one open per number)
and an SMS saying the helpline rings them back. An agent takes a callback (it is theirs), tries it
and confirms each try's outcome and note: reached closes it done, a wrong number cancelled; no
answer or busy moves it on by `agents.callback_retry_minutes`, and after
`agents.callback_max_attempts` such tries it closes unreachable.

A try may go through the helpline (click-to-call), shaped as an officer's call to a citizen
(`dispatch.citizen_calls`): the agent's own phone rung first, then the caller with the helpline's
number as caller ID, the caller's number looked up at the moment of dialling and handed to the
platform only; how the dial ended pre-fills the try's outcome for the agent to confirm."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import redis
import sqlalchemy as sa
from sqlmodel import Session, col, select

from core import phones
from core.settings import Agents, Settings
from dispatch import enqueue, notice
from dispatch.intake import caller_id_for
from storage import audit
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import CallbackAttempt, CallbackOutcome, CallbackRequest, CallbackStatus, User

MISSED = "missed"
RING_AGENT_S = 25  # how long the agent's phone rings before the try is given up
RING_CALLER_S = 30
TALK_LIMIT_S = 20 * 60
FOUND_NOBODY = (CallbackOutcome.NO_ANSWER, CallbackOutcome.BUSY)
CLOSES = {CallbackOutcome.REACHED: CallbackStatus.DONE, CallbackOutcome.WRONG_NUMBER: CallbackStatus.CANCELLED}
# How the helpline's dial to the caller ended (ivr.voice.DIAL_OUTCOMES), as the outcome it suggests.
SUGGESTED = {
    "completed": CallbackOutcome.REACHED,
    "no_answer": CallbackOutcome.NO_ANSWER,
    "busy": CallbackOutcome.BUSY,
}
AGENT_UNANSWERED = "agent_unanswered"  # the agent's own phone was not picked up: the caller was never rung


class Refusal(StrEnum):
    """Why a callback cannot be taken, called or given an outcome now, in words the console translates."""

    CLOSED = "closed"  # done, cancelled, unreachable, or no such callback
    NOT_YOURS = "not_yours"  # another agent took it
    NO_AGENT_PHONE = "no_agent_phone"
    NO_CALLER_PHONE = "no_caller_phone"  # withheld, not a number, or erased to its hash
    CALL_OPEN = "call_open"  # a try through the helpline still waits for its outcome


@dataclass(frozen=True)
class Listed:
    """A callback as the list shows it: its tries that found nobody, its owner, its last try."""

    callback: CallbackRequest
    tries: int
    owner: str | None
    last: CallbackAttempt | None

    @property
    def suggested(self) -> CallbackOutcome | None:
        """The outcome pre-filled for the try awaiting confirmation, from how its dial ended."""
        last = self.last
        if last is None or last.outcome is not None or last.dial_status is None:
            return None
        return SUGGESTED.get(last.dial_status)


def missed_caller(
    engine: sa.Engine,
    connection: redis.Redis,
    settings: Settings,
    call: tuple[str, str | None, str],
    waited_s: int,
    now: datetime,
) -> int | None:
    """A caller (call id, number, language) hung up in the queue after `waited_s`: their callback and
    its SMS, in one commit; None when they waited too little, cannot be rung (withheld) or already
    have an open missed-call callback."""
    call_sid, phone, language = call
    if phone is None or waited_s < settings.agents.missed_caller_after_seconds:
        return None
    try:
        with session_scope(engine) as session:
            if _already_promised(session, phone, call_sid):
                return None
            callback_id = _promise(session, settings, call, waited_s, now)
            sms_id = notice.record_missed_call(session, settings, phone, language)
    except sa.exc.IntegrityError:  # the same number's other call got there first
        return None
    if sms_id is not None:
        enqueue.send_sms(connection, sms_id)
    return callback_id


def _already_promised(session: Session, phone: str, call_sid: str) -> bool:
    open_missed = sa.and_(
        col(CallbackRequest.phone) == phone,
        col(CallbackRequest.reason) == MISSED,
        col(CallbackRequest.status) == CallbackStatus.PENDING,
    )
    same_call = col(CallbackRequest.call_sid) == call_sid
    return session.exec(select(CallbackRequest.id).where(sa.or_(open_missed, same_call))).first() is not None


def _promise(
    session: Session, settings: Settings, call: tuple[str, str | None, str], waited_s: int, now: datetime
) -> int:
    call_sid, phone, language = call
    assert phone is not None
    callback = CallbackRequest(
        phone=phone,
        caller_id=caller_id_for(session, phone, language, settings.privacy_key),
        language=language,
        reason=MISSED,
        call_sid=call_sid,
        due_at=now,
        created_at=now,
    )
    session.add(callback)
    session.flush()
    assert callback.id is not None
    audit.record(
        session,
        AuditAction.CALLBACK_REQUESTED,
        actor="ivr",
        entity="callback_request",
        entity_id=callback.id,
        reason=MISSED,
        detail={"waited_s": waited_s},
    )
    return callback.id


# -- the agent's list ---------------------------------------------------------------------------------


def listing(session: Session, limit: int) -> list[Listed]:
    """Open callbacks, the soonest due first, each with its tries, owner and last try."""
    callbacks = session.exec(
        select(CallbackRequest)
        .where(CallbackRequest.status == CallbackStatus.PENDING)
        .order_by(col(CallbackRequest.due_at).asc().nulls_first(), col(CallbackRequest.created_at))
        .limit(limit)
    ).all()
    ids = [c.id for c in callbacks]
    attempts = session.exec(
        select(CallbackAttempt).where(col(CallbackAttempt.callback_id).in_(ids)).order_by(col(CallbackAttempt.id))
    ).all()
    owners = {c.owner_id for c in callbacks if c.owner_id}
    names = dict(session.exec(select(User.id, User.username).where(col(User.id).in_(owners))).all()) if owners else {}
    return [_listed(c, [a for a in attempts if a.callback_id == c.id], names) for c in callbacks]


def _listed(callback: CallbackRequest, attempts: Sequence[CallbackAttempt], names: dict[int | None, str]) -> Listed:
    tries = sum(1 for a in attempts if a.outcome in FOUND_NOBODY)
    return Listed(callback, tries, names.get(callback.owner_id), attempts[-1] if attempts else None)


def take(session: Session, callback_id: int, user_id: int) -> Refusal | None:
    """The agent makes the callback theirs (compare-and-set: nobody's, or already theirs); audited."""
    moved = session.execute(
        sa.update(CallbackRequest)
        .where(
            col(CallbackRequest.id) == callback_id,
            col(CallbackRequest.status) == CallbackStatus.PENDING,
            sa.or_(col(CallbackRequest.owner_id).is_(None), col(CallbackRequest.owner_id) == user_id),
        )
        .values(owner_id=user_id)
    ).rowcount  # type: ignore[attr-defined]
    if not moved:
        found = session.get(CallbackRequest, callback_id)
        return Refusal.CLOSED if found is None or found.status is not CallbackStatus.PENDING else Refusal.NOT_YOURS
    _audit(session, AuditAction.CALLBACK_TAKEN, user_id, callback_id)
    return None


# -- a try through the helpline ------------------------------------------------------------------------


def caller_number(callback: CallbackRequest) -> str | None:
    """The number to ring now: None when withheld, not a number, or erased to its hash."""
    if not callback.phone or phones.is_pseudonym(callback.phone) or phones.is_withheld(callback.phone):
        return None
    return phones.to_e164(callback.phone)


def place(session: Session, callback_id: int, agent: User, now: datetime) -> CallbackAttempt | Refusal:
    """A try through the helpline, about to ring the agent's phone: the callback is theirs now."""
    callback = session.get(CallbackRequest, callback_id, with_for_update=True)
    if callback is None or callback.status is not CallbackStatus.PENDING:
        return Refusal.CLOSED
    if not agent.phone:
        return Refusal.NO_AGENT_PHONE
    if caller_number(callback) is None:
        return Refusal.NO_CALLER_PHONE
    if _open_attempt(session, callback_id, dialled_only=True) is not None:
        return Refusal.CALL_OPEN
    refused = take(session, callback_id, agent.id or 0)
    if refused is not None:
        return refused
    attempt = CallbackAttempt(callback_id=callback_id, user_id=agent.id or 0, placed_at=now, dialled=True)
    session.add(attempt)
    session.flush()
    _audit(session, AuditAction.CALLBACK_CALL_PLACED, agent.id or 0, callback_id, attempt_id=attempt.id)
    return attempt


def to_dial(session: Session, attempt_id: int) -> tuple[CallbackAttempt, str] | None:
    """The try and the caller's number, while the try has not been dialled and the callback is open."""
    attempt = session.get(CallbackAttempt, attempt_id)
    if attempt is None or not attempt.dialled or attempt.dial_status is not None or attempt.outcome is not None:
        return None
    callback = session.get(CallbackRequest, attempt.callback_id)
    if callback is None or callback.status is not CallbackStatus.PENDING:
        return None
    number = caller_number(callback)
    return (attempt, number) if number else None


def dial_ended(session: Session, attempt_id: int, dial_status: str) -> bool:
    """How the dial ended (or that the agent's phone was not picked up), once: compare-and-set."""
    return bool(
        session.execute(
            sa.update(CallbackAttempt)
            .where(col(CallbackAttempt.id) == attempt_id, col(CallbackAttempt.dial_status).is_(None))
            .values(dial_status=dial_status[:20])
        ).rowcount  # type: ignore[attr-defined]
    )


def _open_attempt(session: Session, callback_id: int, *, dialled_only: bool = False) -> CallbackAttempt | None:
    """The try still waiting for its outcome (one whose agent's phone was not picked up is void)."""
    query = select(CallbackAttempt).where(
        CallbackAttempt.callback_id == callback_id,
        col(CallbackAttempt.outcome).is_(None),
        sa.or_(col(CallbackAttempt.dial_status).is_(None), col(CallbackAttempt.dial_status) != AGENT_UNANSWERED),
    )
    if dialled_only:
        query = query.where(col(CallbackAttempt.dialled).is_(True))
    return session.exec(query.order_by(col(CallbackAttempt.id).desc())).first()


# -- the outcome ---------------------------------------------------------------------------------------


def record_outcome(
    session: Session,
    callback_id: int,
    user_id: int,
    answer: tuple[CallbackOutcome, str | None],
    rules: Agents,
    now: datetime,
) -> Refusal | None:
    """One try's outcome and note: the try awaiting it (placed through the helpline) or a new one
    (rung by hand); then the callback closes, or moves on, or closes unreachable after its tries."""
    outcome, note = answer
    callback = session.get(CallbackRequest, callback_id, with_for_update=True)
    if callback is None or callback.status is not CallbackStatus.PENDING:
        return Refusal.CLOSED
    if callback.owner_id not in (None, user_id):
        return Refusal.NOT_YOURS
    attempt = _open_attempt(session, callback_id) or CallbackAttempt(
        callback_id=callback_id, user_id=user_id, placed_at=now
    )
    attempt.outcome, attempt.note, attempt.recorded_at = outcome, note, now
    session.add(attempt)
    session.flush()
    before = callback.status
    _settle(session, callback, (user_id, outcome), rules, now)
    _audit(
        session,
        AuditAction.CALLBACK_ATTEMPTED,
        user_id,
        callback_id,
        from_status=before.value,
        to_status=callback.status.value,
        reason=outcome.value,
        attempt_id=attempt.id,
    )
    return None


def _settle(
    session: Session, callback: CallbackRequest, tried: tuple[int, CallbackOutcome], rules: Agents, now: datetime
) -> None:
    """Where a try leaves the callback: closed by its outcome, unreachable after its tries, or due again."""
    user_id, outcome = tried
    found_nobody = session.exec(
        select(sa.func.count())
        .select_from(CallbackAttempt)
        .where(CallbackAttempt.callback_id == callback.id, col(CallbackAttempt.outcome).in_(FOUND_NOBODY))
    ).one()
    callback.owner_id = callback.owner_id or user_id
    if outcome in CLOSES:
        callback.status = CLOSES[outcome]
    elif found_nobody >= rules.callback_max_attempts:
        callback.status = CallbackStatus.UNREACHABLE
    else:
        callback.due_at = now + timedelta(minutes=rules.callback_retry_minutes)
    if callback.status is not CallbackStatus.PENDING:
        callback.handled_at, callback.handled_by = now, user_id
    session.add(callback)


def _audit(
    session: Session,
    action: AuditAction,
    user_id: int,
    callback_id: int,
    *,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    **detail: object,
) -> None:
    audit.record(
        session,
        action,
        actor=f"user:{user_id}",
        entity="callback_request",
        entity_id=callback_id,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        detail=detail or None,
    )
