"""Notices to citizens by SMS, recorded and sent the way every SMS is (retried, its delivery kept):
the privacy notice's link for a first-time caller (DPDP Act 2023 s.5), a breach's notice (s.8(6)),
the notice before an erasure for lapsed purpose (DPDP Rules 2025: 48 hours before), the promise of a
callback to a caller who hung up in the queue."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import redis
import sqlalchemy as sa
from sqlmodel import Session

from core import phones
from core.settings import Settings
from dispatch import enqueue, messages
from storage.db import autocommitted, session_scope
from storage.models import Caller

PRIVACY_TEMPLATE = "privacy_notice"
BREACH_TEMPLATE = "breach_notice"
ERASURE_TEMPLATE = "erasure_notice"  # not a contact: the retention job does not count it as the citizen seen
MISSED_CALL_TEMPLATE = "missed_call_callback"


def privacy_url(settings: Settings, language: str) -> str:
    """The full notice, in the caller's language (Hindi unless English)."""
    return f"{settings.public_url}/privacy" + ("?lang=en" if language == "en" else "")


def send_privacy_notice(
    engine: sa.Engine, connection: redis.Redis, settings: Settings, phone: str, language: str
) -> int | None:
    """The privacy notice's link by SMS; None when the number cannot get an SMS."""
    return send(
        engine, connection, settings, phone, PRIVACY_TEMPLATE, language, {"url": privacy_url(settings, language)}
    )


def send_breach_notice(
    engine: sa.Engine, connection: redis.Redis, settings: Settings, phone: str, language: str, occurred: str
) -> int | None:
    """A citizen whose data a breach touched is told, in their language (DPDP Act s.8(6))."""
    values = {"date": occurred, "url": privacy_url(settings, language)}
    return send(engine, connection, settings, phone, BREACH_TEMPLATE, language, values)


def send_erasure_notice(
    engine: sa.Engine, connection: redis.Redis, settings: Settings, caller_id: int, erase_on: str, now: datetime
) -> int | None:
    """A citizen told, in their language, that their number and details go on or after `erase_on`
    (DPDP Rules 2025); their row notes when, in the same commit. None when they cannot be told."""
    with session_scope(engine) as session:
        caller = session.get(Caller, caller_id)
        if caller is None:
            return None
        language = caller.language or "hi"
        sms_id = _record(session, settings, caller.phone, ERASURE_TEMPLATE, language, {"date": erase_on})
        if sms_id is None:
            return None
        caller.erasure_notice_at = now
        session.add(caller)
    enqueue.send_sms(connection, sms_id)
    return sms_id


def record_missed_call(session: Session, settings: Settings, phone: str, language: str) -> int | None:
    """The SMS telling a caller who hung up in the queue that the helpline rings them back, recorded
    in `session` with their callback; its sending is queued (`enqueue.send_sms`) after the commit."""
    return _record(session, settings, phone, MISSED_CALL_TEMPLATE, language, {})


def send(
    engine: sa.Engine,
    connection: redis.Redis,
    settings: Settings,
    phone: str,
    template: str,
    language: str,
    values: Mapping[str, str],
) -> int | None:
    """Record a citizen's SMS from a template, then queue its sending (after the commit); its id, or
    None when the number is not an Indian mobile. One row: its INSERT commits as it runs."""
    with autocommitted(engine) as db:
        sms_id = _record(db, settings, phone, template, language, values)
    if sms_id is not None:
        enqueue.send_sms(connection, sms_id)
    return sms_id


def _record(
    db: sa.Connection | Session,
    settings: Settings,
    phone: str,
    template: str,
    language: str,
    values: Mapping[str, str],
) -> int | None:
    """The SMS recorded as pending in the connection's (or session's) transaction, its sending queued by
    the caller after the commit; None when the number is not an Indian mobile."""
    to = phones.indian_mobile(phone)
    return None if to is None else messages.record_outbound(db, settings, to, template, language, values)
