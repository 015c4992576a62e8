"""`sewamitra bench commits`: what a call's turn that commits something pays its client, the old way
(the baseline) against the helpline's, each pair taking turns round by round in one process, the first
of each round alternating, so whatever slows the machine falls on both; the process's CPU clock is read
around each round.

- A turn's call state, taken and then saved (`ivr.callstate`'s two Lua scripts): through redis-py's
  client, registered and run as `Script`s (the baseline), against `storage.redisdb.direct` (a
  connection the thread keeps, scripts by SHA1).
- A first-time caller's language turn, with a privacy key set as in production: the caller's erased
  number given back, their language remembered and the privacy notice's SMS recorded and queued, one
  statement after another (the baseline: PostgreSQL's way before, SQLite's still), against
  `notice.greet_first_call` (one statement). Each turn a new caller, inside `one_connection` as a request.
"""

from __future__ import annotations

import itertools
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import redis
import sqlalchemy as sa

from core.clock import SYSTEM
from core.exceptions import SewamitraError
from core.settings import Settings, default_config_path, load_settings
from devtools.bench import scratch
from devtools.bench.calls import run
from devtools.bench.output import describe_machine, heading, table
from dispatch import notice, retention
from flows.engine import Session, Status
from ivr import callstate
from ivr.effects import CallContext, remember_language
from storage.db import create_engine, one_connection, upgrade
from storage.models import Caller, SmsLog
from storage.redisdb import Lua, direct

WARM_UP = 100  # first turns open connections, load the scripts and fill the statement caches
PRIVACY_KEY = "the bench's privacy key"  # keys the erased form of its callers' numbers
SESSION = Session("helpline", "service_menu", Status.WAITING_KEYS, "en", {"service": "plumber"}, {}, 3, 2, ("welcome",))
ANSWER = "<Response>" + "<Say>A menu, as long as the helpline's.</Say>" * 12 + "</Response>"
STATE, STATE_CLIENT, STATE_DIRECT = "a turn's call state", "redis-py's client (the baseline)", "direct (the helpline's)"
FIRST, FIRST_ONE_BY_ONE, FIRST_AT_ONCE = (
    "a first-time caller's language turn",
    "statement by statement (the baseline)",
    "one statement (the helpline's)",
)
Turn = Callable[[int], None]  # one turn, of the call numbered so


def main(turns: int, rounds: int, *, postgres_url: str, redis_url: str, out: TextIO) -> Result:
    """Both comparisons, `rounds` rounds of `turns` turns each way; print the report and return what
    each way spent, and what the first-time callers' turns left in the database."""
    if turns < 1 or rounds < 2:
        raise SewamitraError("--turns must be at least 1 and --rounds at least 2")
    with (
        scratch.fresh_database(postgres_url) as database_url,
        scratch.claimed_redis(redis_url) as connection,
        tempfile.TemporaryDirectory(prefix="sewamitra-bench-commits-") as tmp,
    ):
        environ = run.bench_environ(database_url, redis_url, Path(tmp)) | {"SEWAMITRA_PRIVACY_KEY": PRIVACY_KEY}
        settings = load_settings(default_config_path(), environ)
        engine = create_engine(database_url)
        try:
            upgrade(engine)
            compared = {
                STATE: {STATE_CLIENT: _state_through_the_client(connection), STATE_DIRECT: _state_direct(connection)},
                FIRST: {
                    FIRST_ONE_BY_ONE: _first_call(settings, engine, connection, _one_by_one),
                    FIRST_AT_ONCE: _first_call(settings, engine, connection, _at_once),
                },
            }
            measured = {name: _measure(ways, turns, rounds) for name, ways in compared.items()}
            machine = describe_machine(engine, connection)
            done = _first_calls_done(engine)
        finally:
            engine.dispose()
    out.write(report(machine, {"turns": turns, "rounds": rounds}, measured, done))
    return Result(measured, *done)


@dataclass(frozen=True)
class Result:
    measured: dict[str, dict[str, list[float]]]  # by comparison, by way: µs of CPU a turn, a figure a round
    callers: int  # remembered by the first-time callers' turns, both ways
    notices: int  # privacy notices recorded for them


