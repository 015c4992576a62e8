"""`sewamitra bench checkout`: what a request pays to take a pooled PostgreSQL connection and run its
first statement, with the pool's pre-ping (SQLAlchemy's `pool_pre_ping`: a round trip before the
statement) as the baseline, and with the poll of the connection's socket the helpline checks it by
(`storage.db._ended_by_the_server`). The two engines take turns, round by round, in one process, the
first of each round alternating, so whatever slows the machine falls on both; the process's CPU clock
and the wall clock are read around each round. Nothing is written: the statement is `SELECT 1`."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import TextIO

import sqlalchemy as sa

from core.exceptions import SewamitraError
from devtools.bench import scratch
from devtools.bench.output import describe_machine, heading, table
from storage.db import autocommitted, create_engine

WARM_UP = 200  # first checkouts open the connection and fill the statement cache: not what a request costs
SELECT_ONE = sa.text("SELECT 1")
BASELINE, OURS = "pre-ping (pool_pre_ping, the baseline)", "poll of the socket (the helpline's)"


@dataclass
class Clocks:
    """Microseconds per checkout and statement, one figure a round."""

    cpu_us: list[float] = field(default_factory=list)
    wall_us: list[float] = field(default_factory=list)


def main(statements: int, rounds: int, *, postgres_url: str, out: TextIO) -> dict[str, Clocks]:
    """Both engines on the server `postgres_url` names, `rounds` rounds each; print the report and
    return each one's clocks."""
    if statements < 1 or rounds < 2:
        raise SewamitraError("--statements must be at least 1 and --rounds at least 2")
    url = scratch.with_driver(postgres_url)
    engines = {BASELINE: create_engine(url, pool_pre_ping=True), OURS: create_engine(url)}
    clocks = {name: Clocks() for name in engines}
    try:
        for engine in engines.values():
            timed(engine, WARM_UP)
        for round_ in range(rounds):
            order = list(engines.items())
            for name, engine in order if round_ % 2 == 0 else reversed(order):
                cpu_s, wall_s = timed(engine, statements)
                clocks[name].cpu_us.append(cpu_s / statements * 1e6)
                clocks[name].wall_us.append(wall_s / statements * 1e6)
        machine = describe_machine(engines[OURS], None)
    finally:
        for engine in engines.values():
            engine.dispose()
    out.write(report(machine, {"statements": statements, "rounds": rounds}, clocks))
    return clocks


def timed(engine: sa.Engine, statements: int) -> tuple[float, float]:
    """CPU and wall seconds of `statements` checkouts, each with one statement, as a request's first."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(statements):
        with autocommitted(engine) as connection:
            connection.execute(SELECT_ONE).scalar_one()
    return time.process_time() - cpu, time.perf_counter() - wall


def report(machine: dict[str, str], parameters: dict[str, int], clocks: dict[str, Clocks]) -> str:
    base = clocks[BASELINE]
    rows = [("checkout and one statement", "CPU per request, median (range)", "wall time", "CPU against the baseline")]
    for name, measured in clocks.items():
        # each round's ratio to the baseline's beside it in time, then their median
        ratios = [ours / theirs for ours, theirs in zip(measured.cpu_us, base.cpu_us, strict=True)]
        rows.append((name, _spread(measured.cpu_us), _spread(measured.wall_us), f"{statistics.median(ratios):.2f}x"))
    return "\n".join([*heading("sewamitra bench checkout", machine, parameters), "", *table(rows), ""]) + "\n"


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} µs ({min(values):.1f}–{max(values):.1f})"
