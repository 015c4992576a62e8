"""SMS webhooks: messages from workers and citizens, and the delivery status of ours."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

import redis
import sqlalchemy as sa
from flask import Blueprint, Response, current_app, request
from sqlmodel import Session, select
from twilio.twiml.messaging_response import MessagingResponse
from werkzeug.exceptions import HTTPException

from dispatch import inbox, jobs
from dispatch.queues import QueueName, queue
from ivr.signature import twilio_signed
from storage import phones
from storage.db import session_scope
from storage.models import Direction, Offer, OfferStatus, SmsLog, utcnow

bp = Blueprint("sms", __name__, url_prefix="/twilio/sms")
log = logging.getLogger(__name__)
MAX_BODY = 1600
# Twilio's order of message states; a callback arriving late never moves a message backwards.
ORDER = {"pending": 0, "queued": 1, "sending": 2, "sent": 3, "failed": 4, "undelivered": 4, "delivered": 5}
UNDELIVERED = frozenset({"failed", "undelivered"})
MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")


@bp.post("")
@twilio_signed
def incoming() -> Response:
    """A message comes in: act on it once (Twilio may deliver it twice), reply by queued SMS."""
    runtime = current_app.extensions["sewamitra"]
    sender = phones.to_e164(request.form.get("From", "")[:40])
    sid = request.form.get("MessageSid", "")
    body = request.form.get("Body", "")[:MAX_BODY]
    if sender is None or not MESSAGE_SID.match(sid) or not _first_delivery(runtime.engine, sid, sender, body):
        return _empty()
    outcome = inbox.handle(runtime.engine, sender, body, datetime.now(UTC))
    _follow_up(runtime.redis, sender, outcome)
    return _empty()


def _first_delivery(engine: sa.Engine, sid: str, sender: str, body: str) -> bool:
    try:
        with session_scope(engine) as session:
            session.add(SmsLog(message_sid=sid, direction=Direction.INBOUND, from_number=sender, body=body,
                               status="received"))  # fmt: skip
    except sa.exc.IntegrityError:
        return False
    return True


def _follow_up(connection: redis.Redis, sender: str, outcome: inbox.Outcome) -> None:
    """Queue the replies and the jobs the message calls for; the database already holds the change."""
    dispatching, default = queue(connection, QueueName.DISPATCH), queue(connection, QueueName.DEFAULT)
    if outcome.assigned is not None:
        dispatching.enqueue(jobs.notify_assigned, outcome.assigned, job_id=f"assigned-{outcome.assigned}")
    if outcome.redispatch is not None:
        dispatching.enqueue(jobs.dispatch_request, outcome.redispatch, job_id=f"dispatch-{outcome.redispatch}")
    if outcome.completed is not None:
        default.enqueue(jobs.after_completion, outcome.completed, job_id=f"completed-{outcome.completed}")
    if outcome.worker_changed is not None:
        default.enqueue(jobs.reindex_worker, outcome.worker_changed)
    for reply in outcome.replies:
        default.enqueue(jobs.reply_sms, sender, reply.template, outcome.language, reply.values, retry=jobs.SMS_RETRY)


def _empty() -> Response:
    return Response(str(MessagingResponse()), mimetype="text/xml")


@bp.errorhandler(Exception)
def internal_error(error: Exception) -> Response | HTTPException:
    """Twilio gets a valid answer whatever broke; the message is in the log and, once recorded, in SmsLog."""
    if isinstance(error, HTTPException):
        return error
    log.exception("SMS webhook failed", exc_info=error)
    return _empty()


@bp.post("/status")
@twilio_signed
def status() -> Response:
    """Keep each message's delivery status; an offer that could not be delivered goes unanswered."""
    runtime = current_app.extensions["sewamitra"]
    sid = request.form.get("MessageSid", "")
    new = request.form.get("MessageStatus", "")
    if not MESSAGE_SID.match(sid) or new not in ORDER:
        return Response(status=204)
    with session_scope(runtime.engine) as session:
        sms = session.exec(select(SmsLog).where(SmsLog.message_sid == sid)).first()
        if sms is None or ORDER[new] < ORDER.get(sms.status or "pending", 0):
            return Response(status=204)
        sms.status, sms.updated_at = new, utcnow()
        sms.error_code = request.form.get("ErrorCode", "")[:10] or sms.error_code
        session.add(sms)
        offer = _offer_texted(session, sms) if new in UNDELIVERED else None
    if offer is not None:
        queue(runtime.redis, QueueName.DISPATCH).enqueue(
            jobs.expire_offer, offer.id, "the SMS could not be delivered", True, job_id=f"undelivered-{offer.id}"
        )
    return Response(status=204)


def _offer_texted(session: Session, sms: SmsLog) -> Offer | None:
    """The still-open offer an SMS carried, if it was one."""
    if sms.template != "offer" or sms.worker_id is None or sms.request_id is None:
        return None
    query = select(Offer).where(
        Offer.request_id == sms.request_id, Offer.worker_id == sms.worker_id, Offer.status == OfferStatus.PENDING
    )
    return session.exec(query).first()
