"""What `sewamitra up` does before and around the processes: Redis, secrets, schema, demo data,
the first console login."""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from sqlmodel import Session, select

from core.settings import Settings, load_settings
from devtools.embedded_redis import EmbeddedRedis
from sewamitra import localsecrets
from sewamitra.supervisor import Child, Service, Supervisor
from storage import db
from storage.models import Role, User, Worker
from storage.users import create_user

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
SERVED_URL_FILE = "public-url"  # the URL a running `up` checks signatures over, when public_url is the local default
SANDBOX_URL_FILE = "sandbox-url"  # where a running `up`'s platform sandbox listens: `simulate` follows its moves there
ACCOUNT_ENV = {"twilio": "TWILIO_ACCOUNT_SID", "plivo": "PLIVO_AUTH_ID"}  # no account: the local sandbox


def is_local_default(settings: Settings) -> bool:
    """public_url names this machine and nobody set it: `up` may move it to the port it serves on."""
    return urlsplit(settings.public_url).hostname in LOCAL_HOSTS and "SEWAMITRA_PUBLIC_URL" not in os.environ


def served_public_url(settings: Settings) -> str:
    """The public URL webhooks are signed over: the one a running `up` chose for its --port, else public_url."""
    if is_local_default(settings):
        with contextlib.suppress(OSError):
            return (settings.data_dir / SERVED_URL_FILE).read_text().strip() or settings.public_url
    return settings.public_url


def running_sandbox(data_dir: Path) -> str | None:
    """The base URL of the platform sandbox a running `up` on `data_dir` started, if any: a simulated
    call asks it for the moves the helpline made of it by REST."""
    with contextlib.suppress(OSError):
        return (data_dir / SANDBOX_URL_FILE).read_text().strip() or None
    return None


def signing_url(settings: Settings, *, url: str | None = None, port: int | None = None) -> str:
    """The public URL a tool signs webhooks over: the one given; with public_url the local default,
    the one `up --port PORT` serves on; else the one a running `up` uses, or public_url."""
    if url:
        return url.rstrip("/")
    if port is not None and is_local_default(settings):
        return f"http://127.0.0.1:{port}"
    return served_public_url(settings)


