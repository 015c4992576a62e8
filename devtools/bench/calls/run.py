"""`sewamitra bench calls`: many simulated calls at once through the real webhooks, against the
helpline under gunicorn on real PostgreSQL and Redis, beside a bare Flask baseline run under the
same gunicorn settings with the same callers.

Both servers run from start to end, the one not measured idle. The helpline with paced callers (ramp
up, hold, drain), the baseline paced the same way, then each saturated (closed loop, no think time,
the same number of callers) twice, in the order helpline, baseline, baseline, helpline: a machine
that speeds up or slows down over the run (a shared machine's neighbours) weighs on both alike, and
the saturated ratio is taken over both rounds. The run builds
its own world and takes it away: a fresh PostgreSQL database (migrated, demo data seeded) and a
Redis database emptied before and after. It prints the figures as measured; errors, or a booking
missing from the database, make the run fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import secrets
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import redis
import sqlalchemy as sa

from core import pincodes
from core.exceptions import SewamitraError
from core.settings import Settings, default_config_path, load_settings
from devtools import procfs
from devtools import seed as demo
from devtools.bench import output, scratch
from devtools.bench.calls import figures, load, servers
from devtools.bench.calls.figures import Bookings, Phase
from devtools.bench.calls.report import report
from devtools.bench.calls.scripts import Mix, Verdict
from devtools.simulator import SAY_CHARS_PER_SECOND
from devtools.up import free_port
from sewamitra import process, web
from storage.db import create_engine, session_scope, upgrade

PUBLIC_URL = "https://helpline.bench.invalid"  # what Twilio would call, and sign for
ACCOUNT_SID = "AC" + "c4" * 16  # never a real account
PLIVO_AUTH_ID = "MA" + "C4" * 9  # nor this
AUTH_TOKEN = "bench-calls-" + "0" * 20
NOWHERE = "http://127.0.0.1:9"  # Twilio's REST API for the app: nothing listens, nothing leaves the machine
SATURATION_RAMP_S = 5.0
READY_PATH = "/healthz"  # the baseline answers every path
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")  # a Redis there is on this machine: its CPU is the machine's
GENERATOR_LAG_LIMIT_MS = 50.0  # a generator this late to wake is short of CPU: the run measures the machine


@dataclass(frozen=True)
class Plan:
    """The run's sizes: callers and phases, the callers' pace, gunicorn workers, random seed."""

    callers: int = 1_000
    ramp_s: float = 120.0  # about a listening call's length: the hold then sees every turn of a call in its share
    hold_s: float = 60.0
    think_s: float = 2.0
    listen: bool = True  # callers hear each prompt out before they key (False: they key over every prompt)
    saturation_s: float = 20.0
    # Enough calls at once to keep every gunicorn thread of either server busy, few enough that a
    # closed loop's queue stays well inside Twilio's 15 s: a timeout there is an error, not a figure.
    saturation_callers: int = 50
    workers: int = 2
    seed: int = 155330
    platform: str = "twilio"  # whose webhooks the helpline answers, and whose rules the callers follow
    server_niceness: int = 0  # both servers this much nicer than the callers (an experiment: see the CLI)

    def paced(self) -> load.Pacing:
        return load.Pacing(self.callers, self.ramp_s, self.hold_s, self.think_s, self.listen)

    def saturated(self) -> load.Pacing:
        ramp = min(self.ramp_s, SATURATION_RAMP_S)
        return load.Pacing(self.saturation_callers, ramp, self.saturation_s, 0.0)


SHORT = Plan(callers=30, ramp_s=2.0, hold_s=4.0, think_s=0.3, listen=False, saturation_s=3.0, saturation_callers=30)


@dataclass(frozen=True)
class Result:
    # helpline paced, baseline paced, helpline saturated, baseline saturated, each saturated again
    phases: tuple[Phase, ...]
    report: str

    @property
    def errors(self) -> int:
        return sum(phase.error_count for phase in self.phases)

    @property
    def lost(self) -> int:
        return sum(phase.bookings.lost for phase in self.phases if phase.bookings)

    @property
    def failed(self) -> bool:
        return self.errors > 0 or self.lost > 0


@dataclass(frozen=True)
class World:
    """What every phase shares: the database, the callers' mix and random stream, a place for logs."""

    plan: Plan
    engine: sa.Engine
    database: str  # its name, as PostgreSQL's backends show it in their process titles
    environ: Mapping[str, str]
    mix: Mix
    rng: random.Random
    logs: Path
    redis: redis.Redis  # the bench's Redis database (its server's CPU is measured by its INFO)
    say: Callable[[str], None]
    logged: list[str] = field(default_factory=list)  # errors the servers logged, for the report


