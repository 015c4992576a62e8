"""`sewamitra bench turns`: where a web process's CPU goes, webhook by webhook.

The callers' mix of `sewamitra bench calls` runs through the helpline's webhooks' app (`webhook_app`,
as a worker of `sewamitra serve` builds it, without the console's and the API's) in this one process
(no gunicorn, no threads, no network between caller and app), then the same calls through the
baseline's app. The process's CPU clock is read around each WSGI call and added to that webhook's row,
so a row holds what the app spent on it: Flask, the signature, Redis, PostgreSQL's client side, the
flow. The database's and Redis's own CPU are not in it; `sewamitra bench calls` measures those.
"""

from __future__ import annotations

import io
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
from sewamitra.app import webhook_app
from storage.db import create_engine

WARM_UP_CALLS = 20  # first uses fill caches (compiled statements, rendered menus): not what a call costs
REPLAYED = 20  # requests of each webhook kept to replay (`--replays`)
REPLAY_ROUNDS = 5  # the best round is taken: the one the machine disturbed least


@dataclass
class Clock:
    """CPU seconds and requests, by webhook, of one app."""

    spent: dict[str, list[float]] = field(default_factory=dict)
    trips: dict[str, RoundTrips] = field(default_factory=dict)  # summed, by webhook
    counter: RoundTrips | None = None  # the process's round trips, counted while the helpline runs
    on: bool = False
    keep: Callable[[str], bool] | None = None  # which webhooks' requests to keep for `replay`
    kept: dict[str, list[tuple[dict[str, Any], bytes, bytes]]] = field(default_factory=dict)  # request, answer
    app: Callable[..., Iterable[bytes]] | None = None  # the app's own WSGI callable, under the clock

    def wrap(self, app: Flask) -> None:
        inner = self.app = app.wsgi_app

        def timed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            name = webhook(environ)
            body = self._body(environ) if self.on and self.keep and self.keep(name) else None
            before = self.counter.copy() if self.counter else None  # the bench's own work: off the clock
            started = time.process_time()
            answer: list[bytes] = []
            try:
                answer = list(inner(environ, start_response))
                return answer
            finally:
                if self.on:
                    self.spent.setdefault(name, []).append(time.process_time() - started)
                if self.on and self.counter and before:
                    trips = self.counter - before
                    self.trips[name] = self.trips.get(name, RoundTrips()) + trips
                    if trips.statements or trips.redis:  # a request that read or wrote: not replayable
                        body = None
                if body is not None and len(kept := self.kept.setdefault(name, [])) < REPLAYED:
                    kept.append((environ, body, b"".join(answer)))

        app.wsgi_app = timed  # type: ignore[method-assign]

    @staticmethod
    def _body(environ: dict[str, Any]) -> bytes:
        """The request's body, read and put back for the app to read."""
        body: bytes = environ["wsgi.input"].read()
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    def replay(self, name: str, times: int) -> float:
        """CPU seconds a request of `name`'s kept requests takes, each sent `times` times again in turn: the
        best of REPLAY_ROUNDS rounds' means. Only requests that made no round trip are kept by the helpline,
        so the same request again does the same work (a menu turn that commits nothing); an answer that
        is not the one first given stops the bench."""
        assert self.app is not None, "not wrapped"
        requests = self.kept[name]
        best = float("inf")
        for _ in range(REPLAY_ROUNDS):
            environs = [
                {**environ, "wsgi.input": io.BytesIO(body)} for _ in range(times) for environ, body, _ in requests
            ]
            answers: list[bytes] = []
            started = time.process_time()
            for environ in environs:
                answers.append(b"".join(self.app(environ, _ignored)))
            best = min(best, (time.process_time() - started) / len(environs))
            if answers != [answer for _ in range(times) for _, _, answer in requests]:
                raise SewamitraError(f"{name}: a request sent again was not answered as it was the first time")
        return best

    @property
    def requests(self) -> int:
        return sum(len(times) for times in self.spent.values())

    @property
    def cpu_s(self) -> float:
        return sum(sum(times) for times in self.spent.values())


def _ignored(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], object]:
    return lambda data: None


@dataclass(frozen=True)
class Replayed:
    """A webhook's requests that commit nothing, sent again: CPU seconds a request, each app's best round."""

    webhook: str
    requests: int
    helpline: float
    baseline: float


