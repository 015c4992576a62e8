"""Voice webhooks: the platform's call turn → the flow engine → call instructions, rendered by the
platform (TwiML for Twilio), with call state in Redis.

Every answer is a valid document: whatever fails, the caller hears an apology and is put through to
an agent (or offered a callback), never the platform's "application error".
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import redis
import sqlalchemy as sa
from flask import Blueprint, Flask, Response, g, request, send_from_directory
from werkzeug.exceptions import HTTPException

from callcentre import desk, priority
from callcentre import recording as call_recording
from callcentre.rooms import room_of
from core import phones, pincodes
from core.ids import parse_id
from core.settings import Settings
from core.text import storable
from dispatch import bridge, callbacks, citizen_calls, enqueue
from flows import definition, prompts
from flows.definition import Flow, ServiceChoice
from flows.engine import Dial as DialEvent
from flows.engine import Effect, Event, Keys, Outcome, Say, Session, Status, Trigger, pending_dial, resume, start
from flows.engine import Gather as GatherEvent
from ivr import calllog, callstate, turntoken
from ivr.callstate import CallState
from ivr.effects import (
    EFFECTS,
    CallContext,
    Performed,
    keep_recording,
    known_effects,
    known_language,
    record_bridged_call,
    record_callback,
    remember_language,
    to_dial,
    who_rings,
)
from ivr.instructions import (
    DIAL_AGAIN_PATH,
    DIALLED_PATH,
    QUEUE_RESULT_PATH,
    QUEUE_WAIT_PATH,
    TOKEN_ARG,
    Voice,
    instructions,
    queued_by_app,
    spoken,
)
from ivr.menuturns import MenuTurns, Remembered
from storage import callqueue, rooms
from storage.db import session_scope
from storage.runtime import Runtime
from telephony import call_control, our_number, webhook_signed
from telephony.call import (
    CallPlatform,
    CallTurn,
    Conference,
    DialNumber,
    Enqueue,
    Gather,
    Hangup,
    Instruction,
    Leave,
    Pause,
    Play,
    Redirect,
)
from telephony.call import Say as Spoken
from telephony.port import GatewayError
from telephony.webhooks import (
    checks_replays_itself,
    replay_mark,
    replay_refusal,
    replay_refused,
    this_app,
    this_g,
    this_request,
)

log = logging.getLogger(__name__)
bp = Blueprint("voice", __name__, url_prefix="/twilio/voice")
HELPLINE_QUEUE = "helpline"
QUEUE_KEY_PATH = "/queue/key"  # the action of the Gather in the waitUrl document, under the voice root
QUEUE_CONNECT_PATH = "/queue/connect"  # where a caller taken by an agent is moved, by REST, from hold
MENU_PATH = "/menu"  # where an agent sends their caller back to the phone menu
ROOM_EVENT_PATH = "/room/event"  # a platform's news of a member entering a room (Plivo's member ids)
MOVE_TIMEOUT_S = 4.0  # the REST move of a caller happens inside the agent's webhook: quick, or the hold round
MAX_APP_QUEUE = 100  # callers a queue the helpline keeps itself holds (Twilio's queues hold 100 by default)
MAX_EFFECTS_PER_TURN = 10  # a flow that keeps asking for effects without waiting is broken
# Where a remembered menu document takes its call's token (URL-safe, XML-safe).
TOKEN_MARK = "~turn-token~"  # noqa: S105 (a mark, not a secret)
# How a dial ended, in the platform's words (Twilio's DialCallStatus, Plivo's DialStatus read as the
# helpline's), as the flow's dial outcomes; any other word is a call that was not connected.
DIAL_OUTCOMES = {
    "completed": "completed",
    "answered": "completed",
    "no-answer": "no_answer",
    "canceled": "no_answer",
    "cancel": "no_answer",
    "busy": "busy",
}


FLOWS = ("helpline", "worker", "feedback")


@dataclass(frozen=True, eq=False)
class Ivr:
    """What the voice views need besides the runtime: the loaded flows, the voices, and the platform
    that reads the webhooks and renders the answers."""

    flows: dict[str, Flow]
    voices: dict[str, Voice]
    recordings_dir: Path
    platform: CallPlatform
    root: str = "/twilio/voice"  # where the platform's voice webhooks are: /<platform>/voice
    token_key: bytes | None = None  # signs the sessions menu turns carry (None: no secret key, Redis only)
    menu_turns: MenuTurns = field(default_factory=MenuTurns)  # the process's, answered from memory

    def recording(self, prompt: str, language: str) -> str | None:
        if (self.recordings_dir / language / f"{prompt}.mp3").is_file():
            return f"{self.root}/recordings/{language}/{prompt}.mp3"
        return None

    def render(self, said: list[Instruction]) -> str:
        """The platform's document of `said`; on a platform without queue verbs, the helpline's own queue."""
        return self.platform.document(said if self.platform.queues else queued_by_app(said, self.root))

    def document(self, events: list[Event], turn: int, token: str = "") -> str:
        """The platform's document of what the flow says, its step URL carrying `token`. A menu is
        the same document for every caller at that turn but for the token, so each is rendered once
        for the recordings on disk, remembered, and given the call's token in place of a mark."""
        try:
            rendered = _rendered(self, tuple(events), turn, bool(token), self.recordings_seen())
        except TypeError:  # an event that cannot be a key (an effect): instructions() says what is wrong
            said = instructions(events, self.voices, turn=turn, root=self.root, recordings=self.recording)
            return self.render(said)
        return rendered.replace(TOKEN_MARK, token) if token else rendered

    def recordings_seen(self) -> tuple[int, ...]:
        """When the recordings every answer depends on last changed, as last looked at (`RecordingsSeen`)."""
        return self._recordings.changed()

    def look_for_recordings(self) -> None:
        """Look at the recordings' directories now (a call's first request does): a recording added is
        played from the next call on, and within a second (`RecordingsSeen`) on every call."""
        self._recordings.look()

    @functools.cached_property
    def _recordings(self) -> RecordingsSeen:
        """The directories every answer depends on, the root and each language's, as strings (`os.stat`
        of each, without building paths)."""
        return RecordingsSeen(tuple(str(self.recordings_dir / language) for language in ("", *self.voices)))


