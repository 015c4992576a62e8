"""The `sewamitra` command: run, administer and seed the helpline."""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from sqlmodel import Session

from sewamitra import localsecrets, logs
from storage import db, redisdb
from storage.exceptions import SewamitraError
from storage.models import ApiRole, Role
from storage.settings import CONFIG_ENV, Settings, default_config_path, load_settings

log = logging.getLogger("sewamitra")
DEFAULT_PORT = 8155


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj["settings"]
    return settings


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    engine = db.create_engine(settings.sqlalchemy_url)
    try:
        with db.session_scope(engine) as session:
            yield session
    finally:
        engine.dispose()


@click.group()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="config.yaml to use")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """Sewamitra helpline: telephony back office for booking verified home-service workers."""
    logs.configure()
    path = (config_path or default_config_path()).resolve()
    os.environ[CONFIG_ENV] = str(path)  # every child process reads the same file
    try:
        ctx.obj = {"settings": load_settings(path)}
    except SewamitraError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="web port")
@click.option("--host", default="127.0.0.1", show_default=True, help="address the web app listens on")
@click.option("--no-seed", is_flag=True, help="do not add demo data to an empty database")
@click.pass_context
def up(ctx: click.Context, port: int, host: str, no_seed: bool) -> None:
    """Run the whole helpline: web app, RQ workers and scheduler (and Redis, if none is set)."""
    from sewamitra import startup

    sys.exit(startup.up(_settings(ctx), port=port, host=host, seed_demo=not no_seed))