def _first_calls_done(engine: sa.Engine) -> tuple[int, int]:
    """The callers the first-time turns remembered and the privacy notices they recorded: both ways did the work."""
    caller: sa.Table = Caller.__table__  # type: ignore[attr-defined]
    text: sa.Table = SmsLog.__table__  # type: ignore[attr-defined]
    with engine.connect() as db:
        callers = db.execute(sa.select(sa.func.count()).select_from(caller)).scalar_one()
        notices = db.execute(
            sa.select(sa.func.count()).select_from(text).where(text.c.template == notice.PRIVACY_TEMPLATE)
        ).scalar_one()
    return int(callers), int(notices)


def _measure(ways: Mapping[str, Turn], turns: int, rounds: int) -> dict[str, list[float]]:
    """Microseconds of CPU a turn, each way, a figure a round; the ways take turns."""
    calls = itertools.count()
    for turn in ways.values():
        for _ in range(WARM_UP):
            turn(next(calls))
    spent: dict[str, list[float]] = {name: [] for name in ways}
    order = list(ways.items())
    for round_ in range(rounds):
        for name, turn in order if round_ % 2 == 0 else reversed(order):
            cpu = time.process_time()
            for _ in range(turns):
                turn(next(calls))
            spent[name].append((time.process_time() - cpu) / turns * 1e6)
    return spent


def _state_through_the_client(connection: redis.Redis) -> Turn:
    """The call's lock taken and its answer and session read, then both stored and the lock let go, as
    `callstate` sent them through the client: each script a `Script` registered for the call."""

    def run_script(script: Lua, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        return connection.register_script(script.text)(keys=keys, args=args)

    return _state_turn(run_script)


def _state_direct(connection: redis.Redis) -> Turn:
    return _state_turn(direct(connection).run)


def _state_turn(run_script: Callable[[Lua, Sequence[str], Sequence[str | int]], Any]) -> Turn:
    session = json.dumps(SESSION.to_dict(), ensure_ascii=False)  # as `CallState.save` stores it

    def turn(call: int) -> None:
        key = f"{callstate.PREFIX}CAbench{call:026d}"
        token, step = f"{call:032x}", "3"
        run_script(
            callstate.TAKE_AND_READ, [key, key + ":lock"], [token, callstate.LOCK_TTL_S * 1000, f"answer:{step}"]
        )
        run_script(callstate.SAVE_AND_UNLOCK, [key, key + ":lock"], [session, f"answer:{step}", ANSWER, 60, token])

    return turn


def _first_call(
    settings: Settings, engine: sa.Engine, connection: redis.Redis, writes: Callable[[CallContext, str], None]
) -> Turn:
    """A first-time caller's language turn, as a request runs it: a new mobile each call (the calls of
    both ways are numbered on), its writes inside `one_connection`."""

    def turn(call: int) -> None:
        phone = f"+9198{call:08d}"
        ctx = CallContext(settings, engine, connection, f"CA{call:032x}", phone, 0, "en", SYSTEM)
        with one_connection(engine):
            writes(ctx, phone)

    return turn


def _one_by_one(ctx: CallContext, phone: str) -> None:
    notice.send_privacy_notice(ctx.engine, ctx.redis, ctx.settings, phone, ctx.language)
    remember_language(ctx)  # the caller's number given back, were it erased, then their language


def _at_once(ctx: CallContext, phone: str) -> None:
    erased = retention.erased_form(phone, PRIVACY_KEY)
    notice.greet_first_call(ctx.engine, ctx.redis, ctx.settings, phone, ctx.language, ctx.now(), erased)


def report(
    machine: Mapping[str, str],
    parameters: Mapping[str, int],
    measured: Mapping[str, Mapping[str, list[float]]],
    done: tuple[int, int],
) -> str:
    lines = heading("sewamitra bench commits", machine, parameters)
    for name, ways in measured.items():
        base = next(iter(ways.values()))
        rows = [(name, "CPU a turn, median (range)", "against the baseline")]
        for way, spent in ways.items():
            # each round's ratio to the baseline's beside it in time, then their median
            ratios = [ours / theirs for ours, theirs in zip(spent, base, strict=True)]
            rows.append((way, _spread(spent), f"{statistics.median(ratios):.2f}x"))
        lines += ["", *table(rows)]
    lines += ["", f"first-time callers remembered: {done[0]:,}; privacy notices recorded for them: {done[1]:,}"]
    return "\n".join([*lines, ""]) + "\n"


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} µs ({min(values):.1f}–{max(values):.1f})"