# The menus every caller hears are asked for all the time, so they stay in a smaller cache; many other
# documents are one call's own (a read-back) and are seldom asked again. In `sewamitra bench turns` (1,500
# calls), 256 documents missed 1.5% more of the 12,115 turns than 1,024 (2,842 against 2,663), and held
# 0.5 MB, not 2 MB, of a web worker.
@functools.lru_cache(maxsize=256)
def _rendered(
    ivr: Ivr, events: tuple[Event, ...], turn: int, carried: bool, _recordings_changed: tuple[int, ...]
) -> str:
    mark = TOKEN_MARK if carried else ""
    said = instructions(events, ivr.voices, turn=turn, root=ivr.root, recordings=ivr.recording, carried=mark)
    return ivr.render(said)


class RecordingsSeen:
    """When a recording last came or went in `directories` (adding or removing a file changes its
    directory's time), as last looked at: looked at again at most once a second but when asked to
    `look`. Each look is a `stat` of each directory. Every document rendered looked, three `stat`s a
    request, two of them failing where a language has no recordings (as in config.yaml's default):
    12–15 µs of a menu turn's 220–365 in one process (docs/reliability.md)."""

    EVERY_S = 1.0

    def __init__(self, directories: tuple[str, ...], now: Callable[[], float] = time.monotonic) -> None:
        self._directories = directories
        self._now = now
        self._seen: tuple[tuple[int, ...], float] | None = None  # the times, and when they were looked at

    def changed(self) -> tuple[int, ...]:
        seen = self._seen  # read once: another thread may look meanwhile
        if seen is None or self._now() - seen[1] >= self.EVERY_S:
            return self.look()
        return seen[0]

    def look(self) -> tuple[int, ...]:
        times = tuple(_modified(directory) for directory in self._directories)
        self._seen = (times, self._now())
        return times


def _modified(directory: str) -> int:
    try:
        return os.stat(directory).st_mtime_ns
    except OSError:
        return -1


def init_app(app: Flask, settings: Settings) -> None:
    """Load and check the flows once, at start: a broken flow never reaches a call. The platform
    (app.extensions["call_platform"]) reads the webhooks and renders the answers."""
    app.extensions["ivr"] = Ivr(
        {name: load_flow(settings, name) for name in FLOWS},
        voices(settings),
        settings.recordings_dir,
        app.extensions["call_platform"],
        voice_root(settings),
        turntoken.key_of(settings.secret_key) if settings.secret_key else None,
    )
    # The service area's PIN codes are placed here, at start (under a tenth of a second, from core/data), not at
    # the first caller's PIN (whose wait would also hold up every call that process serves).
    pincodes.pincodes(settings.service_area.state)


def voice_root(settings: Settings) -> str:
    """Where the configured platform's voice webhooks are served."""
    return f"/{settings.telephony.platform}/voice"


def load_flow(settings: Settings, name: str) -> Flow:
    languages = [lang.code for lang in settings.languages]
    return definition.load(name, languages=languages, effects=known_effects(), services=service_choices(settings))


def service_choices(settings: Settings) -> list[ServiceChoice]:
    """The catalogue as the flows see it."""
    return [
        ServiceChoice(s.code, s.digit, {"hi": s.name_hi, "en": s.name_en}, s.visit_charge) for s in settings.services
    ]


def voices(settings: Settings) -> dict[str, Voice]:
    return {lang.code: Voice(lang.tts_language, lang.voice) for lang in settings.languages}


def _runtime() -> Runtime:
    runtime: Runtime = this_app().extensions["sewamitra"]
    return runtime


def _ivr() -> Ivr:
    ivr: Ivr = this_app().extensions["ivr"]
    return ivr


def _turn() -> CallTurn:
    """This webhook, read by the platform once per request."""
    here = this_g()
    turn: CallTurn | None = here.get("call_turn")
    if turn is None:
        turn = here.call_turn = _ivr().platform.call_turn(this_request().form)
    return turn


def _answered(*said: Instruction) -> Response:
    return _sent(_ivr().render(list(said)))


def _path(path: str) -> str:
    """A path under the platform's voice webhooks."""
    return _ivr().root + path


def _sent(document: str) -> Response:
    return Response(document, mimetype=_ivr().platform.mimetype)


# -- the call ---------------------------------------------------------------------------------------


@bp.post("")
@webhook_signed
@checks_replays_itself
def incoming() -> Response:
    """A call comes in: greet, in the caller's remembered language if we know it. The platform's
    replay check is made with the call's first write (`_kept_or_answered`)."""
    state = _state()
    _ivr().look_for_recordings()
    name, trigger = _flow_for(_party())
    flow = _ivr().flows[name]
    session, events = start(flow, trigger)
    session, events, _performed = _read(state, flow, session, events, 0)
    return _kept_or_answered(state, session, events, key="start", turn=0, first_delivery=replay_mark())


def _flow_for(party: str | None) -> tuple[str, Trigger]:
    """Which call this is: our feedback call to a citizen, a worker (ringing in, or rung with an
    offer), or a citizen ringing the helpline."""
    engine = _runtime().engine
    if _turn().outbound and request.args.get("flow") == "feedback":
        about = parse_id(request.args.get("request"))
        return "feedback", Trigger(known_language(engine, party), {"request_id": str(about or "")})
    worker, language = who_rings(engine, party)
    if worker is not None:
        return "worker", Trigger(worker.language, {"worker_id": str(worker.id), "worker_name": worker.name})
    return "helpline", Trigger(language, {"known_language": language or ""})


@bp.post("/step")
@webhook_signed
@checks_replays_itself
def step() -> Response:
    """The caller keyed something (or nothing) at a wait: with the session the step's URL carries,
    else the one in Redis. The platform's replay check (Plivo's nonce) is done before anything is
    committed, and skipped only for a menu turn that commits nothing and reads no one's records."""
    turn = request.args.get("turn", default=-1, type=int)
    carried = request.args.get(TOKEN_ARG)
    if carried is not None:
        return _carried_step(turn, carried)
    refused = replay_refusal()
    if refused is not None:
        return refused
    state = _state()
    with state.turn(str(turn)) as (answered, session):
        if answered is not None:
            return _sent(answered)  # a retry of this very step
        if session is None or session.turn != turn:
            return _lost(state, session)
        digits = _turn().digits[:32]
        session, events = resume(_ivr().flows[session.flow], session, Keys(digits))
        return _answer(state, session, events, key=str(turn), turn=turn)


