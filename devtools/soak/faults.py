"""The faults the soak injects on a schedule, and how long the helpline took to recover from each: the
killed process replaced (by `up`, or by gunicorn's master), and a new call's first webhook answered
with its menu again."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
import sqlalchemy as sa

from devtools.simulator import twilio_headers
from devtools.soak.stack import AUTH_TOKEN, HELPLINE_NUMBER, Stack

RQ_WORKER, WEB_WORKER, SCHEDULER = "SIGKILL an RQ worker", "SIGKILL a gunicorn worker", "SIGKILL the scheduler"
REDIS_AOF, REDIS_EMPTY = "Redis killed, restarted from its AOF", "Redis killed, restarted empty"
DATABASE, SMS_API = "pg_terminate_backend of the helpline's connections", "the SMS API answers 500"
SCHEDULE = (RQ_WORKER, REDIS_AOF, WEB_WORKER, DATABASE, SMS_API, SCHEDULER, REDIS_EMPTY, DATABASE)
RECOVERY_LIMIT_S = 60.0  # a fault not recovered from within this is a failure
PROBE_EVERY_S = 0.05


@dataclass
class Fault:
    """One fault as injected: when (seconds into the load), what, and how long recovery took."""

    kind: str
    at_s: float
    detail: str = ""
    restored_s: float | None = None  # the killed process replaced, Redis answering, or SMS sends taken again
    answering_s: float | None = None  # a new call's first webhook answered with its menu again
    ended_s: float = 0.0  # when recovery was complete (or given up on), seconds into the load
    missed: list[str] = field(default_factory=list)  # what did not recover within RECOVERY_LIMIT_S

    @property
    def recovered(self) -> bool:
        return not self.missed


async def run_schedule(
    stack: Stack, plan_times: list[float], sms_window_s: float, started: float, say: Callable[[str], None]
) -> list[Fault]:
    """Each fault of SCHEDULE at its time (seconds after `started`, on the perf_counter clock the
    callers' samples use), one after another."""
    faults = []
    for kind, at in zip(SCHEDULE, plan_times, strict=True):
        delay = started + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        fault = Fault(kind, time.perf_counter() - started)
        say(f"{fault.at_s:.0f} s: {kind}")
        await asyncio.to_thread(inject, stack, fault, sms_window_s)
        fault.ended_s = time.perf_counter() - started
        faults.append(fault)
    return faults


def inject(stack: Stack, fault: Fault, sms_window_s: float) -> None:
    """Break one thing, then measure the recovery (blocking: run it in a thread)."""
    begun = time.perf_counter()
    if fault.kind in (RQ_WORKER, SCHEDULER, WEB_WORKER):
        role = {RQ_WORKER: "worker", SCHEDULER: "scheduler", WEB_WORKER: "web worker"}[fault.kind]
        before = _pids(stack, role)
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        fault.detail = f"pid {victim}"
        fault.restored_s = _until(lambda: _replaced(stack, role, before, victim), begun, fault, "replaced")
    elif fault.kind in (REDIS_AOF, REDIS_EMPTY):
        _kill_redis(stack, fault, empty=fault.kind == REDIS_EMPTY)
        fault.restored_s = _until(lambda: _redis_answers(stack), begun, fault, "replaced")
        if fault.kind == REDIS_EMPTY:
            fault.detail += f"; {_redis_keys(stack)} keys after the restart"
    elif fault.kind == DATABASE:
        fault.detail = f"{_terminate_backends(stack)} connections ended"
    elif fault.kind == SMS_API:
        refused = stack.sandbox.refused
        stack.sandbox.fail_for(sms_window_s)
        time.sleep(sms_window_s)
        sent = len(stack.sandbox.messages)
        fault.detail = f"{sms_window_s:g} s, {stack.sandbox.refused - refused} sends refused"
        begun = time.perf_counter()  # recovery counts from the window's end: the first send taken after it
        fault.restored_s = _until(lambda: len(stack.sandbox.messages) > sent, begun, fault, "an SMS sent after")
    fault.answering_s = _until(lambda: answers(stack), begun, fault, "webhooks answering")


def _pids(stack: Stack, role: str) -> list[int]:
    return stack.web_workers() if role == "web worker" else stack.children(role)


def _replaced(stack: Stack, role: str, before: list[int], victim: int) -> bool:
    now = _pids(stack, role)
    return victim not in now and len(now) >= len(before)


def _until(condition: Callable[[], bool], begun: float, fault: Fault, what: str) -> float | None:
    """Seconds from `begun` until `condition` holds; None (and noted) if it does not within the limit."""
    deadline = begun + RECOVERY_LIMIT_S
    while time.perf_counter() < deadline:
        if condition():
            return time.perf_counter() - begun
        time.sleep(PROBE_EVERY_S)
    fault.missed.append(what)
    return None


def answers(stack: Stack) -> bool:
    """A new call's first webhook, signed as Twilio signs it, is answered with the language menu."""
    url = f"{stack.public_url}/twilio/voice"
    form = {
        "CallSid": "CA" + secrets.token_hex(16),
        "AccountSid": "AC" + "50" * 16,
        "From": f"+9199{secrets.randbelow(10**8):08d}",
        "To": HELPLINE_NUMBER,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    headers = twilio_headers(AUTH_TOKEN, url, form) | {"Content-Type": "application/x-www-form-urlencoded"}
    request = urllib.request.Request(url, urllib.parse.urlencode(form).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return bool(answer.status == 200 and b"<Gather" in answer.read())
    except (urllib.error.URLError, OSError):
        return False


def _kill_redis(stack: Stack, fault: Fault, *, empty: bool) -> None:
    [pid] = stack.children("redis")
    keys = _redis_keys(stack)
    if empty:  # its files gone first: the Redis `up` starts again finds nothing to load
        shutil.rmtree(stack.redis_directory / "appendonlydir", ignore_errors=True)
        (stack.redis_directory / "dump.rdb").unlink(missing_ok=True)
    os.kill(pid, signal.SIGKILL)
    fault.detail = f"pid {pid}, {keys} keys before"


def _redis_answers(stack: Stack) -> bool:
    client = redis.Redis.from_url(stack.redis_url, socket_timeout=1)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _redis_keys(stack: Stack) -> int | str:
    client = redis.Redis.from_url(stack.redis_url, socket_timeout=2)
    try:
        return int(client.dbsize())
    except (redis.RedisError, OSError) as error:
        return f"? ({type(error).__name__})"
    finally:
        client.close()


def _terminate_backends(stack: Stack) -> int:
    """End every connection to the soak's database but this one: the helpline's web, workers, scheduler."""
    url = sa.engine.make_url(stack.database_url)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            ended = connection.execute(
                sa.text(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": url.database},
            ).scalar_one()
    finally:
        admin.dispose()
    return int(ended)


def times(load_s: float, count: int = len(SCHEDULE)) -> list[float]:
    """When each fault goes in: evenly over the load, the first after a tenth of it, none in its last fifth."""
    first, last = 0.1 * load_s, 0.8 * load_s
    step = (last - first) / max(1, count - 1)
    return [first + i * step for i in range(count)]
