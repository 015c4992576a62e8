"""The developer tools' commands of `sewamitra`: the one-box demo (`up`), demo data, a simulated
call, signatures for curl, the benchmarks, the soak and core/data's PIN code files. `sewamitra.cli`
finds them through the `sewamitra.commands` entry points, so the runtime never imports this package."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from core.exceptions import SewamitraError
from core.settings import Settings
from sewamitra import localsecrets
from sewamitra.cli import DEFAULT_PORT, _session, _settings
from storage import db

F = TypeVar("F", bound=Callable[..., Any])


@click.command()
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="web port")
@click.option("--host", default="127.0.0.1", show_default=True, help="address the web app listens on")
@click.option("--no-seed", is_flag=True, help="do not add demo data to an empty database")
@click.pass_context
def up(ctx: click.Context, port: int, host: str, no_seed: bool) -> None:
    """Run the whole helpline: web app, RQ workers and scheduler (and Redis, if none is set)."""
    from devtools import up as one_box

    sys.exit(one_box.up(_settings(ctx), port=port, host=host, seed_demo=not no_seed))


@click.command()
@click.option("--seed", "seed_number", default=155330, show_default=True, help="random seed")
@click.option("--providers", default=80, show_default=True)
@click.option("--workers", default=800, show_default=True)
@click.pass_context
def seed(ctx: click.Context, seed_number: int, providers: int, workers: int) -> None:
    """Fill an empty database with Uttar Pradesh demo data (districts, agencies, workers)."""
    from devtools import seed as demo

    settings = _settings(ctx)
    db.upgrade(db.create_engine(settings.sqlalchemy_url))
    with _session(settings) as session, click.progressbar(length=workers, label="workers") as bar, _reported():
        summary = demo.seed(
            session,
            settings,
            seed=seed_number,
            providers=providers,
            workers=workers,
            progress=lambda done, _total: bar.update(done - bar.pos),
        )
    click.echo(f"seeded: {summary}")


@click.command()
@click.option("--url", default=None, help="where the helpline runs (default: public_url)")
@click.option("--from", "from_number", default="+919876543210", show_default=True, help="caller ID, or anonymous")
@click.option(
    "--keys",
    default=None,
    help="a script such as 2,1,1,226001#,1,9,say:6# ('-' = silence, say:N = N s spoken at a beep); else typed",
)
@click.option(
    "--platform",
    type=click.Choice(["twilio", "plivo"]),
    default=None,
    help="whose rules and signatures the call follows  [default: telephony.platform]",
)
@click.pass_context
def simulate(ctx: click.Context, url: str | None, from_number: str, keys: str | None, platform: str | None) -> None:
    """Place a call from the terminal, as Twilio or Plivo would, and print what the caller hears; the
    call follows the helpline's REST moves of it (into an agent's room) when `up` runs the platform's sandbox."""
    from devtools.simulator import simulate_command
    from devtools.up import running_sandbox, served_public_url

    settings = _settings(ctx)
    platform = platform or settings.telephony.platform
    public_url = served_public_url(settings)
    if platform == "plivo":
        token = settings.plivo.auth_token or _local_secret(settings, "PLIVO_AUTH_TOKEN")
        account = ""
    else:
        token = settings.twilio.auth_token or _local_token(settings)
        local_account = localsecrets.path(settings.data_dir, "TWILIO_ACCOUNT_SID")  # `up`'s, for its sandbox
        account = settings.twilio.account_sid or (local_account.read_text().strip() if local_account.exists() else "")
    transcript = simulate_command(
        url or public_url,
        public_url=public_url,
        auth_token=token,
        from_number=from_number,
        keys=keys,
        out=sys.stdout,
        inp=sys.stdin,
        account_sid=account,
        platform=platform,
        sandbox_url=running_sandbox(settings.data_dir),
    )
    if transcript.errors:
        sys.exit(1)


# The benchmarks' own services: a PostgreSQL server to make a database on, and an empty Redis database.
POSTGRES_URL_OPTION = click.option(
    "--postgres-url",
    default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    show_default=True,
    help="a PostgreSQL server; the bench makes and drops a database of its own",
)


def redis_url_option(database: int) -> Callable[[F], F]:
    return click.option(
        "--redis-url", default=f"redis://127.0.0.1:6379/{database}", show_default=True, help="an empty Redis database"
    )


@click.group(name="bench")
def bench_group() -> None:
    """Benchmarks: measured figures next to a baseline measured in the same run."""