@bp.post("/record")
@webhook_signed
@checks_replays_itself
def recorded() -> Response:
    """A Record's action, with the recording the platform kept; or the Redirect after the Record
    (`empty=1`) when the platform made none (Twilio, when nothing was said). The flow goes on either
    way. The platform's replay check is made as the call's turn is taken."""
    state = _state()
    turn = request.args.get("turn", default=-1, type=int)
    with state.turn(f"record:{turn}", first_delivery=replay_mark()) as (answered, session):
        if answered is not None:
            return _sent(answered)  # a retry of this very action
        if session is None or session.turn != turn or session.status is not Status.WAITING_RECORDING:
            return _lost(state, session)
        made = None if request.args.get("empty") == "1" else _ivr().platform.recording(request.form)
        outcome = keep_recording(_context(state, session, turn), made)
        session, events = resume(_ivr().flows[session.flow], session, outcome)
        return _answer(state, session, events, key=f"record:{turn}", turn=turn)


def _carried_step(turn: int, carried: str) -> Response:
    """A menu turn from the session its URL carries. One that commits nothing (its effects only
    read, no dial, the language and the call log's outcome as they were, still waiting for keys)
    touches no shared state: the same request again is answered the same. When it read no one's
    records either, its answer holds nothing the request does not carry, and a replay of it is
    answered as the request was, without the platform's replay check; when its effects read only what
    the process loaded at start, every call carrying the same session and keys gets that answer, so it
    is remembered (`ivr.menuturns`). Any other turn is checked for a replay, then takes the call's turn
    in Redis as a step without a token does, so what it commits, it commits once. A token that is not
    this call's, or not this turn's, is refused with the spoken apology."""
    state = _state()
    ivr = _ivr()
    key = ivr.token_key
    body = turntoken.verified(key, state.call_sid, carried) if key else None
    if key is None or body is None:
        return _token_refused(state, turn)
    digits, seen = _turn().digits[:32], ivr.recordings_seen()
    asked = (body, digits, seen)
    remembered = ivr.menu_turns.get(asked)
    if remembered is not None and remembered.turn == turn:
        return _sent(remembered.document.replace(TOKEN_MARK, turntoken.signed(key, state.call_sid, remembered.body)))
    session = turntoken.session_of(body)
    if session is None or session.turn != turn or session.status is not Status.WAITING_KEYS:
        return _token_refused(state, turn)
    flow = ivr.flows[session.flow]
    resumed, events = resume(flow, session, Keys(digits))
    resumed, events, performed = _read(state, flow, resumed, events, turn)
    if not _commits_nothing(session, resumed, events):
        return _kept_or_answered(state, resumed, events, key=str(turn), turn=turn, first_delivery=replay_mark())
    if any(effect.reads_records for effect in performed) and (refused := replay_refusal()) is not None:
        return refused
    document = _rendered(ivr, tuple(events), resumed.turn, True, seen)  # a menu: says and gathers only
    next_body = turntoken.body_of(resumed)
    if all(effect.static for effect in performed):  # none read anyone's records, the time or the agents
        ivr.menu_turns.keep(asked, Remembered(turn, document, next_body))
    return _sent(document.replace(TOKEN_MARK, turntoken.signed(key, state.call_sid, next_body)))


def _token_refused(state: CallState, turn: int) -> Response:
    """A step whose token is not this call's, or not this turn's: the spoken apology."""
    log.warning("call %s: a step's token refused (turn %s)", state.call_sid, turn)
    return replay_refusal() or _apology()


def _kept_or_answered(
    state: CallState,
    session: Session,
    events: list[Event],
    *,
    key: str,
    turn: int,
    first_delivery: tuple[str, int] | None,
) -> Response:
    """The rest of a turn whose read-only effects are done. When nothing is left but to store the
    session and the answer, they are stored in one round trip (`CallState.keep`): a retry gets the
    answer stored first. Otherwise, or while another request of the call holds its lock, the call's
    turn is taken, so what it commits, it commits once. The platform's replay check (`first_delivery`,
    from `replay_mark`) is made in the same round trip as the first of these: a replay is refused."""
    if session.status not in (Status.WAITING_EFFECT, Status.WAITING_DIAL) and not _language_to_remember(session):
        document = _ivr().document(events, session.turn, _token(state.call_sid, session))
        kept = state.keep(session, key, document, first_delivery)
        if kept is not None:
            return _sent(kept)
        first_delivery = None  # marked as the turn was kept
    with state.turn(key, first_delivery=first_delivery) as (answered, _stored):
        if answered is not None:
            return _sent(answered)  # a retry of this very step
        return _answer(state, session, events, key=key, turn=turn)


def _read(
    state: CallState, flow: Flow, session: Session, events: list[Event], turn: int
) -> tuple[Session, list[Event], list[Performed]]:
    """The effects that only read (a PIN code, the open slots, a request's status), performed while
    the flow asks for them one after another; it stops at the first that writes, or at a dial. With
    the effects performed, in turn."""
    performed: list[Performed] = []
    for _ in range(MAX_EFFECTS_PER_TURN):
        asked = events[-1] if events and session.status is Status.WAITING_EFFECT else None
        if not (isinstance(asked, Effect) and EFFECTS[asked.name].reads_only):
            break
        effect = EFFECTS[asked.name]
        events.pop()
        performed.append(effect)
        session, more = resume(flow, session, effect.perform(_context(state, session, turn), asked.args))
        events += more
    return session, events, performed


def _commits_nothing(before: Session, after: Session, events: list[Event]) -> bool:
    """Whether a turn only says things and waits for keys again: nothing to write, and nothing the
    others that read the call's session in Redis need (the call's log: its outcome and language;
    the agents' queue; the record and dial actions, which only follow a turn that commits)."""
    return (
        after.status is Status.WAITING_KEYS
        and after.language == before.language
        and not _language_to_remember(after)
        and calllog.outcome(after, "in-progress") == calllog.outcome(before, "in-progress")
        and all(isinstance(event, (Say, GatherEvent)) for event in events)
    )


def _language_to_remember(session: Session) -> bool:
    """Whether the caller chose a language the helpline is to remember, other than the one it knows."""
    return bool(session.vars.get("remember_language")) and session.language != session.vars.get("known_language")


def _token(call_sid: str, session: Session) -> str:
    """The token the next step's URL carries: the session, while it waits for keys ("" without a key)."""
    key = _ivr().token_key
    return turntoken.sign(key, call_sid, session) if key and session.status is Status.WAITING_KEYS else ""


