"""Notices to citizens by SMS, recorded and sent the way every SMS is (retried, its delivery kept):
the privacy notice's link for a first-time caller (DPDP Act 2023 s.5), a breach's notice (s.8(6))."""

from __future__ import annotations

from collections.abc import Mapping

import redis
import sqlalchemy as sa

from core import phones
from core.settings import Settings
from dispatch import enqueue, sms_text
from storage.db import session_scope
from storage.models import SmsDelivery, SmsLog

PRIVACY_TEMPLATE = "privacy_notice"
BREACH_TEMPLATE = "breach_notice"


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
    None when the number is not an Indian mobile."""
    to = phones.indian_mobile(phone)
    if to is None:
        return None
    body = sms_text.compose(settings, template, language, values)
    with session_scope(engine) as session:
        sms = SmsLog(to_number=to, body=body, template=template, status=SmsDelivery.PENDING)
        session.add(sms)
        session.flush()
        sms_id = sms.id
    assert sms_id is not None
    enqueue.send_sms(connection, sms_id)
    return sms_id