@bench_group.command(name="dispatch")
@click.option("--workers", default=100_000, show_default=True, help="workers indexed")
@click.option("--requests", "requests_", default=2_000, show_default=True, help="requests dispatched end to end")
@click.option("--matches", default=2_000, show_default=True, help="request points matched")
@click.option("--processes", default=2, show_default=True, help="RQ worker processes")
@click.option("--sends", default=1_000, show_default=True, help="SMS each REST client sends, on each platform")
@click.option("--seed", default=155330, show_default=True)
@POSTGRES_URL_OPTION
@redis_url_option(12)
def bench_dispatch(
    workers: int,
    requests_: int,
    matches: int,
    processes: int,
    sends: int,
    seed: int,
    postgres_url: str,
    redis_url: str,
) -> None:
    """Matching latency (p50/p99) and requests offered per second through real RQ and Redis."""
    from devtools.bench.dispatch import main as run_bench

    with _reported():
        run_bench(
            workers=workers,
            requests=requests_,
            matches=matches,
            processes=processes,
            sends=sends,
            seed=seed,
            postgres_url=postgres_url,
            redis_url=redis_url,
            out=sys.stdout,
        )


@bench_group.command(name="calls")
@click.option("--callers", type=int, default=None, help="calls in progress at once  [default: 1000; --short: 30]")
@click.option("--ramp", "ramp_s", type=float, default=None, help="seconds to bring every caller on  [default: 120]")
@click.option("--hold", "hold_s", type=float, default=None, help="seconds measured with every caller on  [default: 60]")
@click.option(
    "--think",
    "think_s",
    type=float,
    default=None,
    help="a caller's mean pause before each key item, in seconds  [default: 2]",
)
@click.option(
    "--listen/--no-listen",
    default=None,
    help="callers hear each prompt out before they think and key, as Twilio paces a call; "
    "--no-listen: they key over every prompt  [default: --listen]",
)
@click.option(
    "--saturation",
    "saturation_s",
    type=float,
    default=None,
    help="seconds of each closed-loop phase (no think time)  [default: 20]",
)
@click.option(
    "--saturation-callers",
    type=int,
    default=None,
    help="calls at once in each closed-loop phase, the same for both servers  [default: 50]",
)
@click.option("--workers", type=int, default=None, help="gunicorn processes, for both servers  [default: 2]")
@click.option(
    "--server-niceness",
    type=int,
    default=None,
    help="both servers this much nicer than the callers, who stand for the platform: they then wait "
    "behind no server's threads for a core (an experiment; docs/reliability.md)  [default: 0]",
)
@click.option("--seed", type=int, default=None, help="random seed of the callers' mix  [default: 155330]")
@click.option("--short", is_flag=True, help="a small run for CI: 30 callers, seconds not minutes")
@click.option(
    "--platform",
    type=click.Choice(["twilio", "plivo"]),
    default=None,
    help="the helpline on Twilio's or Plivo's webhooks, called by that platform's rules  [default: twilio]",
)
@POSTGRES_URL_OPTION
@redis_url_option(11)
def bench_calls(short: bool, postgres_url: str, redis_url: str, **sizes: Any) -> None:
    """Simulated callers through the signed webhooks under gunicorn: turns/s, latency, errors, bookings."""
    from dataclasses import replace

    from devtools.bench.calls import run

    plan = replace(run.SHORT if short else run.Plan(), **{k: v for k, v in sizes.items() if v is not None})
    with _reported():
        result = run.main(plan, postgres_url=postgres_url, redis_url=redis_url, out=sys.stdout)
    if result.failed:
        click.echo(f"FAILED: {result.errors} error(s), {result.lost} booking(s) missing from the database", err=True)
        sys.exit(1)


@bench_group.command(name="checkout")
@click.option(
    "--statements", type=int, default=3_000, show_default=True, help="checkouts a round, each with one statement"
)
@click.option("--rounds", type=int, default=6, show_default=True, help="rounds of each engine, taking turns")
@POSTGRES_URL_OPTION
def bench_checkout(statements: int, rounds: int, postgres_url: str) -> None:
    """A pooled connection taken and one statement run: the pool's pre-ping against the poll of its socket."""
    from devtools.bench import checkout

    with _reported():
        checkout.main(statements, rounds, postgres_url=postgres_url, out=sys.stdout)


@bench_group.command(name="commits")
@click.option("--turns", type=int, default=2_000, show_default=True, help="turns a round, each way")
@click.option("--rounds", type=int, default=6, show_default=True, help="rounds of each way, taking turns")
@POSTGRES_URL_OPTION
@redis_url_option(11)
def bench_commits(turns: int, rounds: int, postgres_url: str, redis_url: str) -> None:
    """A turn that commits: its call state, through redis-py's client against direct commands; a first
    caller's language turn, statement by statement against one statement."""
    from devtools.bench import commits

    with _reported():
        commits.main(turns, rounds, postgres_url=postgres_url, redis_url=redis_url, out=sys.stdout)