def _answer(state: CallState, session: Session, events: list[Event], *, key: str, turn: int) -> Response:
    """Perform the effects the flow asks for, then store and send the document of what it says (and,
    when it puts the caller through to someone, the dial)."""
    with enqueue.held(_runtime().redis) as pushes:  # the ids its effects push go with its save
        return _performed(state, session, events, key=key, turn=turn, pushes=pushes)


def _performed(
    state: CallState, session: Session, events: list[Event], *, key: str, turn: int, pushes: enqueue.Holding
) -> Response:
    """`_answer`'s work, the ids its effects push held in `pushes` for the save's round trip."""
    ctx = _context(state, session, turn)
    performed, dial = 0, None
    while session.status in (Status.WAITING_EFFECT, Status.WAITING_DIAL):
        performed += 1
        if performed > MAX_EFFECTS_PER_TURN:
            raise RuntimeError(f"flow {session.flow} asked for more than {MAX_EFFECTS_PER_TURN} effects in one turn")
        asked = events.pop()
        if isinstance(asked, DialEvent):
            dial = _dial(ctx, asked, session.turn)
            if dial is not None:
                break
            outcome = Outcome("refused")
        else:
            assert isinstance(asked, Effect)
            outcome = EFFECTS[asked.name].perform(ctx, asked.args)
        session, more = resume(_ivr().flows[session.flow], session, outcome)
        events += more
        ctx = _context(state, session, turn)
    if _language_to_remember(session):
        remember_language(ctx)
        session = _with_known_language(session)
    if dial is None:
        stored = _ivr().document(events, session.turn, _token(state.call_sid, session))
        answer = _sent(stored)
    else:
        # The number goes to the platform, never into the call's state: a retry of this request is
        # answered by a redirect that looks the number up again.
        said = instructions(events, _ivr().voices, turn=session.turn, root=_ivr().root, recordings=_ivr().recording)
        stored = _ivr().render([*said, Redirect(_path(f"{DIAL_AGAIN_PATH}?turn={session.turn}"))])
        answer = _answered(*said, dial)
    pushes.answered(state.save(session, key, stored, also=pushes.take()))
    return answer


def _dial(ctx: CallContext, asked: DialEvent, turn: int) -> DialNumber | None:
    """The caller put through to the other party of a request, with the helpline's number as caller
    ID (the one the platform calls from; else the one this call is on); None when the domain refuses it now."""
    dialled = to_dial(ctx, asked)
    if not isinstance(dialled, bridge.Dialled):
        log.info("call %s: dial to the %s refused: %s", ctx.call_sid, asked.party, dialled.value)
        return None
    on_this_call = _turn().caller if _turn().outbound else _turn().callee
    caller_id = our_number(ctx.settings) or on_this_call
    return DialNumber(dialled.number, caller_id, _path(f"{DIALLED_PATH}?turn={turn}"), dialled.time_limit_s)


@bp.post(DIAL_AGAIN_PATH)
@webhook_signed
def dial_again() -> Response:
    """A retried request whose answer was a dial: the dial again, its number looked up again."""
    state = _state()
    turn = request.args.get("turn", default=-1, type=int)
    with state.turn(f"dial:{turn}") as (answered, session):
        if answered is not None:
            return _sent(answered)  # refused before: the same answer
        if session is None or session.turn != turn or session.status is not Status.WAITING_DIAL:
            return _lost(state, session)
        flow = _ivr().flows[session.flow]
        asked = pending_dial(flow, session)
        assert asked is not None
        dial = _dial(_context(state, session, turn), asked, turn)
        if dial is None:  # closed meanwhile: the flow says so
            session, events = resume(flow, session, Outcome("refused"))
            return _answer(state, session, events, key=f"dial:{turn}", turn=turn)
        return _answered(dial)


@bp.post(DIALLED_PATH)
@webhook_signed
def dialled() -> Response:
    """A bridged call is over (or never connected): it goes on the request's timeline with how it
    ended and how long it lasted, and the caller's flow goes on."""
    state = _state()
    turn = request.args.get("turn", default=-1, type=int)
    key = f"dialled:{turn}"
    with state.turn(key) as (answered, session):
        if answered is not None:
            return _sent(answered)  # a retry of this very request
        if session is None or session.turn != turn or session.status is not Status.WAITING_DIAL:
            return _lost(state, session)
        flow = _ivr().flows[session.flow]
        dial = pending_dial(flow, session)
        assert dial is not None
        outcome = DIAL_OUTCOMES.get(_turn().dial_status, "failed")
        seconds = (calllog.seconds(_turn().dial_duration) or 0) if outcome == "completed" else 0
        actor = f"worker:{session.vars['worker_id']}" if session.vars.get("worker_id") else "citizen"
        record_bridged_call(_context(state, session, turn), dial, outcome, seconds, actor)
        session, events = resume(flow, session, Outcome(outcome, {"bridged_seconds": str(seconds)}))
        return _answer(state, session, events, key=key, turn=turn)


def _with_known_language(session: Session) -> Session:
    return replace(session, vars={**session.vars, "known_language": session.language})


def _lost(state: CallState, session: Session | None) -> Response:
    """A step out of turn repeats what the caller is at now; with no state left, start over."""
    log.warning("call %s: step out of turn, or its state is gone", state.call_sid)
    if session is not None:
        current = state.answer(str(session.turn - 1) if session.turn else "start")
        if current is not None:
            return _sent(current)
    return _answered(Redirect(_path("")))


def _state() -> CallState:
    call_sid = _turn().call_id
    if not callqueue.CALL_SID.match(call_sid):
        raise BadCall(f"not a CallSid: {call_sid[:40]!r}")
    return CallState(_runtime().redis, call_sid)


def _party() -> str | None:
    """The phone at the other end: the caller when they ring us, the callee when we ring them."""
    raw = _turn().party
    return None if phones.is_withheld(raw) else phones.to_e164(raw[:40])


def _context(state: CallState, session: Session, turn: int) -> CallContext:
    runtime = _runtime()
    return CallContext(
        runtime.settings, runtime.engine, runtime.redis, state.call_sid, _party(), turn, session.language, runtime.clock
    )


class BadCall(Exception):
    """A request that cannot be part of any call (no valid CallSid)."""


# -- the agent queue --------------------------------------------------------------------------------