def main(plan: Plan, *, postgres_url: str, redis_url: str, out: TextIO, config: Path | None = None) -> Result:
    """Run the six phases on a world of their own, print the report, and return the figures."""
    _check(plan)
    config = config or default_config_path()

    say = functools.partial(output.say, out)
    with (
        scratch.fresh_database(postgres_url) as database_url,
        scratch.claimed_redis(redis_url) as connection,
        tempfile.TemporaryDirectory(prefix="sewamitra-bench-calls-") as tmp,
    ):
        environ = bench_environ(database_url, redis_url, Path(tmp), plan.platform)
        settings = load_settings(config, environ)
        engine = create_engine(database_url)
        try:
            say("migrating and seeding the demo data")
            rng = random.Random(plan.seed)
            mix = callers_mix(engine, settings, rng)
            world = World(plan, engine, str(engine.url.database), environ, mix, rng, Path(tmp), connection, say)
            process.settle()  # the generator's start-up heap (PIN codes, demo data) out of its collector's way too
            phases = measure(
                world,
                lambda port: servers.helpline_command(config, port, plan.workers),
                lambda port: servers.baseline_command(port, plan.workers, plan.platform, PUBLIC_URL),
            )
            machine = output.describe_machine(engine, connection)
        finally:
            engine.dispose()
    gunicorn = {k: v for k, v in web.options(host="", port=0, workers=plan.workers).items() if k != "bind"}
    text = report(machine, asdict(plan), gunicorn, phases, notes(phases) + world.logged)
    out.write(text)
    return Result(phases, text)


def _check(plan: Plan) -> None:
    for name in ("callers", "saturation_callers", "workers"):
        if getattr(plan, name) < 1:
            raise SewamitraError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= plan.server_niceness <= 19:
        raise SewamitraError("--server-niceness must be from 0 to 19")
    if plan.hold_s <= 0 or plan.saturation_s <= 0 or plan.ramp_s < 0 or plan.think_s < 0:
        raise SewamitraError("the hold and saturation times must be positive, the ramp and think time not negative")


def bench_environ(database_url: str, redis_url: str, tmp: Path, platform: str = "twilio") -> dict[str, str]:
    """The helpline's environment (config.yaml and SEWAMITRA_* overrides), pointed at the bench's world;
    on Plivo, with a Plivo account that is never a real one and a REST API that is nowhere."""
    plivo = {
        "SEWAMITRA_TELEPHONY__PLATFORM": "plivo",
        "SEWAMITRA_PLIVO__API_BASE_URL": NOWHERE,
        "PLIVO_AUTH_ID": PLIVO_AUTH_ID,
        "PLIVO_AUTH_TOKEN": AUTH_TOKEN,
    }
    return {
        **(plivo if platform == "plivo" else {}),
        **scratch.helpline_environ(
            database_url, redis_url, twilio_base_url=NOWHERE, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN
        ),
        "SEWAMITRA_PUBLIC_URL": PUBLIC_URL,
        "SEWAMITRA_DATA_DIR": str(tmp / "var"),
        "SEWAMITRA_SECRET_KEY": secrets.token_hex(32),
    }


def callers_mix(engine: sa.Engine, settings: Settings, rng: random.Random) -> Mix:
    """Migrate and seed the demo data; callers then key its services and the service area's PIN codes."""
    upgrade(engine)
    with session_scope(engine) as session:
        demo.seed(session, settings)
    with engine.connect() as connection:
        workers = connection.execute(sa.text("SELECT phone FROM worker")).scalars().all()
    digits = [service.digit for service in settings.services]
    return Mix(rng, digits, pincodes.pincodes(settings.service_area.state), workers)