def up(settings: Settings, *, port: int, host: str, seed_demo: bool) -> int:
    """Prepare one box and run every process until Ctrl-C or SIGTERM; return the exit status."""
    environ = dict(os.environ)
    localsecrets.private_directory(settings.data_dir)
    embedded = None
    if not settings.redis_url:
        embedded = EmbeddedRedis(settings.data_dir / "redis")
        environ["SEWAMITRA_REDIS_URL"] = embedded.start()
        click.echo(f"embedded Redis on {embedded.socket} (data kept in {embedded.directory})")
    try:
        sandbox_port = None
        (settings.data_dir / SANDBOX_URL_FILE).unlink(missing_ok=True)  # an earlier `up` killed outright left it
        platform = settings.telephony.platform
        if not environ.get(ACCOUNT_ENV[platform]) and not getattr(settings, platform).api_base_url:
            sandbox_port = free_port()
            environ[f"SEWAMITRA_{platform.upper()}__API_BASE_URL"] = f"http://127.0.0.1:{sandbox_port}"
            (settings.data_dir / SANDBOX_URL_FILE).write_text(f"http://127.0.0.1:{sandbox_port}\n")
        local = localsecrets.fill_environment(
            settings.data_dir, environ, sandbox=sandbox_port is not None, platform=platform
        )
        for name in local:
            click.echo(f"{name} is not set: using the local one in {localsecrets.path(settings.data_dir, name)}")
        if is_local_default(settings):
            environ["SEWAMITRA_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
            (settings.data_dir / SERVED_URL_FILE).write_text(environ["SEWAMITRA_PUBLIC_URL"] + "\n")
            click.echo(
                f"public_url is the local default: webhooks are signed over {environ['SEWAMITRA_PUBLIC_URL']} "
                "(the port of --port), and `sewamitra simulate` and `twilio-signature` sign over it too; "
                "set SEWAMITRA_PUBLIC_URL to the URL Twilio calls"
            )
        settings = load_settings(environ=environ)
        login = prepare_database(settings, seed_demo=seed_demo)
        services = [RestartedRedis(embedded)] if embedded is not None else []
        return _supervise(
            settings, environ, port=port, host=host, login=login, sandbox_port=sandbox_port, services=services
        )
    finally:
        (settings.data_dir / SERVED_URL_FILE).unlink(missing_ok=True)
        (settings.data_dir / SANDBOX_URL_FILE).unlink(missing_ok=True)
        if embedded is not None:
            embedded.stop()


def prepare_database(settings: Settings, *, seed_demo: bool) -> str:
    """Migrate; seed an empty database; make the first admin. Return how to log in."""
    from devtools import seed as demo

    engine = db.create_engine(settings.sqlalchemy_url)
    db.upgrade(engine)
    with db.session_scope(engine) as session:
        if seed_demo and session.exec(select(Worker.id).limit(1)).first() is None:
            with click.progressbar(length=0, label="demo data: workers") as bar:
                demo.seed(session, settings, progress=lambda done, total: _advance(bar, done, total))
        login = _first_admin(session, settings.data_dir)
    engine.dispose()
    return login


def _advance(bar: Any, done: int, total: int) -> None:
    bar.length = total
    bar.update(done - bar.pos)


def _first_admin(session: Session, data_dir: Path) -> str:
    """A fresh database gets user 'admin' with a random password kept in the data directory, to be
    changed at the first sign-in."""
    password_file = data_dir / localsecrets.ADMIN_PASSWORD_FILE
    if session.exec(select(User.id).limit(1)).first() is None:
        password_file.unlink(missing_ok=True)
        password = localsecrets.read_or_create(password_file, make=12)  # not printed: `up`'s output is often logged
        create_user(
            session,
            "admin",
            Role.ADMIN,
            password,
            full_name="Helpline administrator",
            must_change_password=True,
            actor="up",
        )
        return f"admin, password in {password_file}   (the console asks for a new one at the first sign-in)"
    if password_file.exists():
        return f"admin (first password in {password_file}, unless changed since)"
    return "the users made with `sewamitra create-user`"


@dataclass
class RestartedRedis:
    """The embedded Redis as a service `up` keeps running: started again (from its AOF) when it dies.
    One that `up` adopted (left running by an earlier `up`) is not its own to restart."""

    redis: EmbeddedRedis
    name: str = "embedded Redis"

    def running(self) -> bool:
        return self.redis.process is None or self.redis.process.poll() is None

    def restart(self) -> None:
        self.redis.process = None
        self.redis.start()


def _supervise(
    settings: Settings,
    environ: dict[str, str],
    *,
    port: int,
    host: str,
    login: str,
    sandbox_port: int | None,
    services: Sequence[Service] = (),
) -> int:
    # -OO, as `serve` would start itself again with it (sewamitra.web): its modules load once, not twice.
    children = [Child("web", ["serve", "--host", host, "--port", str(port)], interpreter=("-OO",))]
    platform = settings.telephony.platform
    if sandbox_port is not None:
        children.append(
            Child(f"{platform}-sandbox", ["--port", str(sandbox_port)], module=f"devtools.{platform}_sandbox")
        )
    children += [Child(f"worker-{i}", functools.partial(_worker_args, i)) for i in range(settings.workers.rq)]
    children.append(Child("scheduler", ["scheduler"]))
    local = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    banner = {
        "ready": click.style(f"\n{settings.helpline_name} is up.", bold=True),
        "voice": f"  Voice webhook        : {settings.public_url}/{platform}/voice   (POST, signed by {platform})",
        "health": f"  Health               : {local}/healthz",
        "console": f"  Console              : {local}/console   sign in as {login}",
        "twilio": f"  SMS and calls        : {_telephony(settings, sandbox_port)}",
        "redis": f"  Redis                : {_safe_url(settings.redis_url or '')}",
        "database": f"  Database             : {_safe_url(settings.sqlalchemy_url)}",
        "stop": "Press Ctrl-C to stop everything.\n",
    }
    return Supervisor(children, environ, services).run(on_ready=banner, ready_url=f"{local}/healthz")


def _telephony(settings: Settings, sandbox_port: int | None) -> str:
    platform = settings.telephony.platform
    api = getattr(settings, platform).api_base_url
    if sandbox_port is None:
        return str(api or platform.capitalize())
    return f"the local {platform.capitalize()} sandbox: {api}/_sandbox/messages"


def free_port() -> int:
    """A port nothing is bound to, for a server started soon after. Drawn from below the ports the
    system gives outgoing connections as their own (Linux: net.ipv4.ip_local_port_range): a port
    from that range, free when probed, can be taken by any connection made before the server binds
    it, and the server then fails with "Address already in use"."""
    lowest = lowest_ephemeral_port()
    for _ in range(200):
        port = secrets.randbelow(lowest - PORTS_FROM) + PORTS_FROM
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:  # bound already, or lingering
                continue
            return port
    raise OSError(f"no free port found between {PORTS_FROM} and {lowest}")


PORTS_FROM = 10_000  # free_port draws from here up to the first port of the ephemeral range
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def lowest_ephemeral_port() -> int:
    """The first of the ports the system gives outgoing connections (Linux's default where it cannot
    be read), at least a thousand above where `free_port` starts."""
    try:
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(low, PORTS_FROM + 1000)


def _worker_args(index: int) -> list[str]:
    """A new name at every start: RQ keeps a killed worker's name registered for minutes."""
    return ["worker", "--name", f"sewamitra-{os.getpid()}-{index}-{secrets.token_hex(4)}"]


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
