"""The console's softphone: how an agent answers (in this browser, or on their desk phone), the
platform's token for their browser (signed-in staff only, short-lived, audited), and a browser leg
that never reached the platform given up. The browser's call itself is the platform's SDK's
(static/softphone.js); the helpline answers its leg in `ivr.softphone`."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, flash, g, jsonify, request, session
from flask.typing import ResponseReturnValue

from callcentre import desk
from console import agent, auth
from console.agent import ANSWER_NAMES, SESSION_KEY, AnswerIn, answer_in
from console.auth import STAFF, requires, runtime
from console.labels import N_
from storage import agents
from storage.agents import AgentState
from storage.audit import AuditAction
from storage.db import session_scope
from telephony import browser_ready, browser_token
from telephony.browser import TOKEN_TTL_S, identity_of
from telephony.port import GatewayError

log = logging.getLogger(__name__)
bp = Blueprint("softphone", __name__, url_prefix="/agent")
NOT_CONFIGURED = N_("Answering in the browser is not set up on this helpline: ask an administrator.")


def context() -> dict[str, object]:
    """The template's view: the choice, whether the browser is possible, and the SDK to load."""
    return {
        "answer_in": answer_in().value,
        "answer_names": ANSWER_NAMES,
        "browser_ready": browser_ready(runtime().settings),
        "platform": runtime().settings.telephony.platform,
    }


@bp.post("/answer-in")
@requires(*STAFF)
def choose() -> ResponseReturnValue:
    chosen = request.form.get("answer_in", "")
    if chosen not in set(AnswerIn):
        return agent._back()
    if chosen == AnswerIn.BROWSER and not browser_ready(runtime().settings):
        flash(NOT_CONFIGURED)
        return agent._back()
    session[SESSION_KEY] = chosen
    return agent._back()


@bp.post("/token")
@requires(*STAFF)
def token() -> ResponseReturnValue:
    """The platform's token for this agent's browser, `agent-<user id>`, for TOKEN_TTL_S."""
    settings = runtime().settings
    if not browser_ready(settings):
        return jsonify(error="not_configured"), 409
    identity, now = identity_of(g.user.id), int(runtime().clock.now().timestamp())
    try:
        made = browser_token(settings, identity, now, TOKEN_TTL_S)
    except GatewayError as error:  # the platform's API away, or refusing
        log.warning("could not get a browser token for user %s: %s", g.user.id, error)
        return jsonify(error="platform_unreachable"), 503
    with session_scope(runtime().engine) as db:
        auth.audit(db, AuditAction.SOFTPHONE_TOKEN, "user", g.user.id, identity=identity, platform=made.platform)
    return jsonify(platform=made.platform, token=made.token, identity=made.identity, expires_at=made.expires_at)


@bp.post("/leg-failed")
@requires(*STAFF)
def leg_failed() -> ResponseReturnValue:
    """The browser could not reach the platform for the caller it was to connect to (no microphone,
    no network): the agent is paused and the caller is free for another, as a desk phone rung for nothing."""
    call_sid = request.form.get("call", "")[:40]
    connection, now = runtime().redis, runtime().clock.now()
    try:
        held = agents.status(connection, g.user.id)
        if held.state is AgentState.ON_CALL and held.call_sid == call_sid and not held.bridged:
            desk.leg_ended(connection, runtime().engine, g.user.id, runtime().settings.agents, now)
            return jsonify(ended=True)
    except redis.RedisError:
        log.warning("could not end the browser leg of user %s", g.user.id)
        return jsonify(error="redis_unreachable"), 503
    return jsonify(ended=False)
