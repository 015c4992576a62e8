"""`sewamitra soak`: the helpline as `sewamitra up` runs it, under mixed load through its signed
webhooks, with faults injected on a schedule, then drained and audited.

Callers book in Hindi and English and ring again to track (the callers of `sewamitra bench calls`);
workers answer offers by SMS and on the phone and text DONE with the citizen's code; citizens rate
the job. Meanwhile an RQ worker, a gunicorn worker and the scheduler are SIGKILLed, Redis is killed
and restarted from its append-only file and once empty, the helpline's database connections are
ended twice, and the SMS API answers 500 for a while. When the load stops the helpline drains until
it is quiet; then the audit checks the invariants over the database and the sandbox's records. It
prints a table; an invariant that fails makes the soak fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import aiohttp
import sqlalchemy as sa

from core.exceptions import SewamitraError
from core.settings import default_config_path, load_settings
from devtools.bench import output, scratch, stats
from devtools.bench.calls import load
from devtools.bench.calls.scripts import Mix, Verdict
from devtools.soak import faults, stack
from devtools.soak.audit import MOOT_PENDING, Evidence, Invariant, audit
from devtools.soak.faults import Fault
from devtools.soak.people import Manner, People
from devtools.twilio_sandbox import TwilioSandbox
from storage.db import create_engine

QUIET_CHECKS = 3  # the helpline looks quiet this many times in a row, a second apart: drained
RAMP_S = 10.0


@dataclass(frozen=True)
class Plan:
    """The soak's size and pace, and the dispatch timing `up` runs with."""

    minutes: float = 12.0
    callers: int = 15
    think_s: float = 1.5  # a caller's mean pause before each key; they key over the prompts
    drain_limit_s: float = 600.0  # the drain waits for quiet, at most this long
    offer_timeout_s: int = 90
    sweep_interval_s: int = 15
    sms_window_s: float = 30.0
    seed: int = 155330
    manner: Manner = field(default_factory=Manner)

    @property
    def load_s(self) -> float:
        return self.minutes * 60


# The form CI runs: every fault once, in about a minute of load, with dispatch timing to match.
SHORT = Plan(
    minutes=1.25,
    callers=6,
    think_s=0.5,
    drain_limit_s=300.0,
    offer_timeout_s=10,
    sweep_interval_s=5,
    sms_window_s=8.0,
    manner=Manner(reply_s=(0.3, 1.5), job_s=(2.0, 6.0)),
)


@dataclass(frozen=True)
class Result:
    invariants: tuple[Invariant, ...]
    faults: tuple[Fault, ...]
    report: str
    counts: dict[str, int]  # how much of each kind of traffic the soak made: calls, bookings, SMS, answers

    @property
    def failed(self) -> bool:
        return not all(invariant.held for invariant in self.invariants)


@dataclass
class Run:
    """What one soak saw, for the audit and the report."""

    calls: load.Log
    people: People
    people_log: load.Log
    faults: list[Fault]
    load_started: float  # perf_counter
    load_started_at: datetime  # the same moment on the wall clock
    drained_s: float | None  # None: not quiet within the drain limit
    escalated: dict[str, int]  # requests escalated, by the reason given


def main(plan: Plan, *, postgres_url: str, out: TextIO, config: Path | None = None, logs: Path | None = None) -> Result:
    """Start `up` on a database and directory of the soak's own, soak it, audit it, print the report."""
    if plan.callers < 1 or plan.minutes <= 0:
        raise SewamitraError("--callers must be at least 1 and --minutes positive")
    config = config or default_config_path()
    say = functools.partial(output.say, out)
    timing = stack.Timing(plan.offer_timeout_s, plan.sweep_interval_s)
    with (
        scratch.fresh_database(postgres_url) as database_url,
        tempfile.TemporaryDirectory(prefix="sewamitra-soak-") as tmp,
        _kept(Path(tmp), logs),
    ):
        say("starting `sewamitra up` (migrations, demo data, web, RQ workers, scheduler, Redis with AOF)")
        with stack.running(config, database_url, Path(tmp), timing) as helpline:
            engine = create_engine(database_url)
            try:
                mix = _mix(engine, config, helpline, random.Random(plan.seed))
                say(f"{plan.callers} callers for {plan.minutes:g} min, {len(faults.SCHEDULE)} faults")
                run = asyncio.run(_soak(plan, helpline, mix, engine, say))
                say("auditing the database and the sandbox's records")
                invariants = audit(engine, _evidence(plan, helpline, run))
                machine = _machine(engine)
            finally:
                engine.dispose()
    text = report(plan, machine, run, invariants)
    out.write(text)
    return Result(tuple(invariants), tuple(run.faults), text, _counts(run, helpline.sandbox))


