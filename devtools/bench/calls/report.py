"""The report of `sewamitra bench calls`: every phase side by side, the ratios to the baseline, and the
issue's targets judged, markdown tables like `sewamitra bench dispatch`. It prints, never rounds up."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from devtools.bench.calls.figures import Phase, cpu_ms_per_request
from devtools.bench.output import heading, table
from devtools.bench.stats import ratio

TARGET_CALLERS = 1_000
TARGET_P99_MS = 100.0
TARGET_RATIO = 0.5

Row = tuple[str, Callable[[Phase], str]]


def _pace(phase: Phase) -> str:
    think = f"{phase.think_s:g} s think" if phase.think_s else "no think"
    return f"listening, {think}" if phase.listen else think if phase.think_s else "closed loop"


def _ms(value: float) -> str:
    return f"{value:,.1f} ms" if value >= 10 else f"{value:.2f} ms"


def _booking(phase: Phase, figure: Callable[[Any], int]) -> str:
    return f"{figure(phase.bookings):,}" if phase.bookings is not None else "n/a (no database)"


def _errors(phase: Phase) -> str:
    return ", ".join(f"{kind} {count:,}" for kind, count in sorted(phase.errors.items())) or "none"


def _database_cpu(phase: Phase) -> str:
    cpu = phase.server.database_cpu_s
    return f"{cpu / phase.wall_s:.2f} cores" if cpu is not None else "n/a (no database)"


def _redis_cpu(phase: Phase) -> str:
    cpu = phase.server.redis_cpu_s
    return f"{cpu / phase.wall_s:.2f} cores" if cpu is not None else "n/a (no Redis here)"


def _niceness(phase: Phase) -> str:
    return " / ".join(str(n) for n in phase.server.niceness) + f", {phase.server.callers_niceness}"


def _peaks(phase: Phase) -> str:
    peaks = " / ".join(f"{kb / 1024:,.0f}" for kb in phase.server.peak_rss_kb) + " MB"
    return peaks if phase.server.peaks_reset else peaks + " (since start)"


ROWS: Sequence[Row] = (
    ("callers (pace)", lambda p: f"{p.callers:,} ({_pace(p)})"),
    ("calls in progress, mean over the hold", lambda p: f"{p.calls_in_progress:,.0f}"),
    ("turns answered per second (hold)", lambda p: f"{p.turns_per_s:,.1f}/s"),
    ("turn latency p50", lambda p: _ms(p.latency_ms["p50"])),
    ("turn latency p95", lambda p: _ms(p.latency_ms["p95"])),
    ("turn latency p99", lambda p: _ms(p.latency_ms["p99"])),
    ("turn latency max", lambda p: _ms(p.latency_ms["max"])),
    ("errors (whole phase)", lambda p: f"{p.error_count:,}"),
    ("errors by kind", _errors),
    ("calls placed", lambda p: f"{p.calls:,}"),
    ("calls completed without an error", lambda p: f"{p.calls_completed:,}"),
    ("webhook requests (status callbacks included)", lambda p: f"{p.requests:,}"),
    ("requests created in the database", lambda p: _booking(p, lambda b: b.created)),
    ("calls that heard a request number", lambda p: _booking(p, lambda b: b.heard)),
    ("numbers heard that are not in the database", lambda p: _booking(p, lambda b: b.lost)),
    ("peak RSS per web worker (VmHWM)", _peaks),
    ("workers gunicorn had to replace", lambda p: f"{p.server.restarted_workers}"),
    ("server CPU (gunicorn master + workers)", lambda p: f"{p.server.cpu_s / p.wall_s:.2f} cores"),
    ("server CPU per webhook request", lambda p: _ms(p.server_ms_per_request)),
    ("PostgreSQL CPU (backends of the bench's database)", _database_cpu),
    ("Redis CPU (the server, by its INFO)", _redis_cpu),
    ("generator CPU (the bench's own process)", lambda p: f"{p.generator_cpu_cores:.2f} cores"),
    ("generator CPU per webhook request", lambda p: _ms(p.generator_ms_per_request)),
    ("machine busy (every process)", lambda p: f"{p.server.machine_busy_s / p.wall_s:.2f} cores"),
    ("generator event-loop lag p99", lambda p: _ms(p.loop_lag_p99_ms)),
    ("niceness: server (master / workers), callers", _niceness),
    ("phase wall time (ramp, hold, drain)", lambda p: f"{p.wall_s:,.1f} s"),
)


def report(
    machine: Mapping[str, str],
    parameters: Mapping[str, object],
    gunicorn: Mapping[str, object],
    phases: Sequence[Phase],
    notes: Sequence[str],
) -> str:
    """The whole report; `phases` are helpline paced, baseline paced, helpline saturated, baseline
    saturated, and the two saturated again."""
    lines = heading("sewamitra bench calls", machine, parameters)
    lines += ["- gunicorn, as `sewamitra serve` runs it: " + ", ".join(f"{k}={v}" for k, v in gunicorn.items()), ""]
    lines += table([("figure", *(p.name for p in phases)), *((label, *(f(p) for p in phases)) for label, f in ROWS)])
    lines += ["", *ratios(phases), "", *budget(phases), "", *targets(phases[0]), ""]
    lines += [*webhooks(phases[0], phases[2]), ""]
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines) + "\n"


def webhooks(paced: Phase, saturated: Phase) -> list[str]:
    """Where the helpline's turn latency comes from: each webhook's turns in both its phases, the
    slowest at the paced p99 first."""
    rows = [("the helpline's turns by webhook", "paced: turns", "p50", "p99", "max", "saturated: turns", "p50", "p99")]
    for name, (count, spread) in sorted(paced.by_webhook.items(), key=lambda item: -item[1][1]["p99"]):
        count_saturated, spread_saturated = saturated.by_webhook.get(name, (0, {"p50": 0.0, "p99": 0.0}))
        rows.append(
            (
                name,
                f"{count:,}",
                _ms(spread["p50"]),
                _ms(spread["p99"]),
                _ms(spread["max"]),
                f"{count_saturated:,}",
                _ms(spread_saturated["p50"]),
                _ms(spread_saturated["p99"]),
            )
        )
    return table(rows)


def ratios(phases: Sequence[Phase]) -> list[str]:
    """Paced, and saturated over both rounds: turns a second summed over the two, each the same length.
    The rounds ran helpline, baseline, baseline, helpline, so a steady drift of the machine's speed
    falls on both servers alike; each round's own ratio is printed too."""
    ours, base, *saturated_rounds = phases
    paced = ratio(ours.turns_per_s, base.turns_per_s)
    rounds = [(saturated_rounds[i], saturated_rounds[i + 1]) for i in range(0, len(saturated_rounds), 2)]
    ours_saturated = sum(helpline.turns_per_s for helpline, _ in rounds)
    base_saturated = sum(baseline.turns_per_s for _, baseline in rounds)
    saturated = ratio(ours_saturated, base_saturated)
    each = "; ".join(f"{ratio(helpline.turns_per_s, baseline.turns_per_s):.1%}" for helpline, baseline in rounds)
    return table(
        [
            (
                "throughput against the baseline, measured in this run",
                "ours / baseline",
                f"target >= {TARGET_RATIO:.0%}",
            ),
            (
                "paced: same callers and pace (both may just keep up with the offered load)",
                f"{ours.turns_per_s:,.1f} / {base.turns_per_s:,.1f} = {paced:.1%}",
                _judged(paced >= TARGET_RATIO),
            ),
            (
                f"saturated: closed loop, no think time, {rounds[0][0].callers:,} callers for each, "
                f"{len(rounds)} rounds (each: {each})",
                f"{ours_saturated:,.1f} / {base_saturated:,.1f} = {saturated:.1%}",
                _judged(saturated >= TARGET_RATIO),
            ),
        ]
    )


