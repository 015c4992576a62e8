"""The supervisors' wall, "Agents now": every agent with a state and its time, an agent's caller (their
language, how long they waited, how long they have talked), the callers waiting by language; and,
on any live agent call, Listen, Whisper and Barge (`callcentre.monitoring`): the supervisor's phone
rings, and the wall switches their mode while they are in the room. Its live part is refreshed by
`static/console.js` from a few Redis reads and one query for the agents' names."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import redis
from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select

from callcentre import monitoring
from callcentre.monitoring import Refusal
from console.agent import NOT_READY, STATE_NAMES, context
from console.auth import MANAGERS, requires, runtime
from console.labels import N_
from dispatch import enqueue
from storage import agents, callqueue
from storage import monitoring as sessions
from storage.agents import AgentState, AgentStatus
from storage.models import User
from storage.monitoring import LiveCall, Mode
from telephony import call_control

log = logging.getLogger(__name__)
bp = Blueprint("wall", __name__, url_prefix="/wall")
ORDER = (AgentState.ON_CALL, AgentState.WRAP_UP, AgentState.READY, AgentState.PAUSED)
MODE_NAMES = {Mode.LISTEN: N_("Listen"), Mode.WHISPER: N_("Whisper"), Mode.BARGE: N_("Barge")}
WHO_HEARS = {
    Mode.LISTEN: N_("nobody hears you"),
    Mode.WHISPER: N_("only the agent hears you"),
    Mode.BARGE: N_("the agent and the caller hear you"),
}
ON_ONE_ALREADY = N_("You are on a monitoring call already: hang up your phone to end it, then choose another.")
NO_PHONE = N_("Your profile has no phone to ring: ask an administrator to set one (sewamitra create-user --phone).")
RINGING = N_("Your phone is ringing: press 1 to join the call.")
SWITCHED = N_("Switched.")
REDIS_AWAY = N_("The queue cannot be read right now (Redis is unreachable).")
NO_COACHING = N_("Whisper is not possible on Plivo: its conference rooms cannot let only the agent hear you.")
REFUSALS = {
    Refusal.NOT_LIVE: N_("That agent is not talking with a caller now."),
    Refusal.NO_COACHING: NO_COACHING,
    Refusal.GONE: N_("That monitoring session is over."),
    Refusal.NOT_IN_ROOM: N_("Answer your phone and press 1 first."),
    Refusal.PLATFORM: N_("The telephony platform refused the change; try again."),
    Refusal.NO_AGENT_LEG: N_("The agent's own line is not known, so only listening or barging is possible."),
}


@dataclass(frozen=True)
class Row:
    """One agent on the wall."""

    agent: AgentStatus
    name: str
    call: callqueue.Call | None = None  # the caller they hold
    times: LiveCall = field(default_factory=LiveCall)

    @property
    def live(self) -> bool:
        """Talking with a caller now: a call a supervisor can join."""
        return self.agent.holds_a_caller() and self.agent.bridged


@dataclass(frozen=True)
class Queues:
    """The callers waiting for an agent, counted."""

    by_language: list[tuple[str, int]]
    longest_s: int
    first: int  # served first: a callback due, a call within 24 h, an open request
    total: int


@dataclass(frozen=True)
class Wall:
    rows: list[Row]
    queues: Queues
    now: float
    mine: sessions.Session | None  # this supervisor's monitoring session
    redis_ok: bool = True

    @property
    def busy(self) -> bool:
        """This supervisor is in an agent's live call now: their phone is taken until they hang up
        (the rule `monitor` refuses a second session by)."""
        mine = self.mine
        if mine is None or not mine.in_the_room:
            return False
        return any(r.agent.user_id == mine.agent_id and r.live and r.agent.call_sid == mine.call_sid for r in self.rows)


def modes() -> dict[Mode, str | None]:
    """Each mode, with why it is disabled on this platform (None: it is not)."""
    coaching = bool(current_app.extensions["call_platform"].coaching)
    return {Mode.LISTEN: None, Mode.WHISPER: None if coaching else NO_COACHING, Mode.BARGE: None}


def wall() -> Wall:
    now = runtime().clock.now().timestamp()
    connection = runtime().redis
    try:
        everyone = agents.statuses(connection)
        waiting = callqueue.waiting(connection, now)
        held = [a.call_sid for a in everyone if a.holds_a_caller() and a.call_sid]
        calls = {sid: callqueue.call(connection, sid) for sid in held}
        times = sessions.live_calls(connection, held)
        mine = sessions.of_supervisor(connection, g.user.id)
    except redis.RedisError:
        log.warning("Redis unreachable: the wall of agents cannot be shown")
        return Wall([], Queues([], 0, 0, 0), now, None, redis_ok=False)
    names = _names([a.user_id for a in everyone])
    rows = [
        Row(a, names.get(a.user_id, f"#{a.user_id}"), calls.get(a.call_sid), times.get(a.call_sid, LiveCall()))
        for a in everyone
    ]
    rows.sort(key=lambda r: (ORDER.index(r.agent.state), r.name.casefold()))
    return Wall(rows, _queues(waiting, now), now, mine)


def _names(user_ids: list[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    with Session(runtime().engine) as db:
        found = db.exec(select(User.id, User.full_name, User.username).where(col(User.id).in_(user_ids))).all()
    return {user_id: full_name or username for user_id, full_name, username in found if user_id is not None}


def _queues(waiting: list[callqueue.Waiting], now: float) -> Queues:
    languages = Counter(w.language for w in waiting)
    longest = max((w.wait_s(now) for w in waiting), default=0)
    first = sum(1 for w in waiting if w.call.priority)
    return Queues(sorted(languages.items(), key=lambda item: (-item[1], item[0])), longest, first, len(waiting))


def _page_context() -> dict[str, object]:
    desk = context()
    return {
        "wall": wall(),
        "modes": modes(),
        "mode_names": MODE_NAMES,
        "who_hears": WHO_HEARS,
        "state_names": STATE_NAMES,
        "not_ready": NOT_READY,
        "reason_names": desk["reason_names"],
    }


@bp.get("")
@requires(*MANAGERS)
def index() -> ResponseReturnValue:
    return render_template("console/wall.html", **_page_context())


@bp.get("/board")
@requires(*MANAGERS)
def board() -> ResponseReturnValue:
    """The wall's live part, fetched again every few seconds."""
    return render_template("console/wall_board.html", **_page_context())