@contextlib.contextmanager
def _kept(directory: Path, logs: Path | None) -> Iterator[None]:
    """`up`'s output copied to `logs` when the soak ends, however it ends."""
    try:
        yield
    finally:
        if logs is not None and (directory / "up.log").exists():
            logs.mkdir(parents=True, exist_ok=True)
            shutil.copy(directory / "up.log", logs / "up.log")


def _counts(run: Run, sandbox: TwilioSandbox) -> dict[str, int]:
    return {
        "calls": len(run.calls.verdicts),
        "numbers heard": sum(1 for verdict in run.calls.verdicts if verdict.booked),
        "inbound SMS": len(run.people.sent),
        "offers answered by SMS": run.people.answered["offer"],
        "DONE texted": run.people.answered["assigned_worker"],
        "outbound SMS": len(sandbox.messages),
        "outbound calls answered": len(run.people.calls),
    }


def _mix(engine: sa.Engine, config: Path, helpline: stack.Stack, rng: random.Random) -> Mix:
    """Callers ask for a service where a worker who may be offered it lives (one place per such worker
    and skill), so that most requests are offered; the rest of the mix is `bench calls`'s."""
    environ = stack.environ(helpline.database_url, helpline.data_dir, helpline.port, helpline.sandbox, helpline.timing)
    digits = {service.code: service.digit for service in load_settings(config, environ).services}
    with engine.connect() as connection:
        workers = connection.execute(sa.text("SELECT phone FROM worker")).scalars().all()
        skills = connection.execute(
            sa.text(
                "SELECT s.service_code, w.pincode FROM worker w JOIN worker_skill s ON s.worker_id = w.id "
                "WHERE w.active AND w.available AND w.police_verification = 'verified' ORDER BY w.id, s.service_code"
            )
        ).all()
    places = [(digits[code], pincode) for code, pincode in skills if code in digits]
    return Mix(rng, list(digits.values()), [pincode for _, pincode in places], workers, places)