@bp.post("/queue/wait")
@webhook_signed
def queue_wait() -> Response:
    """The queue's wait URL: tell the caller where they are, and how to leave for a callback."""
    language = _language()
    if not _ivr().platform.queues:
        return _wait_in_our_queue(language)
    if _agent_waiting() is not None:  # the REST move failed: out of Twilio's queue, into the room (queue_result)
        return _answered(Leave())
    position = _turn().queue_position or "1"
    position = position if position.isascii() and position.isdigit() and len(position) < 5 else "1"
    _note_waiting(language, int(position))
    # When the pause runs out, the platform fetches the wait URL again.
    return _answered(*_hold_round(language, position))


def _hold_round(language: str, position: str) -> list[Instruction]:
    options = (
        _said("queue_position", language, position=prompts.digits(position, language)),
        _said("queue_leave_option", language),
    )
    return [
        Gather(options, _path(QUEUE_KEY_PATH), timeout=8, finish_on_key="", num_digits=1),
        _said("queue_hold", language),
        Pause(15),
    ]


def _wait_in_our_queue(language: str) -> Response:
    """The queue the helpline keeps itself (a platform without queue verbs): the caller's place is
    counted in Redis, and the round of hold ends by coming back here. Beyond MAX_APP_QUEUE callers,
    or with Redis out of reach, the queue is unavailable and a callback is offered."""
    if _agent_in_the_room():  # an agent waits in this caller's room (the REST move failed): join them
        return _into_the_room(language)
    position = _note_waiting(language, None)
    if position is None or position > MAX_APP_QUEUE:
        return _answered(Redirect(_path(f"{QUEUE_RESULT_PATH}?result=queue-full")))
    return _answered(*_hold_round(language, str(position)), Redirect(_path(QUEUE_WAIT_PATH)))


@bp.post("/queue/key")
@webhook_signed
def queue_key() -> Response:
    if _turn().digits == "1":
        return _answered(Leave())
    return _answered(Redirect(_path(QUEUE_WAIT_PATH)))


@bp.post("/queue/result")
@webhook_signed
def queue_result() -> Response:
    """The caller left the queue: talked to an agent, hung up, asked for a callback, or it was full;
    moved by REST into an agent's room ("redirected": `queue_connect` took them, this document is
    not run), or out of it at the hold round after that move failed ("leave" with an agent waiting)."""
    result = storable(_turn().queue_result or _our_queue_result(), 20)
    if result == "redirected":
        return _answered(Hangup())
    if result == "leave" and _agent_in_the_room():
        return _into_the_room(_language())
    _left_queue(result)
    said: list[Instruction] = []
    if result not in ("bridged", "hangup"):
        call_sid = _state().call_sid
        session = _session()
        language = session.language if session else _language()
        ctx = CallContext(
            _runtime().settings,
            _runtime().engine,
            _runtime().redis,
            call_sid,
            _party(),
            session.turn if session else 0,
            language,
            _runtime().clock,
        )
        reason = "left_queue" if result == "leave" else "queue_unavailable"
        said.append(_said("callback_recorded" if record_callback(ctx, reason) else "callback_impossible", language))
        said.append(_said("goodbye", language))
    return _answered(*said, Hangup())


@bp.post(QUEUE_CONNECT_PATH)
@webhook_signed
def queue_connect() -> Response:
    """The caller, moved here by REST from their hold music when an agent took them: into the
    agent's room at once. The agent gone meanwhile: back in the queue, their place kept."""
    if _agent_in_the_room():
        return _into_the_room(_language())
    return _answered(Enqueue(HELPLINE_QUEUE, wait_url=_path(QUEUE_WAIT_PATH), action=_path(QUEUE_RESULT_PATH)))


@bp.post(MENU_PATH)
@webhook_signed
def back_to_the_menu() -> Response:
    """The caller, sent back to the phone menu by their agent (moved here by REST): the helpline's
    flow from its start, in their language, its turns numbered on from the call's."""
    state = _state()
    sent = request.args.get("sent", "")[:20]
    with state.turn(f"menu:{sent}") as (answered, before):
        if answered is not None:
            return _sent(answered)  # the platform retried this request
        language = before.language if before else _language()
        session, events = start(_ivr().flows["helpline"], Trigger(language, {}))
        session = replace(session, turn=(before.turn if before else 0) + 1)
        return _answer(state, session, events, key=f"menu:{sent}", turn=session.turn)


def _into_the_room(language: str) -> Response:
    """The caller into their agent's room, told first that the call is recorded (when it is)."""
    connecting = (_said("agent_connecting", language), *recording_notice(language))
    return _answered(*connecting, _room(_turn().call_id), Hangup())


def _room(call_sid: str) -> Conference:
    """The caller's room; its callback learns the platform's ids of its members (Plivo's)."""
    return Conference(room_of(call_sid), callback=_path(ROOM_EVENT_PATH))


def agent_room(call_sid: str, user: int) -> Conference:
    """The agent's leg into the caller's room, which the agent opens: recorded when
    `agents.record_calls`, each recording posted with the agent and the caller (Twilio's
    recordingStatusCallback to `/agent/recorded`; Plivo posts it to the room's callback, as a
    ConferenceAction "record" event)."""
    if not _runtime().settings.agents.record_calls:
        return _room(call_sid)
    try:
        call_recording.room_opened(_runtime().redis, call_sid)
    except redis.RedisError:
        log.warning("could not note that the room of %s is recorded afresh", call_sid)
    reported = call_recording.report_query(call_sid, user)
    return Conference(
        room_of(call_sid),
        callback=_path(f"{ROOM_EVENT_PATH}?{reported}"),
        record=True,
        recording_callback=_path(f"{call_recording.CALLBACK_PATH}?{reported}"),
    )


def recording_notice(language: str) -> list[Instruction]:
    """What the caller hears before an agent's recorded call: that it is recorded, in their language."""
    return [_said("agent_call_recorded", language)] if _runtime().settings.agents.record_calls else []


def _agent_waiting() -> int | None:
    """The agent waiting in this caller's room, if any (None with Redis away)."""
    try:
        return callqueue.agent_waiting(_runtime().redis, _turn().call_id)
    except redis.RedisError:
        return None


def _agent_in_the_room() -> bool:
    """Whether an agent took this caller and waits for them: if so, they are out of the queue now."""
    user = _agent_waiting()
    if user is None:
        return False
    _left_queue("bridged")
    _bridged(user, _turn().call_id)
    return True


def _bridged(user: int, call_sid: str) -> None:
    """The platform puts this caller through to this agent: off the queue, and the agent on a call."""
    try:
        callqueue.bridged(_runtime().redis, user, call_sid)
        desk.bridged(_runtime().redis, _runtime().engine, user, call_sid, _language(), _runtime().clock.now())
    except redis.RedisError:
        log.warning("could not note that call %s was bridged to user %s", call_sid, user)