@bench_group.command(name="turns")
@click.option("--calls", type=int, default=400, show_default=True, help="calls measured, after 20 not counted")
@click.option("--seed", type=int, default=155330, show_default=True, help="random seed of the callers' mix")
@click.option(
    "--platform",
    type=click.Choice(["twilio", "plivo"]),
    default="twilio",
    show_default=True,
    help="the helpline on Twilio's or Plivo's webhooks, called by that platform's rules",
)
@click.option(
    "--replays",
    type=int,
    default=0,
    show_default=True,
    help="send each menu turn that made no round trip this many times again, both apps, for steadier figures",
)
@POSTGRES_URL_OPTION
@redis_url_option(11)
def bench_turns(calls: int, seed: int, platform: str, postgres_url: str, redis_url: str, replays: int) -> None:
    """CPU per webhook in one process, by webhook, the callers' mix of `bench calls`, against the baseline's."""
    from devtools.bench.calls import turns

    with _reported():
        result = turns.main(
            calls,
            postgres_url=postgres_url,
            redis_url=redis_url,
            out=sys.stdout,
            seed=seed,
            platform=platform,
            replays=replays,
        )
    if result.errors:
        click.echo(f"FAILED: the callers heard {result.errors} error(s)", err=True)
        sys.exit(1)


@click.command()
@click.option("--minutes", type=float, default=None, help="minutes of load  [default: 12; --short: 1.25]")
@click.option("--callers", type=int, default=None, help="callers on the line at once  [default: 15; --short: 6]")
@click.option("--seed", type=int, default=None, help="random seed of the callers and the people  [default: 155330]")
@click.option(
    "--short", is_flag=True, help="the form CI runs: every fault once in about a minute, offer timeout 10 s, sweep 5 s"
)
@click.option("--logs", type=click.Path(path_type=Path), default=None, help="keep `up`'s output in this directory")
@POSTGRES_URL_OPTION
def soak(short: bool, postgres_url: str, logs: Path | None, **sizes: Any) -> None:
    """Mixed load and scheduled faults on `sewamitra up`, then an audit of the invariants; fails if one fails."""
    from dataclasses import replace

    from devtools.soak import run

    plan = replace(run.SHORT if short else run.Plan(), **{k: v for k, v in sizes.items() if v is not None})
    with _reported():
        result = run.main(plan, postgres_url=postgres_url, out=sys.stdout, logs=logs)
    if result.failed:
        click.echo("FAILED: " + "; ".join(i.name for i in result.invariants if not i.held), err=True)
        sys.exit(1)


@click.command(name="twilio-signature")
@click.argument("path")
@click.argument("params", nargs=-1)
@click.option("--url", "public_url", default=None, help="the public URL to sign over (default: see --port)")
@click.option(
    "--port",
    type=int,
    default=None,
    help="the port of `up --port` if public_url is the local default (default: the running `up`'s, else public_url)",
)
@click.pass_context
def twilio_signature(
    ctx: click.Context, path: str, params: tuple[str, ...], public_url: str | None, port: int | None
) -> None:
    """Print the X-Twilio-Signature for a POST of KEY=VALUE PARAMS to PATH (for curl tests); the URL
    signed over goes to standard error."""
    from twilio.request_validator import RequestValidator

    from devtools.up import signing_url

    settings = _settings(ctx)
    token = settings.twilio.auth_token or _local_token(settings)
    if any("=" not in param for param in params):
        raise click.UsageError("each parameter is KEY=VALUE")
    form = dict(param.split("=", 1) for param in params)
    url = signing_url(settings, url=public_url, port=port) + (path if path.startswith("/") else urlsplit(path).path)
    click.echo(RequestValidator(token).compute_signature(url, form))
    click.echo(f"signed over {url}", err=True)


@click.group(name="pincodes")
def pincodes_group() -> None:
    """The PIN code files of core/data, from India Post's directory (the indian-pincode packages)."""


@pincodes_group.command(name="build")
def pincodes_build() -> None:
    """Work out every PIN code's place and every district's middle again, into core/data."""
    from core import pincodes

    try:
        from devtools import pincode_data
    except ImportError as missing:  # the packages are a dev dependency
        raise click.ClickException(f"{missing}: install the dev extra, pip install -e '.[dev]'") from None
    pincode_data.build().write()
    click.echo(f"wrote {pincodes.PLACES} and {pincodes.DISTRICT_CENTRES}")


@contextmanager
def _reported() -> Iterator[None]:
    """A refusal of the tools as a one-line error on the terminal, not a traceback."""
    try:
        yield
    except SewamitraError as exc:
        raise click.ClickException(str(exc)) from None


def _local_token(settings: Settings) -> str:
    return _local_secret(settings, "TWILIO_AUTH_TOKEN")


def _local_secret(settings: Settings, env_name: str) -> str:
    file = localsecrets.path(settings.data_dir, env_name)
    if not file.exists():
        raise click.ClickException(f"{env_name} is not set and `sewamitra up` has not made a local one")
    return file.read_text().strip()