async def _soak(plan: Plan, helpline: stack.Stack, mix: Mix, engine: sa.Engine, say: Callable[[str], None]) -> Run:
    target = load.Target(helpline.base_url, helpline.public_url, stack.AUTH_TOKEN, stack.ACCOUNT_SID, helpline=True)
    ramp = min(RAMP_S, plan.load_s / 10)
    pacing = load.Pacing(plan.callers, ramp, plan.load_s - ramp, plan.think_s)
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=load.CLIENT_KEEPALIVE_S)
    timeout = aiohttp.ClientTimeout(total=load.TOTAL_TIMEOUT_S, connect=load.CONNECT_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        started, started_at = time.perf_counter(), datetime.now(UTC)
        people_log = load.Log(pacing, started)
        people = People(
            load.Wire(session, target, people_log), engine, helpline.sandbox, random.Random(plan.seed + 1), plan.manner
        )
        stop = asyncio.Event()
        answering = asyncio.create_task(people.run(stop))
        injecting = asyncio.create_task(
            faults.run_schedule(helpline, faults.times(plan.load_s), plan.sms_window_s, started, say)
        )
        calls = await load.run(pacing, target, mix, random.Random(plan.seed + 2))
        injected = await injecting
        say(f"load over: {len(calls.verdicts):,} calls; draining (at most {plan.drain_limit_s:g} s)")
        people.draining = True
        drained = await _drain(engine, people, plan.drain_limit_s)
        stop.set()
        await answering
    return Run(calls, people, people_log, injected, started, started_at, drained, _escalations(engine))


async def _drain(engine: sa.Engine, people: People, limit_s: float) -> float | None:
    """Wait until nothing is under way: seconds it took, or None at the limit."""
    begun = time.monotonic()
    quiet = 0
    while time.monotonic() - begun < limit_s:
        busy = await asyncio.to_thread(_under_way, engine)
        quiet = quiet + 1 if not busy and people.quiet else 0
        if quiet >= QUIET_CHECKS:
            return time.monotonic() - begun
        await asyncio.sleep(1.0)
    return None


def _under_way(engine: sa.Engine) -> int:
    """Requests, offers and messages the helpline has not finished with."""
    query = sa.text(
        "SELECT (SELECT count(*) FROM service_request WHERE status IN ('new', 'offered', 'assigned'))"  # noqa: S608 (a constant)
        " + (SELECT count(*) FROM offer WHERE status = 'pending')"
        " + (SELECT count(*) FROM sms_log WHERE status IN ('received', 'handling'))"
        f" + (SELECT count(*) FROM sms_log WHERE status = 'pending' AND NOT ({MOOT_PENDING}))"
        " + (SELECT count(*) FROM sms_log WHERE status = 'send_failed' AND next_attempt_at IS NOT NULL)"
    )
    try:
        with engine.connect() as connection:
            return int(connection.execute(query).scalar_one())
    except sa.exc.SQLAlchemyError:
        return -1  # cannot tell: not quiet


def _escalations(engine: sa.Engine) -> dict[str, int]:
    query = sa.text(
        "SELECT coalesce(reason, '-'), count(*) FROM audit_event WHERE action = 'request.escalated' GROUP BY 1"
    )
    with engine.connect() as connection:
        return {str(reason): int(n) for reason, n in connection.execute(query).all()}


def _evidence(plan: Plan, helpline: stack.Stack, run: Run) -> Evidence:
    samples = run.calls.samples + run.people_log.samples
    return Evidence(
        verdicts=run.calls.verdicts,
        people=run.people,
        sandbox_messages=helpline.sandbox.messages,
        sandbox_calls=helpline.sandbox.calls,
        faults=run.faults,
        server_errors=sum(1 for sample in samples if sample.status >= 500),
        offer_timeout_s=plan.offer_timeout_s,
        sweep_interval_s=plan.sweep_interval_s,
        drained=run.drained_s is not None,
        load_started_at=run.load_started_at,
    )


def _machine(engine: sa.Engine) -> dict[str, str]:
    import os
    import platform

    with engine.connect() as connection:
        postgres = str(connection.execute(sa.text("SHOW server_version")).scalar_one())
    return {
        "CPUs (nproc)": str(len(os.sched_getaffinity(0))),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "Python": platform.python_version(),
        "PostgreSQL": postgres,
    }


# -- the report -----------------------------------------------------------------------------------


def report(plan: Plan, machine: dict[str, str], run: Run, invariants: Sequence[Invariant]) -> str:
    parameters = {k: v for k, v in asdict(plan).items() if k != "manner"} | asdict(plan.manner)
    lines = output.heading("sewamitra soak", machine, parameters)
    lines += ["", "## Load", "", *output.table(_load_rows(run))]
    lines += ["", "## Faults", "", *output.table(_fault_rows(run.faults))]
    lines += ["", "## Invariants", "", *output.table(_invariant_rows(invariants))]
    lines += ["", "## What callers heard that was not the happy path (first of each kind)", ""]
    lines += [f"- {kind}: {line}" for kind, line in sorted(_first_errors(run.calls.verdicts).items())] or ["- nothing"]
    return "\n".join([*lines, "", *verdict(invariants), ""])


def verdict(invariants: Sequence[Invariant]) -> list[str]:
    """The report's last lines: all held, or the failed invariants named again with their figures, so
    that a log cut in its middle (as CI's is) still shows what failed."""
    failed = [i for i in invariants if not i.held]
    if not failed:
        return [f"all {len(invariants)} held"]
    return [*(f"- {i.name}: {i.figure}" for i in failed), "", f"FAILED: {len(failed)} of {len(invariants)} invariants"]


def _load_rows(run: Run) -> list[tuple[str, ...]]:
    verdicts = run.calls.verdicts
    turns = [s for s in run.calls.samples if s.turn]
    redis_windows = [(run.load_started + f.at_s, run.load_started + f.ended_s) for f in run.faults if "Redis" in f.kind]
    calm = [s for s in turns if not any(a <= s.started <= b + 1.0 for a, b in redis_windows)]
    spread = stats.spread((s.seconds * 1000 for s in turns), (50, 99))
    errors: dict[str, int] = {}
    for verdict in verdicts:
        for kind in verdict.errors:
            errors[kind] = errors.get(kind, 0) + 1
    people = run.people
    rows: list[tuple[str, ...]] = [
        ("figure", "value"),
        ("calls placed by callers (booking, Hindi / English; tracking)", _calls(verdicts)),
        (
            "calls that heard an apology or an error, by kind",
            ", ".join(f"{k} {n}" for k, n in sorted(errors.items())) or "none",
        ),
        (
            "inbound SMS sent by workers and citizens (deliveries)",
            f"{len(people.sent):,} ({sum(s.deliveries for s in people.sent):,})",
        ),
        ("... by what they answered", ", ".join(f"{k} {n}" for k, n in sorted(people.answered.items())) or "none"),
        ("offers left unanswered on purpose", str(people.ignored_offers)),
        ("outbound calls answered / let ring", f"{len(people.calls):,} / {people.unanswered_calls:,}"),
        ("webhook turn latency p50 / p99 / max", f"{spread['p50']:.1f} / {spread['p99']:.1f} / {spread['max']:.1f} ms"),
        ("worst webhook turn outside the Redis restarts", f"{max((s.seconds for s in calm), default=0) * 1000:.1f} ms"),
        ("requests escalated, by reason", ", ".join(f"{k}: {n}" for k, n in sorted(run.escalated.items())) or "none"),
        ("drain until quiet", f"{run.drained_s:.1f} s" if run.drained_s is not None else "NOT QUIET"),
    ]
    return rows


def _first_errors(verdicts: Sequence[Verdict]) -> dict[str, str]:
    first: dict[str, str] = {}
    for verdict in verdicts:
        for kind, line in zip(verdict.errors, verdict.error_lines, strict=False):
            first.setdefault(kind, f"{verdict.kind} {verdict.call_sid}: {line}")
    return first


def _calls(verdicts: Sequence[Verdict]) -> str:
    kinds: dict[str, int] = {}
    for verdict in verdicts:
        kinds[verdict.kind] = kinds.get(verdict.kind, 0) + 1
    return f"{len(verdicts):,} (" + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ")"


def _fault_rows(injected: Sequence[Fault]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("at", "fault", "detail", "replaced / restored", "webhooks answering")]
    for fault in injected:
        rows.append(
            (
                f"{fault.at_s:.0f} s",
                fault.kind,
                fault.detail,
                _seconds(fault.restored_s, fault),
                _seconds(fault.answering_s, fault),
            )
        )
    return rows


def _seconds(value: float | None, fault: Fault) -> str:
    if value is None:
        return "NOT RECOVERED" if fault.missed else "n/a"
    return f"{value:.2f} s"


def _invariant_rows(invariants: Sequence[Invariant]) -> list[tuple[str, ...]]:
    header: list[tuple[str, ...]] = [("invariant", "figure", "judged")]
    return header + [(i.name, i.figure, "held" if i.held else "FAILED") for i in invariants]