def _our_queue_result() -> str:
    """How the caller left the queue the helpline keeps itself: said by the redirect that took them here."""
    if _ivr().platform.queues:
        return ""
    result = request.args.get("result", "")
    return result if result in ("leave", "queue-full") else ""


def _note_waiting(language: str, position: int | None) -> int | None:
    """Show the caller in the console's live queue, with what they keyed for the agent's form; a
    Redis failure must not cost the caller their place in the platform's queue. `position` None:
    the helpline keeps the queue, and counts the caller's place itself (None when it cannot)."""
    try:
        state = _state()
        session = state.load()
        keyed = session.vars if session else {}
        call = callqueue.Call(
            state.call_sid,
            _party(),
            language,
            str(keyed.get("service") or "")[:32],
            str(keyed.get("pincode") or "")[:6],
            _priority(state.call_sid),
        )
        now = _runtime().clock.now().timestamp()
        if position is None:
            position = callqueue.note_waiting_here(_runtime().redis, call, now)
        else:
            callqueue.note_waiting(_runtime().redis, call, position, calllog.seconds(_turn().queue_time) or 0, now)
    except (redis.RedisError, BadCall):
        log.warning("could not note a waiting caller for the console", exc_info=True)
        return None
    _offer_to_agents()
    return position


def _priority(call_sid: str) -> str:
    """Why this caller is served first (callcentre.priority), read once: when they join the queue."""
    known = callqueue.call(_runtime().redis, call_sid)
    if (
        known is not None
        and callqueue.wait_of(_runtime().redis, call_sid, _runtime().clock.now().timestamp()) is not None
    ):
        return known.priority
    try:
        found = priority.reasons(_runtime().engine, _party(), call_sid, _runtime().clock.now())
    except sa.exc.SQLAlchemyError:  # served in turn, then: the caller keeps their place
        log.warning("could not read why call %s might come first", call_sid)
        return ""
    return ",".join(found)


def _offer_to_agents() -> None:
    """A caller joined or is still waiting: offer them (or whoever comes first) to a ready agent."""
    try:
        desk.route(_runtime().redis, _runtime().engine, _runtime().settings.agents, _runtime().clock.now())
    except redis.RedisError:
        log.warning("could not offer waiting callers to agents", exc_info=True)


def _left_queue(result: str) -> None:
    """The caller is out of the queue: off the console's list, and their wait kept for the reports."""
    call_sid = _turn().call_id
    if not callqueue.CALL_SID.match(call_sid):
        return
    waited = calllog.seconds(_turn().queue_time)
    try:
        if waited is None:  # the helpline's own queue, or a move out of the platform's: it counted the wait
            waited = callqueue.wait_of(_runtime().redis, call_sid, _runtime().clock.now().timestamp()) or 0
        callqueue.left(_runtime().redis, call_sid)
    except redis.RedisError:
        log.warning("could not take call %s off the console's queue", call_sid)
    waited = waited or 0
    try:  # the caller may still be on the line (left for a callback): their document comes first
        calllog.record_queue_result(_runtime().engine, _turn(), result, waited)
    except sa.exc.SQLAlchemyError:
        log.exception("could not record how call %s left the queue", call_sid)
    if result == "hangup":
        _missed_caller(call_sid, waited)


def _missed_caller(call_sid: str, waited: int) -> None:
    """A caller who hung up in the queue after waiting long enough is rung back: a callback task and
    an SMS saying so (dispatch.callbacks). Twilio tells it in the Enqueue's action (QueueResult
    hangup, QueueTime); on Plivo it is the status callback of a call still in the helpline's queue."""
    call, runtime = (call_sid, _party() if _turn().inbound else None, _language()), _runtime()
    try:
        callbacks.missed_caller(runtime.engine, runtime.redis, runtime.settings, call, waited, runtime.clock.now())
    except sa.exc.SQLAlchemyError:
        log.exception("could not promise a callback to call %s, which hung up in the queue", call_sid)


# -- an agent's desk phone, rung from the console -----------------------------------------------------


@bp.post("/agent")
@webhook_signed
def agent_leg() -> Response:
    """The agent's desk phone was picked up: a key press proves it is the agent, not voicemail."""
    user = _user_arg()
    ask = Gather(
        (_said("agent_next_caller", "en"),),
        _path(f"/agent/answer?user={user}"),
        timeout=8,
        finish_on_key="",
        num_digits=1,
    )
    return _answered(ask, _said("agent_not_taken", "en"), Hangup())


@bp.post("/agent/answer")
@webhook_signed
def agent_answer() -> Response:
    """The agent pressed 1: into the room of the caller the helpline routed to them."""
    if _turn().digits != "1":
        return _answered(_said("agent_not_taken", "en"), Hangup())
    return _agent_takes_the_caller(_user_arg())


def _agent_takes_the_caller(user: int) -> Response:
    """The agent's desk phone goes into the room of the caller claimed for them on the console (or,
    that claim gone, of the longest-waiting caller), as a browser's leg does (`agent_leg_into_the_room`)."""
    connection, now = _runtime().redis, _runtime().clock.now().timestamp()
    call_sid = callqueue.claimed_by(connection, user, now)
    if call_sid is None:
        taken = callqueue.claim_next(connection, user, now)
        call_sid = taken.call_sid if taken else None
    if call_sid is None:
        return _answered(_said("agent_queue_empty", "en"), Hangup())
    return agent_leg_into_the_room(user, call_sid, _turn().call_id)


def agent_leg_into_the_room(user: int, call_sid: str, leg: str) -> Response:
    """An agent's leg (`leg`, the platform's id of this webhook's call: their desk phone, or their
    browser in `ivr.softphone`) goes into the room of the caller `call_sid`: the agent noted waiting
    there and the room noted with their leg (for hold, mute and transfer), and the caller moved in at
    once by REST; should that fail, the caller's next round of hold music brings them (`queue_wait`)."""
    connection = _runtime().redis
    callqueue.wait_for_agent(connection, user, call_sid)
    rooms.opened(connection, room_of(call_sid), call_sid, user, leg)
    _move_into_the_room(call_sid)
    return _answered(agent_room(call_sid, user), Hangup())


