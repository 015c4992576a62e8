"""SMS webhooks. The status callback keeps each message's delivery status."""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, request
from sqlmodel import select

from ivr.signature import twilio_signed
from storage.db import session_scope
from storage.models import SmsLog, utcnow

bp = Blueprint("sms", __name__, url_prefix="/twilio/sms")
# Twilio's order of message states; a callback arriving late never moves a message backwards.
ORDER = {"pending": 0, "queued": 1, "sending": 2, "sent": 3, "failed": 4, "undelivered": 4, "delivered": 5}
MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")


@bp.post("/status")
@twilio_signed
def status() -> Response:
    sid = request.form.get("MessageSid", "")
    new = request.form.get("MessageStatus", "")
    if not MESSAGE_SID.match(sid) or new not in ORDER:
        return Response(status=204)
    with session_scope(current_app.extensions["sewamitra"].engine) as session:
        sms = session.exec(select(SmsLog).where(SmsLog.message_sid == sid)).first()
        if sms is not None and ORDER[new] >= ORDER.get(sms.status or "pending", 0):
            sms.status, sms.updated_at = new, utcnow()
            sms.error_code = request.form.get("ErrorCode", "")[:10] or sms.error_code
            session.add(sms)
    return Response(status=204)
