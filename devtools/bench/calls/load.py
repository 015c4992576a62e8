"""The callers of `sewamitra bench calls`: many simulated calls at once from one event loop.

Each call is the simulator's (devtools/simulator.py): signed as Twilio signs, its TwiML run by Twilio's
rules. Callers start one after another over the ramp, then each places call after call until the
hold ends, so the number of calls in progress stays at `callers`; calls under way then finish.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from devtools.bench.calls.scripts import Mix, Script, Verdict, cut_off, judge
from devtools.plivo_simulator import PlivoCallSetup, plivo_headers
from devtools.simulator import CallSetup, Reply, Send, Signer, drive_async, local_part, twilio_headers

CONNECT_TIMEOUT_S = 5.0  # Twilio's webhook timeouts
TOTAL_TIMEOUT_S = 15.0
CLIENT_KEEPALIVE_S = 1.0  # below gunicorn's 2 s, so the client never reuses a connection the server closes
WATCH_EVERY_S = 0.1
FORM = "application/x-www-form-urlencoded"
CUT_OFF_AFTER_S = 300.0  # a call still running this long after the hold is cut off, and an error


@dataclass(frozen=True)
class Pacing:
    """How many calls at once, for how long, and how long a caller takes before each request:
    listening, they first hear out what Twilio plays them (as Twilio sends no request before it has
    played it), then think before each key item; not listening, they key over every prompt."""

    callers: int
    ramp_s: float
    hold_s: float
    think_s: float  # mean; each pause is drawn from 0.5x to 1.5x of it
    listen: bool = False  # neither listening nor thinking: a closed loop

    def think(self, rng: random.Random) -> float:
        return rng.uniform(0.5 * self.think_s, 1.5 * self.think_s) if self.think_s > 0 else 0.0

    def pause(self, send: Send, rng: random.Random) -> float:
        """Seconds between the previous request's answer and this request."""
        return (send.played_s if self.listen else 0.0) + (self.think(rng) if send.acted else 0.0)


@dataclass(frozen=True)
class Target:
    """Where the calls go: the server's own address, and the public URL Twilio would sign for."""

    base_url: str
    public_url: str
    auth_token: str
    account_sid: str
    helpline: bool  # judge calls by what the helpline must say (the baseline says only its menu)
    platform: str = "twilio"  # whose rules and signatures the calls follow: twilio or plivo


@dataclass(frozen=True)
class Sample:
    """One webhook request: when it started (monotonic seconds), how long it took, its HTTP status."""

    started: float
    seconds: float
    turn: bool  # the caller waited on its TwiML (not a status callback)
    status: int
    webhook: str = ""  # its path, and for a step the turn it answers (`webhook`)


def webhook(path: str, query: str) -> str:
    """What a request is counted as by webhook: its path, and for a step the turn it answers."""
    turn = next((part[5:] for part in query.split("&") if part.startswith("turn=")), None)
    return f"{path} (turn {turn})" if turn is not None else path


@dataclass
class Log:
    """Everything one phase measured."""

    pacing: Pacing
    started: float
    samples: list[Sample] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    in_progress: int = 0
    watched: list[tuple[float, int, float]] = field(default_factory=list)  # (when, calls in progress, loop lag)
    cpu_s: float = 0.0  # the generator's own CPU time
    ended: float = 0.0

    @property
    def hold_start(self) -> float:
        return self.started + self.pacing.ramp_s

    @property
    def hold_end(self) -> float:
        return self.hold_start + self.pacing.hold_s


