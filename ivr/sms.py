"""SMS webhooks: messages from workers and citizens, and the delivery status of ours."""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException

from core import phones
from core.text import storable
from dispatch import enqueue, messages
from storage.db import UNREACHABLE
from telephony import webhook_signed
from telephony.call import CallPlatform

bp = Blueprint("sms", __name__, url_prefix="/twilio/sms")
log = logging.getLogger(__name__)
MAX_BODY = 1600
# A message's id: Twilio's MessageSid, or Plivo's MessageUUID.
MESSAGE_SID = re.compile(r"^((SM|MM)[0-9a-fA-F]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")


@bp.post("")
@webhook_signed
def incoming() -> Response:
    """A message comes in: record it once (the platform may deliver it twice), then let a job act on it.

    Recorded first, so nothing a worker or citizen sends is lost: if the job cannot be queued now,
    the sweeper finds the message still `received`; if the database cannot be reached, a job
    records it when it is back.
    """
    runtime = current_app.extensions["sewamitra"]
    message = _platform().inbound_message(request.form)
    sender = phones.to_e164(message.sender[:40])
    sid = message.message_id
    body = storable(message.body, MAX_BODY)
    if sender is None or not MESSAGE_SID.match(sid):
        return _empty()
    try:
        sms_id = messages.record_inbound(runtime.engine, sid, sender, body)
    except UNREACHABLE:
        return _later(enqueue.receive_sms(runtime.redis, sid, sender, body), done=_empty())
    if sms_id is not None:
        enqueue.handle_sms(runtime.redis, sms_id)
    return _empty()


def _later(kept: bool, done: Response) -> Response:
    """The database could not be reached, and a job was asked to write what Twilio sent when it is
    back. If Redis could not take it either (`kept` False), Twilio hears 503 (its debugger shows it;
    with the `rp=5xx` connection override on the webhook URL, Twilio sends it again)."""
    if not kept:
        return Response("cannot keep this now\n", status=503, mimetype="text/plain", headers={"Retry-After": "60"})
    log.warning("the database is unreachable: a job writes what Twilio sent when it is back")
    return done


def _platform() -> CallPlatform:
    platform: CallPlatform = current_app.extensions["call_platform"]
    return platform


def _empty() -> Response:
    platform = _platform()
    return Response(platform.message_reply(), mimetype=platform.mimetype)


@bp.errorhandler(Exception)
def internal_error(error: Exception) -> Response | HTTPException:
    """Twilio gets a valid answer whatever broke; the message is in the log and, once recorded, in SmsLog."""
    if isinstance(error, HTTPException):
        return error
    log.exception("SMS webhook failed", exc_info=error)
    return _empty()


@bp.post("/status")
@webhook_signed
def status() -> Response:
    """Keep each message's delivery status; an offer that could not be delivered goes unanswered. The
    callback's URL names our message (`?sms=`), so a message whose sid we never wrote gets it here."""
    runtime = current_app.extensions["sewamitra"]
    report = _platform().delivery_report(request.form)
    sid, new = report.message_id, report.status
    if not MESSAGE_SID.match(sid) or new not in messages.ORDER:
        return Response(status=204)
    error_code = storable(report.error_code, 10)
    ours = request.args.get("sms", "")
    sms_id = int(ours) if ours.isascii() and ours.isdigit() and len(ours) <= 9 else None  # an id, not junk
    try:
        offer_id = messages.record_delivery(runtime.engine, sid, new, error_code, runtime.clock.now(), sms_id=sms_id)
    except UNREACHABLE:
        kept = enqueue.record_delivery(runtime.redis, sid, new, error_code, sms_id)
        return _later(kept, done=Response(status=204))
    if offer_id is not None:
        enqueue.undelivered_offer(runtime.redis, offer_id)
    return Response(status=204)
