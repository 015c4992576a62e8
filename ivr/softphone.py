"""An agent's browser leg (the console's softphone): the platform asks what to do with a call the
browser placed for the caller the agent took (Twilio: the TwiML App's Voice URL, `From=client:agent-<id>`;
Plivo: the browser application's answer URL, `From=sip:agent-<id>@…`). Signature-checked like every
webhook; the agent must hold that caller (claimed, not yet bridged), and then the leg joins the
caller's room exactly as the desk phone's does (`voice.agent_leg_into_the_room`: the room noted with
this leg, the caller moved in at once by REST). The leg's end (the TwiML App's status callback, the
application's hangup URL) ends the agent's call as the desk phone's end does.

Served under /<platform>/voice/client. Whatever fails, the platform gets a valid document."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException

from callcentre import desk
from ivr import calllog
from ivr.voice import _answered, _ivr, _runtime, _said, agent_leg_into_the_room
from storage import agents, callqueue
from storage.agents import AgentState
from storage.audit import AuditAction, record
from storage.db import session_scope
from telephony import client_leg, webhook_signed
from telephony.browser import ClientLeg
from telephony.call import Hangup

log = logging.getLogger(__name__)
bp = Blueprint("softphone", __name__)


@bp.post("")
@webhook_signed
def placed() -> Response:
    """The browser called in for a caller: into that caller's room, if its agent holds them."""
    leg = client_leg(_runtime().settings, request.form)
    if leg.user_id is None or not callqueue.CALL_SID.match(leg.caller_call_id) or not leg.call_id:
        return _refused(leg, "not a browser call for a caller")
    connection = _runtime().redis
    agent = agents.status(connection, leg.user_id)
    if agent.state is not AgentState.ON_CALL or agent.call_sid != leg.caller_call_id or agent.bridged:
        return _refused(leg, "the agent does not hold that caller")
    callqueue.browser_leg(connection, leg.call_id, leg.user_id, leg.caller_call_id)
    return agent_leg_into_the_room(leg.user_id, leg.caller_call_id, leg.call_id)


@bp.post("/status")
@webhook_signed
def ended() -> Response:
    """The browser's leg ended: after a call, wrap-up; before the caller came, paused and the caller free."""
    turn = _ivr().platform.call_turn(request.form)
    leg = client_leg(_runtime().settings, request.form)
    if turn.status not in calllog.FINAL or not leg.call_id:
        return Response(status=204)
    connection = _runtime().redis
    held = callqueue.browser_leg_of(connection, leg.call_id)
    if held is None:
        return Response(status=204)
    user_id, call_sid = held
    if agents.status(connection, user_id).call_sid == call_sid:
        runtime = _runtime()
        desk.leg_ended(connection, runtime.engine, user_id, runtime.settings.agents, runtime.clock.now())
    return Response(status=204)


def _refused(leg: ClientLeg, why: str) -> Response:
    """Not a leg the helpline expects: said so, on the audit trail, and hung up."""
    log.warning("refused a browser leg of user %s for call %r: %s", leg.user_id, leg.caller_call_id[:40], why)
    with session_scope(_runtime().engine) as db:
        record(
            db,
            AuditAction.SOFTPHONE_LEG_REFUSED,
            actor=f"user:{leg.user_id}" if leg.user_id else "anonymous",
            entity="call",
            reason=why,
            detail={"call_sid": leg.caller_call_id[:40], "leg": leg.call_id[:40]},
        )
    return _answered(_said("agent_queue_empty", "en"), Hangup())


@bp.errorhandler(Exception)
def internal_error(error: Exception) -> Response | HTTPException:
    """Redis or the database away: the browser's leg ends (the agent sees it end), never a 500."""
    if isinstance(error, HTTPException):
        return error
    log.exception("browser leg webhook failed", exc_info=error)
    if request.endpoint == "softphone.ended":
        return Response(status=204)
    return _answered(_said("technical_problem", "en"), Hangup())
