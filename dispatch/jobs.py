"""Background jobs. Module-level functions that take ids, never ORM objects."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from rq import Retry, get_current_job
from sqlmodel import Session

from dispatch import context
from storage.models import SmsLog, utcnow

log = logging.getLogger(__name__)
HEARTBEAT_KEY = "sewamitra:jobs:heartbeat"
# A failed send is tried again after these pauses (seconds), then left as failed.
SMS_RETRY = Retry(max=3, interval=[10, 30, 90])


def heartbeat() -> str:
    """Prove the scheduler → queue → worker path is alive: /healthz reads the time it left."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("heartbeat runs only as an RQ job")
    moment = datetime.now(UTC).isoformat()
    job.connection.set(HEARTBEAT_KEY, moment)
    return moment


def send_sms(sms_log_id: int) -> str | None:
    """Send one SMS already recorded as queued; record Twilio's sid. Sending twice is refused."""
    ctx = context.current()
    with Session(ctx.engine) as session:
        sms = session.get(SmsLog, sms_log_id)
        if sms is None or sms.message_sid is not None or sms.to_number is None:
            return None
        callback = f"{ctx.settings.public_url}/twilio/sms/status"
        try:
            sid = ctx.telephony.send_sms(sms.to_number, sms.body, status_callback=callback)
        except Exception as exc:
            sms.status, sms.updated_at = "send_failed", utcnow()
            sms.error_code = str(getattr(exc, "code", "") or "")[:10] or None
            session.add(sms)
            session.commit()
            raise
        sms.message_sid, sms.status, sms.error_code, sms.updated_at = sid, "queued", None, utcnow()
        session.add(sms)
        session.commit()
        return sid