@main.command()
@click.option("--port", default=DEFAULT_PORT, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--workers", type=int, default=None, help="gunicorn processes (default: workers.web)")
@click.pass_context
def serve(ctx: click.Context, port: int, host: str, workers: int | None) -> None:
    """Serve the web app (webhooks, console, API) with gunicorn."""
    from sewamitra.web import serve as run_gunicorn

    settings = _settings(ctx)
    run_gunicorn(settings, host=host, port=port, workers=workers or settings.workers.web)


@main.command()
@click.option("--burst", is_flag=True, help="stop when the queues are empty")
@click.option("--name", default=None,
              help="worker name, unique among running workers; a killed worker's stays taken for minutes "
                   "(default: a new random one)")  # fmt: skip
@click.pass_context
def worker(ctx: click.Context, burst: bool, name: str | None) -> None:
    """Run an RQ worker for the dispatch and default queues; it waits out a Redis outage."""
    from dispatch import context
    from dispatch.queues import work
    from ivr.gateway import telephony
    from storage.db import create_engine

    settings = _settings(ctx)
    connection = _redis(settings)
    context.install(context.JobContext(settings, create_engine(settings.sqlalchemy_url), connection,
                                       telephony(settings)))  # fmt: skip
    work(connection, name=name, burst=burst)


@main.command()
@click.pass_context
def scheduler(ctx: click.Context) -> None:
    """Run the scheduler that enqueues periodic jobs (sweeps, heartbeats); it waits out a Redis outage."""
    from dispatch.schedule import run

    settings = _settings(ctx)
    run(_redis(settings), settings)


def _redis(settings: Settings) -> Any:
    try:
        return redisdb.connect(settings)
    except SewamitraError as exc:
        raise click.ClickException(str(exc)) from None


@main.group(name="db")
def db_group() -> None:
    """Database schema."""


@db_group.command()
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Migrate the database to the newest schema."""
    settings = _settings(ctx)
    engine = db.create_engine(settings.sqlalchemy_url)
    db.upgrade(engine)
    click.echo(f"database at revision {db.current_revision(engine)}: {engine.url.render_as_string()}")
    engine.dispose()


@main.command()
@click.option("--seed", "seed_number", default=155330, show_default=True, help="random seed")
@click.option("--providers", default=80, show_default=True)
@click.option("--workers", default=800, show_default=True)
@click.pass_context
def seed(ctx: click.Context, seed_number: int, providers: int, workers: int) -> None:
    """Fill an empty database with Uttar Pradesh demo data (districts, agencies, workers)."""
    from storage import demo

    settings = _settings(ctx)
    db.upgrade(db.create_engine(settings.sqlalchemy_url))
    with _session(settings) as session, click.progressbar(length=workers, label="workers") as bar:
        try:
            summary = demo.seed(
                session, settings, seed=seed_number, providers=providers, workers=workers,
                progress=lambda done, _total: bar.update(done - bar.pos),
            )  # fmt: skip
        except SewamitraError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"seeded: {summary}")


@main.group(name="import")
def import_group() -> None:
    """Bulk imports."""


@import_group.command(name="workers")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@click.pass_context
def import_workers(ctx: click.Context, csv_file: Any) -> None:
    """Import workers from CSV; bad rows are reported and skipped (exit status 1 if any)."""
    from storage.importer import import_workers as run_import

    settings = _settings(ctx)
    with _session(settings) as session, click.progressbar(length=0, label="rows") as bar:
        try:
            report = run_import(session, settings, csv_file, progress=lambda done, total: _advance(bar, done, total))
        except SewamitraError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"imported {report.imported} worker(s)")
    _reindex_workers(settings)
    if report.providers_created:
        click.echo(f"new provider agencies: {', '.join(report.providers_created)}")
    for error in report.errors:
        click.echo(f"row {error.row}: {error.reason}", err=True)
    if report.errors:
        click.echo(f"{len(report.errors)} row(s) skipped", err=True)
        sys.exit(1)


def _reindex_workers(settings: Settings) -> None:
    """Ask the workers to rebuild the dispatch index; without a Redis, the next start does it."""
    if not settings.redis_url:
        return
    from dispatch import jobs
    from dispatch.queues import QueueName, queue

    try:
        queue(redisdb.connect(settings), QueueName.DISPATCH).enqueue(jobs.rebuild_index, job_id="rebuild-index")
    except Exception as exc:  # the import is done; the index catches up at the next start
        click.echo(f"could not queue the index rebuild ({exc}); it happens at the next start", err=True)


def _advance(bar: Any, done: int, total: int) -> None:
    bar.length = total
    bar.update(done - bar.pos)


@main.command(name="create-user")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--full-name", default=None)
@click.option("--phone", default=None, help="desk phone the console rings for this agent")
@click.option("--provider", default=None, help="agency name (provider role only)")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.pass_context
def create_user(
    ctx: click.Context, username: str, role: str, full_name: str | None, phone: str | None,
    provider: str | None, password_stdin: bool,
) -> None:  # fmt: skip
    """Add a console user. Without --password-stdin you are asked, or one is made and shown."""
    from storage.users import create_user as add_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password = secrets.token_urlsafe(12)
        click.echo(f"password: {password}")
    with _session(_settings(ctx)) as session:
        try:
            user = add_user(session, username, Role(role), password, full_name=full_name, phone=phone,
                            provider=provider)  # fmt: skip
        except SewamitraError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"created {user.role.value} {user.username!r}")


@main.command(name="create-token")
@click.argument("client")
@click.option("--role", type=click.Choice([r.value for r in ApiRole]), required=True,
              help="partner: files and follows its own requests; agent/supervisor/admin: the helpline's systems; "
                   "provider: an agency's own workers")  # fmt: skip
@click.option("--provider", default=None, help="agency name (provider role only)")
@click.option("--expires-days", type=int, default=None, help="the token stops working after this many days")
@click.pass_context
def create_token(ctx: click.Context, client: str, role: str, provider: str | None, expires_days: int | None) -> None:
    """Make a bearer token for another system (JSON API, Open311 api_key); it is shown once."""
    from storage.tokens import create_token as make_token

    with _session(_settings(ctx)) as session:
        try:
            issued = make_token(session, client, ApiRole(role), provider=provider, expires_days=expires_days)
        except SewamitraError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"token for {issued.token.client} ({issued.token.role.value}); keep it secret, it is not shown again:")
    click.echo(issued.secret)


@main.command(name="revoke-token")
@click.argument("token")
@click.pass_context
def revoke_token(ctx: click.Context, token: str) -> None:
    """Stop a token working: give it whole, or its first characters as create-token printed them."""
    from storage.tokens import revoke

    with _session(_settings(ctx)) as session:
        try:
            revoked = revoke(session, token)
        except SewamitraError as exc:
            raise click.ClickException(str(exc)) from None
    for found in revoked:
        click.echo(f"revoked {found.prefix}… of {found.client} ({found.role.value})")


@main.group(name="flows")
def flows_group() -> None:
    """Call flows (flows/definitions/*.yaml)."""


@flows_group.command(name="check")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def flows_check(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """Validate every flow (or the FILES given): routes, reachability, prompts in every language."""
    from flows import definition
    from flows.exceptions import FlowError
    from ivr.voice import service_choices

    settings = _settings(ctx)
    paths = files or tuple(sorted(definition.DEFINITIONS.glob("*.yaml")))
    failed = 0
    for path in paths:
        try:
            flow = definition.load(path.stem, languages=[lang.code for lang in settings.languages],
                                   services=service_choices(settings), directory=path.parent)  # fmt: skip
        except FlowError as exc:
            failed += 1
            click.echo(f"FAIL {exc}", err=True)
        else:
            click.echo(f"ok   {path} ({len(flow.nodes)} nodes)")
    if failed:
        raise click.ClickException(f"{failed} of {len(paths)} flow file(s) are broken")


@main.command()
@click.option("--url", default=None, help="where the helpline runs (default: public_url)")
@click.option("--from", "from_number", default="+919876543210", show_default=True, help="caller ID, or anonymous")
@click.option("--keys", default=None, help="a script such as 2,1,1,226001#,1 ('-' = silence); else typed")
@click.pass_context
def simulate(ctx: click.Context, url: str | None, from_number: str, keys: str | None) -> None:
    """Place a call from the terminal, as Twilio would, and print what the caller hears."""
    from ivr.simulator import simulate_command

    settings = _settings(ctx)
    token = settings.twilio.auth_token or _local_token(settings)
    transcript = simulate_command(url or settings.public_url, public_url=settings.public_url, auth_token=token,
                                  from_number=from_number, keys=keys, out=sys.stdout, inp=sys.stdin)  # fmt: skip
    if transcript.errors:
        sys.exit(1)


@main.group(name="bench")
def bench_group() -> None:
    """Benchmarks: measured figures next to a baseline measured in the same run."""


@bench_group.command(name="dispatch")
@click.option("--workers", default=100_000, show_default=True, help="workers indexed")
@click.option("--requests", "requests_", default=2_000, show_default=True, help="requests dispatched end to end")
@click.option("--matches", default=2_000, show_default=True, help="request points matched")
@click.option("--processes", default=2, show_default=True, help="RQ worker processes")
@click.option("--seed", default=155330, show_default=True)
@click.option("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres", show_default=True,
              help="a PostgreSQL server; the bench makes and drops a database of its own")  # fmt: skip
@click.option("--redis-url", default="redis://127.0.0.1:6379/12", show_default=True, help="an empty Redis database")
def bench_dispatch(workers: int, requests_: int, matches: int, processes: int, seed: int, postgres_url: str,
                   redis_url: str) -> None:  # fmt: skip
    """Matching latency (p50/p99) and requests offered per second through real RQ and Redis."""
    from dispatch.bench import main as run_bench

    try:
        run_bench(workers=workers, requests=requests_, matches=matches, processes=processes, seed=seed,
                  postgres_url=postgres_url, redis_url=redis_url, out=sys.stdout)  # fmt: skip
    except SewamitraError as exc:
        raise click.ClickException(str(exc)) from None


@bench_group.command(name="calls")
@click.option("--callers", type=int, default=None, help="calls in progress at once  [default: 1000; --short: 30]")
@click.option("--ramp", "ramp_s", type=float, default=None, help="seconds to bring every caller on  [default: 120]")
@click.option("--hold", "hold_s", type=float, default=None, help="seconds measured with every caller on  [default: 60]")
@click.option("--think", "think_s", type=float, default=None,
              help="a caller's mean pause before each key item, in seconds  [default: 2]")  # fmt: skip
@click.option("--listen/--no-listen", default=None,
              help="callers hear each prompt out before they think and key, as Twilio paces a call; "
                   "--no-listen: they key over every prompt  [default: --listen]")  # fmt: skip
@click.option("--saturation", "saturation_s", type=float, default=None,
              help="seconds of each closed-loop phase (no think time)  [default: 20]")  # fmt: skip
@click.option("--saturation-callers", type=int, default=None,
              help="calls at once in each closed-loop phase, the same for both servers  [default: 50]")  # fmt: skip
@click.option("--workers", type=int, default=None, help="gunicorn processes, for both servers  [default: 2]")
@click.option("--seed", type=int, default=None, help="random seed of the callers' mix  [default: 155330]")
@click.option("--short", is_flag=True, help="a small run for CI: 30 callers, seconds not minutes")
@click.option("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres", show_default=True,
              help="a PostgreSQL server; the bench makes and drops a database of its own")  # fmt: skip
@click.option("--redis-url", default="redis://127.0.0.1:6379/11", show_default=True, help="an empty Redis database")
def bench_calls(short: bool, postgres_url: str, redis_url: str, **sizes: Any) -> None:
    """Simulated callers through the signed webhooks under gunicorn: turns/s, latency, errors, bookings."""
    from dataclasses import replace

    from sewamitra.callbench import run

    plan = replace(run.SHORT if short else run.Plan(), **{k: v for k, v in sizes.items() if v is not None})
    try:
        result = run.main(plan, postgres_url=postgres_url, redis_url=redis_url, out=sys.stdout)
    except SewamitraError as exc:
        raise click.ClickException(str(exc)) from None
    if result.failed:
        click.echo(f"FAILED: {result.errors} error(s), {result.lost} booking(s) missing from the database", err=True)
        sys.exit(1)


@bench_group.command(name="turns")
@click.option("--calls", type=int, default=400, show_default=True, help="calls measured, after 20 not counted")
@click.option("--seed", type=int, default=155330, show_default=True, help="random seed of the callers' mix")
@click.option("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres", show_default=True,
              help="a PostgreSQL server; the bench makes and drops a database of its own")  # fmt: skip
@click.option("--redis-url", default="redis://127.0.0.1:6379/11", show_default=True, help="an empty Redis database")
def bench_turns(calls: int, seed: int, postgres_url: str, redis_url: str) -> None:
    """CPU per webhook in one process, by webhook, the callers' mix of `bench calls`, against the baseline's."""
    from sewamitra.callbench import turns

    try:
        result = turns.main(calls, postgres_url=postgres_url, redis_url=redis_url, out=sys.stdout, seed=seed)
    except SewamitraError as exc:
        raise click.ClickException(str(exc)) from None
    if result.errors:
        click.echo(f"FAILED: the callers heard {result.errors} error(s)", err=True)
        sys.exit(1)


@main.command(name="twilio-signature")
@click.argument("path")
@click.argument("params", nargs=-1)
@click.pass_context
def twilio_signature(ctx: click.Context, path: str, params: tuple[str, ...]) -> None:
    """Print the X-Twilio-Signature for a POST of KEY=VALUE PARAMS to PATH (for curl tests)."""
    from twilio.request_validator import RequestValidator

    settings = _settings(ctx)
    token = settings.twilio.auth_token or _local_token(settings)
    form = dict(p.split("=", 1) for p in params)
    url = settings.public_url + (path if path.startswith("/") else urlsplit(path).path)
    click.echo(RequestValidator(token).compute_signature(url, form))


def _local_token(settings: Settings) -> str:
    file = localsecrets.path(settings.data_dir, "TWILIO_AUTH_TOKEN")
    if not file.exists():
        raise click.ClickException("TWILIO_AUTH_TOKEN is not set and `sewamitra up` has not made a local one")
    return file.read_text().strip()