class Wire:
    """Twilio's side of the connection, shared by every call: signed requests, each one timed."""

    def __init__(self, session: aiohttp.ClientSession, target: Target, log: Log) -> None:
        self.session, self.target, self.log = session, target, log

    async def request(self, method: str, url: str, form: dict[str, str], turn: bool) -> Reply:
        path = local_part(self.target.public_url, url)
        if path is None:
            return Reply(0, "", "", failure=f"{url} is not under the public URL")
        headers = signer(self.target.platform)(self.target.auth_token, url, form)
        if form:
            headers["Content-Type"] = FORM
        data = urllib.parse.urlencode(form).encode() if form else None  # as Twilio posts it
        named = webhook(*urllib.parse.urlsplit(path)[2:4])
        reply = Reply(0, "", "")
        for _attempt in range(2):  # Twilio tries once more when it cannot connect
            started = time.perf_counter()
            reply, connected = await self._exchange(method, self.target.base_url + path, data, headers)
            self.log.samples.append(Sample(started, time.perf_counter() - started, turn, reply.status, named))
            if connected:
                break
        return reply

    async def _exchange(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> tuple[Reply, bool]:
        """One attempt, and whether it connected at all."""
        try:
            async with self.session.request(method, url, data=data, headers=headers) as answer:
                text = (await answer.read()).decode(answer.charset or "utf-8", errors="replace")
                return Reply(answer.status, answer.headers.get("Content-Type", ""), text), True
        except aiohttp.ClientConnectorError as error:
            return Reply(0, "", "", failure=f"cannot connect: {error}"), False
        except (aiohttp.ClientError, TimeoutError) as error:
            return Reply(0, "", "", failure=f"no answer: {error or type(error).__name__}"), True


class Line:
    """One call's transport: the caller listens and thinks as paced, then the request goes out."""

    def __init__(self, wire: Wire, pause: Callable[[Send], float]) -> None:
        self.wire, self.pause = wire, pause
        self.turn = True

    async def before(self, send: Send) -> None:
        self.turn = send.turn
        if seconds := self.pause(send):
            await asyncio.sleep(seconds)

    async def post(self, url: str, form: dict[str, str]) -> Reply:
        return await self.wire.request("POST", url, form, self.turn)

    async def get(self, url: str) -> Reply:
        return await self.wire.request("GET", url, {}, self.turn)


async def run(pacing: Pacing, target: Target, mix: Mix, rng: random.Random) -> Log:
    """One phase: ramp up to `pacing.callers` calls in progress, hold, then let the calls finish."""
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=CLIENT_KEEPALIVE_S)
    timeout = aiohttp.ClientTimeout(total=TOTAL_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        cpu = time.process_time()
        log = Log(pacing, time.perf_counter())
        wire = Wire(session, target, log)
        watcher = asyncio.create_task(_watch(log))
        callers = [asyncio.create_task(_caller(index, wire, mix, rng)) for index in range(pacing.callers)]
        _done, late = await asyncio.wait(callers, timeout=pacing.ramp_s + pacing.hold_s + CUT_OFF_AFTER_S)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        log.ended = time.perf_counter()
        log.cpu_s = time.process_time() - cpu
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    return log


async def _caller(index: int, wire: Wire, mix: Mix, rng: random.Random) -> None:
    """One person at a phone: rings at their turn in the ramp, then again and again until the hold ends."""
    log, target = wire.log, wire.target
    await asyncio.sleep(log.pacing.ramp_s * index / log.pacing.callers)
    while time.perf_counter() < log.hold_end:
        script = mix.next()
        verdict = await _call(script, wire, rng)
        log.verdicts.append(verdict)
        if target.helpline and verdict.booked and not verdict.errors:
            mix.booked(script.from_number)


def call_setup(platform: str, public_url: str, from_number: str, call_sid: str, account_sid: str) -> CallSetup:
    """One call placed by `platform`'s rules (Plivo's calls carry no account in their forms)."""
    if platform == "plivo":
        return PlivoCallSetup(public_url=public_url, from_number=from_number, call_sid=call_sid)
    return CallSetup(public_url=public_url, from_number=from_number, call_sid=call_sid, account_sid=account_sid)


def signer(platform: str) -> Signer:
    """How `platform` signs its webhook requests: the headers it sends with each."""
    return plivo_headers if platform == "plivo" else twilio_headers


async def _call(script: Script, wire: Wire, rng: random.Random) -> Verdict:
    log, target = wire.log, wire.target
    call_sid = str(uuid.uuid4()) if target.platform == "plivo" else "CA" + secrets.token_hex(16)
    setup = call_setup(target.platform, target.public_url, script.from_number, call_sid, target.account_sid)
    line = Line(wire, lambda send: log.pacing.pause(send, rng))
    log.in_progress += 1
    try:
        transcript = await drive_async(setup.steps(script.keys), line, line.before)
    except asyncio.CancelledError:
        log.verdicts.append(cut_off(script, call_sid))
        raise
    finally:
        log.in_progress -= 1
    return judge(script, transcript, helpline=target.helpline)


async def _watch(log: Log) -> None:
    """Every 100 ms: calls in progress, and how late the event loop woke (the generator's own delay)."""
    while True:
        planned = time.perf_counter() + WATCH_EVERY_S
        await asyncio.sleep(WATCH_EVERY_S)
        now = time.perf_counter()
        log.watched.append((now, log.in_progress, now - planned))
