"""The figures of one phase of `sewamitra bench calls`, worked out from what its callers measured."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from devtools.bench import stats
from devtools.bench.calls.load import Log, Sample
from devtools.bench.calls.scripts import Verdict


@dataclass(frozen=True)
class Server:
    """What the server's processes did during the phase (from /proc)."""

    cpu_s: float  # gunicorn master and workers
    database_cpu_s: float | None  # the PostgreSQL backends serving the bench's database (None: no database)
    machine_busy_s: float  # every process on the machine: the server, the generator, PostgreSQL, Redis, others
    peak_rss_kb: tuple[int, ...]  # per worker, over this phase (VmHWM)
    peaks_reset: bool  # False: the peaks are since the worker started, not since the phase did
    restarted_workers: int  # workers gone during the phase (gunicorn replaces a worker that timed out)
    redis_cpu_s: float | None = None  # the Redis server's own, by its INFO (None: no Redis, or on another machine)
    niceness: tuple[int, ...] = ()  # the master's and each worker's, as the phase began
    callers_niceness: int = 0  # the bench's own process, whose event loop is the callers
    system_cpu_s: float | None = None  # the part of cpu_s in the kernel for the server (None: not measured)


@dataclass(frozen=True)
class Bookings:
    """Requests in the database against the numbers the callers heard (helpline phases only)."""

    created: int  # requests stored by this phase's calls
    heard: int  # calls that heard a request number after booking
    lost: int  # numbers heard that are not in the database (for that call)


@dataclass(frozen=True)
class Phase:
    """One phase's figures: what the report prints, and what tests and the exit status judge."""

    name: str
    callers: int
    think_s: float
    listen: bool  # the callers heard each prompt out (see load.Pacing)
    calls_in_progress: float  # mean over the hold
    turns: int  # turns answered 2xx that started in the hold
    turns_per_s: float
    latency_ms: dict[str, float]  # p50, p95, p99, max over every turn started in the hold
    by_webhook: dict[str, tuple[int, dict[str, float]]]  # the same turns by webhook: how many, and their spread
    errors: Counter[str]  # whole phase, ramp and drain included: a kind per occurrence
    first_errors: dict[str, str]  # the first error of each kind, in a line
    calls: int  # calls placed
    calls_completed: int  # calls that ran to their end without an error
    requests: int  # webhook requests made, status callbacks included
    bookings: Bookings | None
    server: Server
    generator_cpu_cores: float
    loop_lag_p99_ms: float
    wall_s: float
    listening_s_per_request: float  # a caller who heard every prompt at speaking pace: seconds per webhook request

    @property
    def server_ms_per_request(self) -> float:
        return self.server.cpu_s / self.requests * 1000 if self.requests else 0.0

    @property
    def generator_ms_per_request(self) -> float:
        return self.generator_cpu_cores * self.wall_s / self.requests * 1000 if self.requests else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def in_hold(log: Log) -> list[Sample]:
    """The turns that started while every caller was on the line: ramp and drain left out."""
    return [s for s in log.samples if s.turn and log.hold_start <= s.started < log.hold_end]


def latencies_ms(samples: Sequence[Sample]) -> dict[str, float]:
    return stats.spread((s.seconds * 1000 for s in samples), (50, 95, 99))


def by_webhook(samples: Sequence[Sample]) -> dict[str, tuple[int, dict[str, float]]]:
    """Each webhook's turns: how many, and their latency's p50, p95, p99 and max."""
    grouped: dict[str, list[Sample]] = {}
    for sample in samples:
        grouped.setdefault(sample.webhook, []).append(sample)
    return {name: (len(group), latencies_ms(group)) for name, group in grouped.items()}


def phase(name: str, log: Log, server: Server, bookings: Bookings | None) -> Phase:
    turns = in_hold(log)
    answered = [s for s in turns if 200 <= s.status < 300]
    holding = [count for when, count, _lag in log.watched if log.hold_start <= when < log.hold_end]
    lags = sorted(lag * 1000 for _when, _count, lag in log.watched)
    wall = log.ended - log.started
    errors = Counter(kind for verdict in log.verdicts for kind in verdict.errors)
    return Phase(
        name=name,
        callers=log.pacing.callers,
        think_s=log.pacing.think_s,
        listen=log.pacing.listen,
        calls_in_progress=sum(holding) / len(holding) if holding else 0.0,
        turns=len(answered),
        turns_per_s=len(answered) / log.pacing.hold_s,
        latency_ms=latencies_ms(turns),
        by_webhook=by_webhook(turns),
        errors=errors,
        first_errors=first_errors(log.verdicts),
        calls=len(log.verdicts),
        calls_completed=sum(1 for v in log.verdicts if not v.errors),
        requests=len(log.samples),
        bookings=bookings,
        server=server,
        generator_cpu_cores=log.cpu_s / wall if wall else 0.0,
        loop_lag_p99_ms=stats.percentile(lags, 99),
        wall_s=wall,
        listening_s_per_request=listening(log.verdicts),
    )


def listening(verdicts: Sequence[Verdict]) -> float:
    """Seconds of a call per webhook request, had its caller heard every prompt (the simulator's clock)."""
    requests = sum(verdict.requests for verdict in verdicts)
    return sum(verdict.call_seconds for verdict in verdicts) / requests if requests else 0.0


def first_errors(verdicts: Sequence[Verdict]) -> dict[str, str]:
    found: dict[str, str] = {}
    for verdict in verdicts:
        for kind, line in zip(verdict.errors, verdict.error_lines, strict=True):
            found.setdefault(kind, line)
    return found


def cpu_ms_per_request(phases: Sequence[Phase]) -> dict[str, float | None]:
    """Where the machine's CPU went over `phases`, per webhook request: each process measured (None:
    the server uses no such thing), and the rest (the kernel's work no process is charged for,
    PostgreSQL's own processes, anything else running); and of the server's, the part the kernel spent
    for it (its system time), which tells its Python from its I/O and its threads' waking."""
    requests = sum(phase.requests for phase in phases)

    def total(figure: Callable[[Phase], float | None]) -> float | None:
        values = [figure(phase) for phase in phases]
        return None if None in values else sum(value or 0.0 for value in values)

    spent: dict[str, float | None] = {
        "server": total(lambda phase: phase.server.cpu_s),
        "generator": total(lambda phase: phase.generator_cpu_cores * phase.wall_s),
        "postgres": total(lambda phase: phase.server.database_cpu_s),
        "redis": total(lambda phase: phase.server.redis_cpu_s),
    }
    machine = total(lambda phase: phase.server.machine_busy_s) or 0.0
    spent["rest"] = machine - sum(value or 0.0 for value in spent.values())
    spent["machine"] = machine
    spent["server_system"] = total(lambda phase: phase.server.system_cpu_s)  # inside "server", not beside it
    return {name: None if value is None or not requests else value / requests * 1000 for name, value in spent.items()}