BUDGET = (
    ("the server (gunicorn master and workers)", "server"),
    ("of it, the kernel's for the server (system time: sockets, threads' waits)", "server_system"),
    ("the generator (the callers, the platform's side)", "generator"),
    ("PostgreSQL (backends of the bench's database)", "postgres"),
    ("Redis (the server)", "redis"),
    ("the rest (the kernel's work no process is charged for, other processes)", "rest"),
    ("the machine (every process)", "machine"),
)


def budget(phases: Sequence[Phase]) -> list[str]:
    """Where a request's CPU went on the whole machine, saturated: both rounds of each server, and the
    helpline's against the baseline's (not for a figure under 0.01 ms). On a machine the saturated
    phases keep busy, turns a second go as the inverse of the machine's CPU a request."""
    _ours, _base, *saturated = phases
    ours = cpu_ms_per_request(saturated[0::2])
    base = cpu_ms_per_request(saturated[1::2])
    rows = [("CPU per webhook request, saturated (both rounds)", "helpline", "baseline", "helpline / baseline")]
    for label, key in BUDGET:
        mine, theirs = ours[key], base[key]
        rows.append(
            (
                label,
                _ms(_settled(mine)) if mine is not None else "n/a",
                _ms(_settled(theirs)) if theirs is not None else "n/a",
                f"{mine / theirs:.2f}x" if mine is not None and theirs is not None and theirs >= 0.01 else "",
            )
        )
    return table(rows)


def _settled(ms: float) -> float:
    """A figure as printed: the rest, a difference of counters each a clock tick apart, can come out a
    hair below zero; printed as "-0.00 ms" it would read as a fault."""
    return 0.0 if abs(ms) < 0.005 else ms


def targets(ours: Phase) -> list[str]:
    """The issue's targets, judged on the helpline's paced phase; latency only at 1,000 callers."""
    p99 = ours.latency_ms["p99"]
    latency = _judged(p99 < TARGET_P99_MS) if ours.callers >= TARGET_CALLERS else f"not judged at {ours.callers:,}"
    lost = ours.bookings.lost if ours.bookings else 0
    return table(
        [
            ("target (issue 8)", "this run", "judged"),
            (f"p99 turn latency < {TARGET_P99_MS:g} ms with {TARGET_CALLERS:,} callers", _ms(p99), latency),
            ("zero errors (helpline, paced)", f"{ours.error_count:,}", _judged(ours.error_count == 0)),
            ("every booked call's request in the database", f"{lost:,} lost", _judged(lost == 0)),
        ]
    )


def _judged(met: bool) -> str:
    return "met" if met else "MISSED"