@dataclass(frozen=True)
class MenuMemory:
    """The helpline's menu turns answered from memory (`ivr.menuturns`) over its calls, warm-up included."""

    hits: int
    misses: int
    kept: int

    @property
    def asked(self) -> int:
        return self.hits + self.misses


@dataclass(frozen=True)
class Result:
    helpline: Clock
    baseline: Clock
    errors: int
    report: str
    replayed: tuple[Replayed, ...] = ()
    remembered: MenuMemory = MenuMemory(0, 0, 0)


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
    replays: int = 0,
) -> Result:
    if calls < 1:
        raise SewamitraError("--calls must be at least 1")
    if replays < 0:
        raise SewamitraError("--replays must be 0 or more")
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
            keep = _menu_turn if replays else None
            with roundtrips.counted() as counter:
                drawn = _drawn(mix, WARM_UP_CALLS + calls, scripts)
                app = webhook_app(settings)  # what a worker of `sewamitra serve` answers webhooks with (`app.Helpline`)
                helpline, errors = measure(app, drawn, mix, platform, counter=counter, keep=keep)
            memory = app.extensions["ivr"].menu_turns  # before the replays, which ask the same turns again
            remembered = MenuMemory(memory.hits, memory.misses, len(memory))
            base_app = baseline.create_app(platform, run.PUBLIC_URL)
            base, base_errors = measure(base_app, iter(scripts), None, platform, keep=keep)  # the same calls
            replayed = _replayed(helpline, base, replays)
        finally:
            engine.dispose()
    text = report(helpline, base, calls, errors + base_errors, platform, replayed, replays, remembered)
    out.write(text)
    return Result(helpline, base, errors + base_errors, text, replayed, remembered)


def _menu_turn(name: str) -> bool:
    """A step's request, of a turn that may commit nothing (the helpline keeps those that did not); the
    baseline's steps, which carry no turn (it answers every one with its one menu)."""
    return _path(name).endswith("/step")


def _path(name: str) -> str:
    """A row's webhook path, without the turn: '/twilio/voice/step (turn 2)' -> '/twilio/voice/step'."""
    return name.split(" (", 1)[0]


def _replayed(helpline: Clock, base: Clock, replays: int) -> tuple[Replayed, ...]:
    """Each of the helpline's kept webhooks replayed, against the baseline's requests to the same path."""
    theirs: dict[str, float] = {}
    replayed = []
    for name, kept in sorted(helpline.kept.items()):
        path = _path(name)
        if path not in base.kept:
            continue
        if path not in theirs:
            theirs[path] = base.replay(path, replays)
        replayed.append(Replayed(name, len(kept), helpline.replay(name, replays), theirs[path]))
    return tuple(replayed)


def measure(
    app: Flask,
    scripts: Iterator[Script],
    mix: Mix | None,
    platform: str,
    *,
    counter: RoundTrips | None = None,
    keep: Callable[[str], bool] | None = None,
) -> tuple[Clock, int]:
    """Every script as a call into `app` (the helpline's when `mix` is given), placed by `platform`'s
    rules and signed as it signs; the clock runs after the warm-up calls. A caller who heard a request
    number may ring again, as in `sewamitra bench calls`, to hear it read back."""
    clock, errors, helpline = Clock(counter=counter, keep=keep), 0, mix is not None
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


def report(
    helpline: Clock,
    base: Clock,
    calls: int,
    errors: int,
    platform: str = "twilio",
    replayed: tuple[Replayed, ...] = (),
    replays: int = 0,
    remembered: MenuMemory | None = None,
) -> str:
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
    ]
    if replayed:
        lines += [
            f"- replayed: up to {REPLAYED} requests of each menu turn that made no round trip, each sent "
            f"{replays} times again in turn, the best of {REPLAY_ROUNDS} rounds; the baseline's requests "
            "to the same path likewise",
            "",
            *table(
                [("webhook, replayed", "requests", "helpline", "baseline", "helpline / baseline")]
                + [
                    (r.webhook, str(r.requests), _ms(r.helpline), _ms(r.baseline), f"{r.helpline / r.baseline:.1f}x")
                    for r in replayed
                ]
            ),
            "",
        ]
    if remembered is not None and remembered.asked:
        lines += [
            f"- menu turns answered from memory (`ivr.menuturns`), of the steps whose URL carried a session, "
            f"warm-up included: {remembered.hits:,} of {remembered.asked:,} "
            f"({remembered.hits / remembered.asked:.1%}); {remembered.kept:,} turns kept",
            "",
        ]
    lines += [f"errors the callers heard: {errors}", ""]
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"