def measure(
    world: World, helpline: Callable[[int], list[str]], baseline: Callable[[int], list[str]]
) -> tuple[Phase, ...]:
    """Both servers up; each paced, then each saturated twice, helpline, baseline, baseline, helpline.
    The phases in the report's order: paced, saturated, saturated again, each helpline then baseline."""
    plan = world.plan
    with contextlib.ExitStack() as stack:
        ours = stack.enter_context(_serving(world, "helpline", helpline))
        base = stack.enter_context(_serving(world, "baseline", baseline))

        def paced(name: str, server: servers.Server, target: load.Target) -> Phase:
            world.say(
                f"{name}: {plan.callers:,} callers, {plan.ramp_s:g} s ramp, {plan.hold_s:g} s hold, "
                f"{'listening, ' if plan.listen else ''}{plan.think_s:g} s think time"
            )
            return phase(world, f"{name}, paced", server, target, plan.paced())

        def saturated(name: str, server: servers.Server, target: load.Target, again: str = "") -> Phase:
            world.say(f"{name}: {plan.saturation_callers:,} callers, closed loop for {plan.saturation_s:g} s{again}")
            return phase(world, f"{name}, saturated{again}", server, target, plan.saturated())

        ours_paced, base_paced = paced("helpline", *ours), paced("baseline", *base)
        ours_saturated, base_saturated = saturated("helpline", *ours), saturated("baseline", *base)
        base_again, ours_again = saturated("baseline", *base, " again"), saturated("helpline", *ours, " again")
    for name, (server, _target) in (("helpline", ours), ("baseline", base)):
        world.logged.extend(
            f"the {name} logged {count:,}x: {line}" for line, count in servers.logged_errors(server.log).most_common(5)
        )
    return ours_paced, base_paced, ours_saturated, base_saturated, ours_again, base_again


@contextlib.contextmanager
def _serving(
    world: World, name: str, command: Callable[[int], list[str]]
) -> Iterator[tuple[servers.Server, load.Target]]:
    """One server running, and how its callers reach it."""
    port = free_port()
    with servers.running(
        name,
        command(port),
        world.environ,
        port=port,
        workers=world.plan.workers,
        ready_path=READY_PATH,
        log_dir=world.logs,
        niceness=world.plan.server_niceness,
    ) as server:
        yield (
            server,
            load.Target(
                server.base_url,
                PUBLIC_URL,
                AUTH_TOKEN,
                ACCOUNT_SID,
                helpline=name == "helpline",
                platform=world.plan.platform,
            ),
        )


def phase(world: World, name: str, server: servers.Server, target: load.Target, pacing: load.Pacing) -> Phase:
    workers = set(server.workers())
    niceness = tuple(server.niceness())
    reset = server.reset_peaks()
    cpu, system = server.cpu_times()
    busy, database = procfs.machine_busy_s(), _database_cpu(world)
    redis_before = redis_cpu_s(world.redis) if target.helpline else None
    log = asyncio.run(load.run(pacing, target, world.mix, world.rng))
    redis_cpu = None if redis_before is None else (redis_cpu_s(world.redis) or 0.0) - redis_before
    cpu_after, system_after = server.cpu_times()
    database_cpu = sum(_database_cpu(world).get(pid, 0.0) - seconds for pid, seconds in database.items())
    database_cpu += sum(seconds for pid, seconds in _database_cpu(world).items() if pid not in database)
    measured = figures.Server(
        cpu_s=cpu_after - cpu,
        system_cpu_s=system_after - system,
        database_cpu_s=database_cpu if target.helpline else None,
        machine_busy_s=procfs.machine_busy_s() - busy,
        peak_rss_kb=tuple(server.peaks_kb()),
        peaks_reset=reset,
        restarted_workers=len(workers - set(server.workers())),
        redis_cpu_s=redis_cpu,
        niceness=niceness,
        callers_niceness=os.getpriority(os.PRIO_PROCESS, 0),
    )
    bookings = check_bookings(world.engine, log.verdicts) if target.helpline else None
    return figures.phase(name, log, measured, bookings)