@bp.post("/monitor")
@requires(*MANAGERS)
def monitor() -> ResponseReturnValue:
    """Listen, whisper or barge on an agent's live call: the supervisor's phone rings."""
    mode, agent_id = _mode(), _agent_id()
    if mode is None or agent_id is None:
        flash(N_("Choose an agent on a call and a mode."))
        return _back()
    if not g.user.phone:
        flash(NO_PHONE)
        return _back()
    connection, now = runtime().redis, runtime().clock.now()
    coaching = modes()[Mode.WHISPER] is None
    try:
        if _in_a_call(connection):
            flash(ON_ONE_ALREADY)
            return _back()
        session, refusal = monitoring.start(
            connection, runtime().engine, g.user.id, agent_id, mode, coaching=coaching, now=now
        )
        rung = session is not None and enqueue.ring_supervisor(connection, session.session_id, g.user.phone)
    except redis.RedisError:
        log.exception("could not start monitoring")
        flash(REDIS_AWAY)
        return _back()
    if session is None:
        flash(REFUSALS[refusal or Refusal.NOT_LIVE])
    else:
        flash(RINGING if rung else REDIS_AWAY)
    return _back()


@bp.post("/monitor/<session_id>/mode")
@requires(*MANAGERS)
def switch(session_id: str) -> ResponseReturnValue:
    """Listen, whisper or barge from now on, in the room the supervisor is in."""
    mode = _mode()
    if mode is None:
        flash(N_("Choose a mode."))
        return _back()
    coaching = modes()[Mode.WHISPER] is None
    control = call_control(runtime().settings)
    try:
        refusal = monitoring.switch(
            runtime().redis, runtime().engine, control, session_id[:32], g.user.id, mode, coaching=coaching
        )
    except redis.RedisError:
        log.exception("could not switch monitoring")
        flash(REDIS_AWAY)
        return _back()
    flash(REFUSALS[refusal] if refusal else SWITCHED)
    return _back()


def _in_a_call(connection: redis.Redis) -> bool:
    """This supervisor is in a live call already (their phone is taken): a second one would ring it again."""
    mine = sessions.of_supervisor(connection, g.user.id)
    return mine is not None and mine.in_the_room and monitoring.live_call(connection, mine.agent_id) == mine.call_sid


def _mode() -> Mode | None:
    try:
        return Mode(request.form.get("mode", ""))
    except ValueError:
        return None


def _agent_id() -> int | None:
    raw = request.form.get("agent", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else None


def _back() -> ResponseReturnValue:
    return redirect(url_for("console.wall.index"))
