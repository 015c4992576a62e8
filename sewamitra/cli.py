"""The `sewamitra` command: run, administer and seed the helpline."""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click
from sqlmodel import Session

from core.exceptions import SewamitraError
from core.settings import CONFIG_ENV, Settings, default_config_path, load_settings
from sewamitra import logs
from storage import db, redisdb
from storage.models import ApiRole, Role

log = logging.getLogger("sewamitra")
DEFAULT_PORT = 8155
COMMANDS_GROUP = "sewamitra.commands"


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
@click.option(
    "--name",
    default=None,
    help="worker name, unique among running workers; a killed worker's stays taken for minutes "
    "(default: a new random one)",
)
@click.pass_context
def worker(ctx: click.Context, burst: bool, name: str | None) -> None:
    """Run an RQ worker for the dispatch and default queues; it waits out a Redis outage."""
    from dispatch import context, enqueue, jobs  # noqa: F401 (jobs: the jobs' modules, loaded before the heap settles)
    from dispatch.queues import work
    from sewamitra.process import settle
    from storage.db import create_engine
    from telephony import telephony

    settings = _settings(ctx)
    connection = _redis(settings)
    context.install(
        context.JobContext(settings, create_engine(settings.sqlalchemy_url), connection, telephony(settings))
    )
    settle()
    work(connection, name=name, burst=burst, also=enqueue.each_second)


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


@main.group(name="import")
def import_group() -> None:
    """Bulk imports."""


@import_group.command(name="workers")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@click.pass_context
def import_workers(ctx: click.Context, csv_file: Any) -> None:
    """Import workers from CSV; bad rows are reported and skipped (exit status 1 if any)."""
    from directory.importer import import_workers as run_import

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
    from dispatch import enqueue

    try:  # the import is done; without the job, the index catches up at the next start
        queued = enqueue.rebuild_index(redisdb.connect(settings))
    except ValueError:  # a redis_url Redis cannot read
        queued = False
    if not queued:
        click.echo("could not queue the index rebuild; it happens at the next start", err=True)


def _advance(bar: Any, done: int, total: int) -> None:
    bar.length = total
    bar.update(done - bar.pos)


@main.command(name="create-user")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--full-name", default=None)
@click.option("--phone", default=None, help="desk phone the console rings for this agent")
@click.option("--provider", default=None, help="agency name (provider role only)")
@click.option("--district", "districts", multiple=True, help="a district officer's district (repeat for more)")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.pass_context
def create_user(
    ctx: click.Context,
    username: str,
    role: str,
    full_name: str | None,
    phone: str | None,
    provider: str | None,
    districts: tuple[str, ...],
    password_stdin: bool,
) -> None:
    """Add a console user. Without --password-stdin you are asked, or one is made and shown; such a
    password is someone else's choice, so the user must change it at their first sign-in (as for a
    user added on the console)."""
    from core import pincodes
    from storage.users import create_user as add_user
    from storage.users import set_districts

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password = secrets.token_urlsafe(12)
        click.echo(f"password: {password}")
    settings = _settings(ctx)
    known = set(pincodes.districts(settings.service_area.state))
    with _session(settings) as session:
        try:
            user = add_user(
                session,
                username,
                Role(role),
                password,
                full_name=full_name,
                phone=phone,
                provider=provider,
                must_change_password=not password_stdin,
            )
            set_districts(session, user.id or 0, Role(role), list(districts), known=known, actor="cli")
        except SewamitraError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"created {user.role.value} {user.username!r}")


@main.command(name="reset-password")
@click.argument("username")
@click.pass_context
def reset_password(ctx: click.Context, username: str) -> None:
    """Give a console user a new random password, shown once, to be changed at their next sign-in
    (also how to let an admin back in who forgot theirs)."""
    from storage.users import reset_password as reset

    with _session(_settings(ctx)) as session:
        try:
            password = reset(session, _user_id(session, username), actor="cli")
        except SewamitraError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"new password for {username!r}, shown once; it must be changed at the next sign-in:")
    click.echo(password)


@main.command(name="disable-user")
@click.argument("username")
@click.option("--enable", is_flag=True, help="enable the user again instead")
@click.pass_context
def disable_user(ctx: click.Context, username: str, enable: bool) -> None:
    """Stop a console user signing in (their sessions end at their next page), or let them in again."""
    from storage.users import set_active

    with _session(_settings(ctx)) as session:
        try:
            set_active(session, _user_id(session, username), enable, actor="cli")
        except SewamitraError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"{'enabled' if enable else 'disabled'} {username!r}")


def _user_id(session: Session, username: str) -> int:
    from sqlmodel import select

    from storage.models import User

    found = session.exec(select(User.id).where(User.username == username.strip().lower())).first()
    if found is None:
        raise click.ClickException(f"no console user named {username!r}")
    return found


@main.command(name="create-token")
@click.argument("client")
@click.option(
    "--role",
    type=click.Choice([r.value for r in ApiRole]),
    required=True,
    help="partner: files and follows its own requests; agent/supervisor/admin: the helpline's systems; "
    "provider: an agency's own workers",
)
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
    """Validate every flow (or the FILES given): routes, reachability, prompts in every language, and
    effects the helpline performs."""
    from flows import definition
    from flows.exceptions import FlowError
    from ivr.effects import known_effects
    from ivr.voice import service_choices

    settings = _settings(ctx)
    paths = files or tuple(sorted(definition.DEFINITIONS.glob("*.yaml")))
    failed = 0
    for path in paths:
        try:
            flow = definition.load(
                path.stem,
                languages=[lang.code for lang in settings.languages],
                effects=known_effects(),
                services=service_choices(settings),
                directory=path.parent,
            )
        except FlowError as exc:
            failed += 1
            click.echo(f"FAIL {exc}", err=True)
        else:
            click.echo(f"ok   {path} ({len(flow.nodes)} nodes)")
    if failed:
        raise click.ClickException(f"{failed} of {len(paths)} flow file(s) are broken")


def _add_plugin_commands() -> None:
    """Commands other packages give through the `sewamitra.commands` entry points (the developer
    tools: `up`, `seed`, `simulate`, `bench`, `twilio-signature`), without this module importing them."""
    for entry in entry_points(group=COMMANDS_GROUP):
        main.add_command(entry.load(), entry.name)


_add_plugin_commands()