def _move_into_the_room(call_sid: str) -> None:
    settings = _runtime().settings
    try:
        call_control(settings, timeout=MOVE_TIMEOUT_S).redirect_call(
            call_sid, settings.public_url + _path(QUEUE_CONNECT_PATH)
        )
    except GatewayError as error:
        log.warning("could not move caller %s to their agent now (%s): at their next round of hold", call_sid, error)


@bp.post(ROOM_EVENT_PATH)
@webhook_signed
def room_event() -> Response:
    """A member entered a room (Plivo's callbackUrl): its ConferenceMemberID kept, for hold and mute.
    A recorded room's recording is posted here too (ConferenceAction "record"): kept (`agent_recorded`)."""
    form = request.form
    if form.get("ConferenceAction") == "record":
        return _recording_reported()
    room, member, call_id = form.get("ConferenceName", ""), form.get("ConferenceMemberID", ""), _turn().call_id
    known = callqueue.CALL_SID.match(room) and callqueue.CALL_SID.match(call_id)
    if form.get("ConferenceAction") == "enter" and known and member.isascii() and member.isdigit() and len(member) < 12:
        try:
            rooms.note_member(_runtime().redis, room, call_id, member)
        except redis.RedisError:
            log.warning("could not keep the member id of %s in its room", call_id)
    return Response(status=204)


