"""`sewamitra bench turns`: where a web process's CPU goes, webhook by webhook.

The callers' mix of `sewamitra bench calls` runs through the helpline's Flask app in this one
process (no gunicorn, no threads, no network between caller and app), then the same calls through the
baseline's app. The process's CPU clock is read around each WSGI call and added to that webhook's row,
so a row holds what the app spent on it: Flask, the signature, Redis, PostgreSQL's client side, the
flow. The database's and Redis's own CPU are not in it; `sewamitra bench calls` measures those.
"""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from flask import Flask

from core.exceptions import SewamitraError
from core.settings import default_config_path, load_settings
from devtools.bench import roundtrips
from devtools.bench.calls import baseline, load, run
from devtools.bench.calls.scripts import Mix, Script, judge
from devtools.bench.output import table
from devtools.bench.roundtrips import RoundTrips
from devtools.bench.scratch import claimed_redis, fresh_database
from devtools.simulator import FlaskTransport, drive
from sewamitra import process
from sewamitra.app import create_app
from storage.db import create_engine

WARM_UP_CALLS = 20  # first uses fill caches (compiled statements, rendered menus): not what a call costs


@dataclass
class Clock:
    """CPU seconds and requests, by webhook, of one app."""

    spent: dict[str, list[float]] = field(default_factory=dict)
    trips: dict[str, RoundTrips] = field(default_factory=dict)  # summed, by webhook
    counter: RoundTrips | None = None  # the process's round trips, counted while the helpline runs
    on: bool = False

    def wrap(self, app: Flask) -> None:
        inner = app.wsgi_app

        def timed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            started, before = time.process_time(), self.counter.copy() if self.counter else None
            try:
                return list(inner(environ, start_response))
            finally:
                if self.on:
                    self.spent.setdefault(webhook(environ), []).append(time.process_time() - started)
                if self.on and self.counter and before:
                    name = webhook(environ)
                    self.trips[name] = self.trips.get(name, RoundTrips()) + (self.counter - before)

        app.wsgi_app = timed  # type: ignore[method-assign]

    @property
    def requests(self) -> int:
        return sum(len(times) for times in self.spent.values())

    @property
    def cpu_s(self) -> float:
        return sum(sum(times) for times in self.spent.values())


@dataclass(frozen=True)
class Result:
    helpline: Clock
    baseline: Clock
    errors: int
    report: str


def webhook(environ: dict[str, Any]) -> str:
    """The row a request counts in: its path, and for a step the turn it answers."""
    return load.webhook(environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""))


def main(
    calls: int,
    *,
    postgres_url: str,
    redis_url: str,
    out: TextIO,
    config: Path | None = None,
    seed: int = 155330,
    platform: str = "twilio",
) -> Result:
    if calls < 1:
        raise SewamitraError("--calls must be at least 1")
    config = config or default_config_path()
    with (
        fresh_database(postgres_url) as database_url,
        claimed_redis(redis_url),
        tempfile.TemporaryDirectory(prefix="sewamitra-bench-turns-") as tmp,
    ):
        settings = load_settings(config, run.bench_environ(database_url, redis_url, Path(tmp), platform))
        engine = create_engine(database_url)
        try:
            mix = run.callers_mix(engine, settings, random.Random(seed))
            scripts: list[Script] = []
            with roundtrips.counted() as counter:
                drawn = _drawn(mix, WARM_UP_CALLS + calls, scripts)
                helpline, errors = measure(create_app(settings), drawn, mix, platform, counter=counter)
            base_app = baseline.create_app(platform, run.PUBLIC_URL)
            base, base_errors = measure(base_app, iter(scripts), None, platform)  # the same calls
        finally:
            engine.dispose()
    text = report(helpline, base, calls, errors + base_errors, platform)
    out.write(text)
    return Result(helpline, base, errors + base_errors, text)


def measure(
    app: Flask, scripts: Iterator[Script], mix: Mix | None, platform: str, *, counter: RoundTrips | None = None
) -> tuple[Clock, int]:
    """Every script as a call into `app` (the helpline's when `mix` is given), placed by `platform`'s
    rules and signed as it signs; the clock runs after the warm-up calls. A caller who heard a request
    number may ring again, as in `sewamitra bench calls`, to hear it read back."""
    clock, errors, helpline = Clock(counter=counter), 0, mix is not None
    clock.wrap(app)
    process.settle()
    transport = FlaskTransport(app.test_client(), run.PUBLIC_URL, run.AUTH_TOKEN, sign=load.signer(platform))
    for index, script in enumerate(scripts):
        clock.on = index >= WARM_UP_CALLS
        call_sid = str(uuid.UUID(int=index)) if platform == "plivo" else f"CA{index:032x}"
        setup = load.call_setup(platform, run.PUBLIC_URL, script.from_number, call_sid, run.ACCOUNT_SID)
        verdict = judge(script, drive(setup.steps(script.keys), transport), helpline=helpline)
        errors += len(verdict.errors)
        if mix is not None and verdict.booked and not verdict.errors:
            mix.booked(script.from_number)
    return clock, errors


def _drawn(mix: Mix, count: int, drawn: list[Script]) -> Iterator[Script]:
    """`count` callers from the mix, each drawn when the one before has hung up, and kept in `drawn`."""
    for _ in range(count):
        drawn.append(mix.next())
        yield drawn[-1]


def report(helpline: Clock, base: Clock, calls: int, errors: int, platform: str = "twilio") -> str:
    rows = [
        ("webhook", "requests", "CPU per request", "share of the helpline's CPU", "PostgreSQL round trips", "Redis")
    ]
    for name, times in sorted(helpline.spent.items(), key=lambda item: -sum(item[1])):
        trips = helpline.trips.get(name, RoundTrips())
        rows.append(
            (
                name,
                f"{len(times):,}",
                _ms(sum(times) / len(times)),
                f"{sum(times) / helpline.cpu_s:.1%}",
                f"{trips.postgres / len(times):.2f}",
                f"{trips.redis / len(times):.2f}",
            )
        )
    ours, theirs = helpline.cpu_s / helpline.requests, base.cpu_s / base.requests
    lines = [
        "",
        "# sewamitra bench turns",
        "",
        f"- calls: {calls:,} of the callers' mix of `sewamitra bench calls`, "
        f"after {WARM_UP_CALLS} not counted, on {platform.capitalize()}'s webhooks; one process, the CPU "
        "clock around each WSGI call",
        "",
    ]
    lines += table(rows)
    lines += [
        "",
        *table(
            [
                ("app", "requests", "CPU per request", "against the baseline"),
                ("helpline", f"{helpline.requests:,}", _ms(ours), f"{ours / theirs:.1f}x"),
                ("baseline (one fixed menu)", f"{base.requests:,}", _ms(theirs), "1.0x"),
            ]
        ),
        "",
        f"errors the callers heard: {errors}",
        "",
    ]
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"