def redis_cpu_s(connection: redis.Redis) -> float | None:
    """CPU seconds so far of the Redis server (its own, not a child's: a save's fork is not the bench's),
    as its INFO counts them; None when the server is on another machine, whose CPU is not this one's."""
    where = connection.connection_pool.connection_kwargs
    if "path" not in where and where.get("host") not in LOCAL_HOSTS:  # a unix socket is on this machine
        return None
    cpu = connection.info("cpu")
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def _database_cpu(world: World) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving the bench's database."""
    return {pid: procfs.cpu_seconds(pid) for pid in procfs.matching(f" {world.database} ")}


def check_bookings(engine: sa.Engine, verdicts: Sequence[Verdict]) -> Bookings:
    """Every number a caller heard must be in the database: a booking as that call's own request."""
    query = sa.text("SELECT number, idempotency_key FROM service_request WHERE idempotency_key LIKE 'ivr:%'")
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    by_call: dict[str, set[str]] = {}
    for number, key in rows:
        by_call.setdefault(key.split(":")[1], set()).add(number)
    stored = {number for number, _key in rows}
    created = sum(len(by_call.get(verdict.call_sid, ())) for verdict in verdicts)
    heard = [verdict for verdict in verdicts if verdict.booked]
    lost = sum(1 for verdict in heard if verdict.booked not in by_call.get(verdict.call_sid, ()))
    lost += sum(1 for verdict in verdicts for number in verdict.read_back if number not in stored)
    return Bookings(created=created, heard=len(heard), lost=lost)


def notes(phases: Sequence[Phase]) -> list[str]:
    found = [
        "turn latency is measured by the callers, from sending a webhook to reading the whole answer, so the "
        "generator's own delay is in it (its event-loop lag is printed); the generator shares the CPUs with the "
        "server, PostgreSQL and Redis",
        "turns are counted when they start within the hold; errors and calls over the whole phase",
        "no RQ workers run: the dispatch and SMS jobs each booking queues wait in Redis (`sewamitra bench "
        "dispatch` measures dispatch)",
        "the baseline answers one fixed menu to every request, without a signature check, state or database; "
        "its callers key the same scripts with the same pacing",
    ]
    ours = phases[0]
    if ours.listen:
        found.append(
            f"paced callers listen: each hears what Twilio plays out (the simulator's clock: "
            f"{SAY_CHARS_PER_SECOND} characters of speech a second, a second a key, a Gather's timeout "
            f"waited out), then thinks about {ours.think_s:g} s before each key item; "
            f"{ours.listening_s_per_request:.1f} s of call per webhook request, on average. Each "
            "server's own prompts pace its callers, so the paced ratio compares what each was offered. "
            "With `--no-listen` they key over every prompt (Twilio's barge-in), the think time alone "
            "between requests"
        )
    elif ours.think_s and ours.listening_s_per_request:
        found.append(
            f"callers who heard every prompt at speaking pace (the simulator's clock) would take "
            f"{ours.listening_s_per_request:.1f} s per webhook request; a {ours.think_s:g} s think time "
            f"offers about {ours.listening_s_per_request / ours.think_s:.1f}x their rate"
        )
    for phase in phases:
        if phase.loop_lag_p99_ms > GENERATOR_LAG_LIMIT_MS:
            found.append(
                f"{phase.name}: THE GENERATOR FELL BEHIND (event-loop lag p99 {phase.loop_lag_p99_ms:,.0f} ms "
                f"> {GENERATOR_LAG_LIMIT_MS:g} ms): its latencies and lost connections measure the machine, "
                "not only the server"
            )
        found += [f"{phase.name}, first {kind}: {line}" for kind, line in sorted(phase.first_errors.items())]
    if not all(phase.server.peaks_reset for phase in phases):
        found.append("this kernel would not reset VmHWM: peaks marked 'since start' cover earlier phases too")
    return found