def _user_arg(name: str = "user") -> int:
    raw = request.args.get(name, "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else 0


@bp.post("/agent/bridging")
@webhook_signed
def agent_bridging() -> Response:
    """Played to the caller just before the bridge; records which caller this agent now has."""
    user = _user_arg()
    call_sid = _turn().call_id
    language: str = _runtime().settings.languages[0].code
    if callqueue.CALL_SID.match(call_sid):
        _bridged(user, call_sid)
        language = _language()
    return _answered(_said("agent_connecting", language))


@bp.post(call_recording.CALLBACK_PATH)
@webhook_signed
def agent_recorded() -> Response:
    """A recording of an agent's call with a caller, once the platform has it (Twilio's
    recordingStatusCallback, "completed"; Plivo's record API's callback_url, and its Conference
    callbackUrl's ConferenceAction "record", by way of `room_event`): kept once, whatever the platform's retries."""
    return _recording_reported()


def _recording_reported() -> Response:
    call_sid, agent = request.args.get("call", ""), _user_arg("agent")
    form = request.form
    ready = form.get("RecordingStatus", "completed") == "completed"
    ready = ready and form.get("ConferenceAction", "record") == "record"  # Plivo's other room events: not ours
    if not (ready and agent and callqueue.CALL_SID.match(call_sid)):
        return Response(status=204)
    made = _ivr().platform.recording(form)
    platform = _runtime().settings.telephony.platform
    try:
        with session_scope(_runtime().engine) as db:
            kept = call_recording.kept(db, call_sid, agent, platform, made)
    except sa.exc.IntegrityError:
        kept = None  # the same recording, reported twice at once: the first report keeps it
    if kept is None:
        log.info("call %s: a recording report of agent %s kept nothing", call_sid, agent)
    return Response(status=204)


@bp.post("/agent/done")
@webhook_signed
def agent_done() -> Response:
    """The agent's call is over (or nobody was waiting any more)."""
    if _turn().dial_status not in ("completed", "answered"):
        return _answered(_said("agent_queue_empty", "en"), Hangup())
    return _answered(Hangup())


def _session() -> Session | None:
    """The call's flow session; None when there is none, or when Redis cannot be reached now."""
    try:
        return _state().load()
    except BadCall:
        return None
    except redis.RedisError:
        log.warning("call state of %s unreachable; going on without it", _turn().call_id[:40])
        return None


def _language() -> str:
    """The caller's language: from the call state, else the one the database knows for their number
    (a worker's, or the one a citizen chose last), so that losing Redis does not switch a caller to
    another language; else the first."""
    session = _session()
    if session is not None:
        return session.language
    try:
        known = None if g.get("database_failed") else _known_language(_party())
    except sa.exc.SQLAlchemyError:
        known = None
    return known or _runtime().settings.languages[0].code


def _known_language(party: str | None) -> str | None:
    worker, language = who_rings(_runtime().engine, party)
    return worker.language if worker is not None else language


def _said(prompt: str, language: str, **params: str) -> Spoken | Play:
    text = prompts.text(prompt, language).format(**params)
    return spoken(Say(text, language, None if params else prompt), _ivr().voices, _ivr().recording)


# -- the end of the call, and failures -------------------------------------------------------------


@bp.post("/status")
@webhook_signed
@checks_replays_itself
def status() -> Response:
    """The platform's status callback: keep a CallLog with duration, path and outcome. The platform's
    replay check is made before anything else, a final callback's as its room closes."""
    turn = _turn()
    if not callqueue.CALL_SID.match(turn.call_id):
        return Response(status=204)
    final = turn.status in calllog.FINAL
    refused = None if final else replay_refusal()
    if refused is not None:
        return refused
    in_our_queue = _logged(replay_mark()) if final else _logged(None, closing=False)
    if turn.status in calllog.UNANSWERED:
        _unanswered_outbound_call()
    if in_our_queue:  # the call ended while the caller waited in the queue the helpline keeps
        _left_queue("hangup")
    if final and request.args.get("agent"):
        _agents_desk_phone_hung_up(_user_arg("agent"))
    return Response(status=204)


def _logged(first_delivery: tuple[str, int] | None, *, closing: bool = True) -> bool:
    """The call's log handed to the writer with its flow session, in one round trip to Redis; with
    `closing` (the call is over), its room, if it had one, closed in it (no hold or mute on it now),
    and, where the helpline keeps the agents' queue itself (Plivo), whether the caller was waiting in
    it. When Redis cannot be reached now, the log is written without the session, and False (the room
    expires; a queue entry goes stale and leaves the console's list by itself). With `first_delivery`
    (`replay_mark`), the request's first delivery is marked first in the same round trip, and Replayed
    raised when it was marked already: the callback it repeats logged the call and closed the room,
    so closing it again changes nothing, and nothing else is done."""
    state = _state()
    also: list[tuple[str | int, ...]] = []
    if closing:
        also.append(rooms.closing(room_of(state.call_sid)))
        if not _ivr().platform.queues:
            also.append(callqueue.entry(state.call_sid))
    runtime = _runtime()
    try:
        answers = calllog.keep(
            runtime.commands, runtime.engine, _turn(), state.key, runtime.clock.now(), first_delivery, also
        )
    except sa.exc.SQLAlchemyError:  # the report misses this call; what must follow from it still does
        log.exception("neither Redis nor the database took the log of call %s; the report misses it", state.call_sid)
        return False
    if answers is None:
        if closing:
            log.warning("call state of %s unreachable, its room not closed (it expires)", state.call_sid)
        return False
    entry = answers[1] if len(answers) > 1 else None  # the caller's in the queue; nil when not in it
    return entry is not None and not isinstance(entry, redis.RedisError)


def _agents_desk_phone_hung_up(user: int) -> None:
    """The agent's desk phone hung up: wrap-up after a call, else (rung for nothing) paused, the
    caller free for the next agent."""
    try:
        desk.leg_ended(_runtime().redis, _runtime().engine, user, _runtime().settings.agents, _runtime().clock.now())
    except redis.RedisError:
        log.warning("could not end the call of agent %s", user)


def _unanswered_outbound_call() -> None:
    """Our call went unanswered: an offer counts as unanswered, a feedback call falls back to SMS, an
    officer's call to a citizen ends unanswered (the officer did not pick up)."""
    offer_id, request_id = parse_id(request.args.get("offer")), parse_id(request.args.get("feedback"))
    citizen_call = parse_id(request.args.get("citizen_call"))
    if citizen_call:
        with session_scope(_runtime().engine) as session:
            outcome = f"officer_{_turn().status}".replace("-", "_")
            citizen_calls.ended(session, citizen_call, False, 0, outcome, _runtime().clock.now())
    if offer_id:
        enqueue.unanswered_offer(_runtime().redis, offer_id)
    if request_id:
        enqueue.feedback_sms(_runtime().redis, request_id)
        calllog.note_unanswered_feedback(_runtime().engine, request_id, _turn().status)


@bp.post("/fallback")
@webhook_signed
def fallback() -> Response:
    """The platform calls this when our voice URL failed: an apology, then an agent."""
    if urlsplit(_turn().failed_url).path in (_path(QUEUE_WAIT_PATH), _path(QUEUE_KEY_PATH)):
        return _hold()  # the wait URL failed: the caller is already in the queue, where Enqueue is refused
    return _apology()


@bp.get("/recordings/<language>/<name>.mp3")
def recording(language: str, name: str) -> Response:
    if language not in _ivr().voices or not re.fullmatch(r"[a-z0-9_]{1,60}", name):
        return Response(status=404)
    return send_from_directory(_ivr().recordings_dir / language, f"{name}.mp3", mimetype="audio/mpeg")


@bp.errorhandler(callstate.Replayed)
def replayed(_error: callstate.Replayed) -> Response:
    """A request the platform delivered before, found out as the call's state was written: refused."""
    return replay_refused()


@bp.errorhandler(Exception)
def internal_error(error: Exception) -> Response | HTTPException:
    """Whatever broke, the platform gets a document that is valid where it asked for it: never a
    500, never the platform's 'application error'."""
    if isinstance(error, HTTPException):
        return error
    log.exception("voice webhook failed", exc_info=error)
    refused = replay_refusal()  # a view that failed before its replay check: a replay gets no apology's callback
    if refused is not None:
        return refused
    g.database_failed = isinstance(error, sa.exc.DBAPIError)  # asking it again could take what the platform has left
    return FAILSAFE.get(request.endpoint or "", _apology)()


def _apology() -> Response:
    """Say sorry in every language, then the agent queue in hours; outside them, a callback (when
    the caller's number is known and the database can keep it) and goodbye. Never a dead end."""
    settings = _runtime().settings
    sorry = _in_every_language("technical_problem")
    if settings.call_centre.is_open(_runtime().clock.now()):
        queue = Enqueue(HELPLINE_QUEUE, wait_url=_path(QUEUE_WAIT_PATH), action=_path(QUEUE_RESULT_PATH))
        return _answered(*sorry, queue)
    promised = _in_every_language("callback_recorded") if _promise_callback() else []
    return _answered(*sorry, *promised, *_in_every_language("goodbye"), Hangup())


def _in_every_language(prompt: str) -> list[Instruction]:
    """For when the caller's language may be unknown (their call state unreachable)."""
    return [
        Spoken(prompts.text(prompt, language.code), language.tts_language, language.voice)
        for language in _runtime().settings.languages
    ]


def _promise_callback() -> bool:
    """Record that an agent rings this caller back (someone who rang us, not a worker or an agent
    we rang); False when that cannot be done now."""
    turn = _turn()
    if not callqueue.CALL_SID.match(turn.call_id) or not turn.inbound:
        return False
    if g.get("database_failed"):  # a host gone dark makes each try wait out the connect timeout
        return False
    runtime = _runtime()
    ctx = CallContext(
        runtime.settings, runtime.engine, runtime.redis, turn.call_id, _party(), 0, _language(), runtime.clock
    )
    try:
        return record_callback(ctx, "out_of_hours")
    except sa.exc.SQLAlchemyError:
        log.exception("could not record a callback for call %s", turn.call_id)
        return False


def _hold() -> Response:
    """For a caller already in the queue (the wait URL, and its Gather's action), where Enqueue is
    not allowed: stay on the line, in every language, then the platform asks again."""
    held: list[Instruction] = [*_in_every_language("queue_hold"), Pause(15)]
    if not _ivr().platform.queues:  # the helpline's own queue: the round of hold comes back to it
        held.append(Redirect(_path(QUEUE_WAIT_PATH)))
    return _answered(*held)


def _agent_sorry() -> Response:
    """An agent's desk phone: an apology and the end of that call (never the callers' queue)."""
    return _answered(_said("technical_problem", "en"), Hangup())


def _bridge_anyway() -> Response:
    """Played to a caller just before an agent takes them: say nothing, let the bridge happen."""
    return _answered()


def _no_content() -> Response:
    """A status callback: the platform reads no document from it."""
    return Response(status=204)


# What a failed request answers, by endpoint; any other voice endpoint gets the apology and the queue.
FAILSAFE: dict[str, Callable[[], Response]] = {
    "voice.queue_wait": _hold,
    "voice.queue_key": _hold,
    "voice.agent_leg": _agent_sorry,
    "voice.agent_answer": _agent_sorry,
    "voice.agent_done": _agent_sorry,
    "voice.agent_bridging": _bridge_anyway,
    "voice.status": _no_content,
    "voice.agent_recorded": _no_content,
    "voice.room_event": _no_content,
}
