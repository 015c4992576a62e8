"""A citizen's requests about their own data (DPDP Act 2023 s.11-12), however they ask: by a menu
choice on the phone or through an agent on the console, both filed here. Access is answered at once;
an erasure waits for a supervisor, who approves it (erased everywhere: `dispatch.retention`) or
refuses it, and the citizen is told by SMS either way. Audit events name people by id only."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import redis
import sqlalchemy as sa
from sqlmodel import Session, select

from core import phones
from core.settings import Settings
from dispatch import notice, retention, sms_text
from storage.audit import AuditAction, record
from storage.db import session_scope
from storage.models import (
    Caller,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    SmsDelivery,
    SmsLog,
)
from telephony import webhook_url
from telephony.port import Telephony

log = logging.getLogger(__name__)
ENTITY = "privacy_request"
ERASED_TEMPLATE = "erasure_done"
REFUSED_TEMPLATE = "erasure_refused"
BY_PHONE = "ivr"  # the actor of a request the caller files themself, by the phone menu


@dataclass(frozen=True)
class Filed:
    """A privacy request as filed: `new` is False for an erasure already waiting (filed once only)."""

    id: int
    kind: PrivacyRequestKind
    new: bool


class NotPending(Exception):
    """The erasure was decided before (or is not an erasure): nothing is done twice."""


def file(
    session: Session, caller_id: int, kind: PrivacyRequestKind, *, filed_by: int | None, actor: str, now: datetime
) -> Filed:
    """File a request in the caller's name: access is given at once (done), an erasure waits for a
    supervisor; a second erasure while one waits is the same request. `filed_by` is the agent, None by phone."""
    if kind is PrivacyRequestKind.ERASURE:
        waiting = session.exec(
            select(PrivacyRequest).where(
                PrivacyRequest.caller_id == caller_id,
                PrivacyRequest.kind == PrivacyRequestKind.ERASURE,
                PrivacyRequest.status == PrivacyRequestStatus.PENDING,
            )
        ).first()
        if waiting is not None and waiting.id is not None:
            return Filed(waiting.id, kind, new=False)
    done = kind is PrivacyRequestKind.ACCESS
    filed = PrivacyRequest(
        kind=kind,
        caller_id=caller_id,
        filed_by=filed_by,
        filed_at=now,
        status=PrivacyRequestStatus.DONE if done else PrivacyRequestStatus.PENDING,
        decided_by=filed_by if done else None,
        decided_at=now if done else None,
    )
    session.add(filed)
    session.flush()
    assert filed.id is not None
    action = AuditAction.PRIVACY_ACCESS_GIVEN if done else AuditAction.PRIVACY_ERASURE_FILED
    record(session, action, actor=actor, entity=ENTITY, entity_id=filed.id, detail={"caller_id": caller_id})
    return Filed(filed.id, kind, new=True)


def approve_erasure(
    engine: sa.Engine,
    connection: redis.Redis,
    settings: Settings,
    sender: Telephony,
    request_id: int,
    *,
    decided_by: int,
    actor: str,
    now: datetime,
) -> retention.Counts:
    """Erase the caller everywhere, then tell them by SMS; raises `retention.StillServing` while a
    request of theirs is open (nothing erased), `NotPending` when decided before."""
    filed = _pending_erasure(engine, request_id)
    phone, language = _reachable(engine, filed.caller_id)
    counts = retention.erase_caller(engine, connection, settings, filed.caller_id, now)
    if not _decide(engine, request_id, PrivacyRequestStatus.DONE, decided_by, actor, now, counts.as_detail()):
        return counts  # a second approval at the same moment: the first tells the citizen
    if phone is not None:
        _tell_erased(engine, settings, sender, phone, language)
    return counts


def refuse_erasure(
    engine: sa.Engine,
    connection: redis.Redis,
    settings: Settings,
    request_id: int,
    *,
    decided_by: int,
    actor: str,
    now: datetime,
) -> None:
    """Refuse an erasure: the caller is told by SMS to call the helpline to hear why."""
    filed = _pending_erasure(engine, request_id)
    if _decide(engine, request_id, PrivacyRequestStatus.REJECTED, decided_by, actor, now, {}):
        phone, language = _reachable(engine, filed.caller_id)
        if phone is not None:
            notice.send(engine, connection, settings, phone, REFUSED_TEMPLATE, language, {})


def _pending_erasure(engine: sa.Engine, request_id: int) -> PrivacyRequest:
    with Session(engine) as session:
        filed = session.get(PrivacyRequest, request_id)
    if (
        filed is None
        or filed.kind is not PrivacyRequestKind.ERASURE
        or filed.status is not PrivacyRequestStatus.PENDING
    ):
        raise NotPending(request_id)
    return filed


def _reachable(engine: sa.Engine, caller_id: int) -> tuple[str | None, str]:
    """The caller's mobile (None for a landline, or a number erased before) and language."""
    with Session(engine) as session:
        caller = session.get(Caller, caller_id)
    if caller is None or phones.is_pseudonym(caller.phone):
        return None, "hi"
    return phones.indian_mobile(caller.phone), caller.language or "hi"


def _decide(
    engine: sa.Engine,
    request_id: int,
    status: PrivacyRequestStatus,
    decided_by: int,
    actor: str,
    now: datetime,
    counts: dict[str, int],
) -> bool:
    """The decision, once (compare-and-set on pending), with its audit event: counts, never whose data."""
    with session_scope(engine) as session:
        filed = session.get(PrivacyRequest, request_id, with_for_update=True)
        if filed is None or filed.status is not PrivacyRequestStatus.PENDING:
            return False
        filed.status, filed.decided_by, filed.decided_at = status, decided_by, now
        session.add(filed)
        action = (
            AuditAction.PRIVACY_ERASED if status is PrivacyRequestStatus.DONE else AuditAction.PRIVACY_ERASURE_REJECTED
        )
        record(session, action, actor=actor, entity=ENTITY, entity_id=request_id, to_status=status.value, detail=counts)
    return True


def _tell_erased(engine: sa.Engine, settings: Settings, sender: Telephony, phone: str, language: str) -> None:
    """The number is gone from every table already: the SMS goes out now, its record holding the hash
    the number became (never tried again later: nobody could, the number being gone)."""
    body = sms_text.compose(settings, ERASED_TEMPLATE, language, {})
    sms = SmsLog(
        to_number=phones.pseudonym(retention.normal(phone), retention.key_of(settings)),
        body=body,
        template=ERASED_TEMPLATE,
        status=SmsDelivery.NOT_SENT,
        attempts=1,
    )
    try:
        sms.message_sid = sender.send_sms(
            phone,
            body,
            status_callback=webhook_url(settings, "/sms/status"),
            dlt_template_id=settings.sms.templates[ERASED_TEMPLATE].dlt_template_id,
        )
        sms.status = SmsDelivery.QUEUED
    except Exception as exc:  # the erasure stands; an agent sees the message as not sent
        log.warning("the erasure's SMS could not be sent: %s", type(exc).__name__)
    with session_scope(engine) as session:
        session.add(sms)
