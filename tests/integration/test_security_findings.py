"""What an outside penetration test of `sewamitra up` found, each held by a test that failed before
its fix: log lines with numbers and tokens, malformed JSON answered with a 500, control characters
in a sign-in's `next`, text that reorders itself, data files every local user could read, a
police verification without its reference, and a simulated call refused for its signature."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from sqlmodel import Session, select

from core.settings import Settings
from core.text import REORDERS
from devtools.embedded_redis import EmbeddedRedis
from devtools.simulator import simulate_command
from devtools.up import SERVED_URL_FILE, prepare_database
from directory.importer import import_workers
from sewamitra import cli, localsecrets, logs
from sewamitra.app import create_app
from storage import tokens
from storage.db import create_engine, session_scope, upgrade
from storage.models import ApiRole, Role, ServiceRequest, VerificationStatus, Worker
from tests.chaos import free_port, wait_until
from tests.console import PASSWORD, Console, add_user
from tests.factories import AUTH_TOKEN, ROOT, make_settings
from tests.factories import served as over_http

CITIZEN_DIGITS = "9876543210"
PASSWORD_SENT = "hunter2-never-logged"


# -- 1. every log line, the access log too, masks numbers and holds no token or password ------------


def _answer(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as answered:
            return int(answered.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.fixture
def served(tmp_path: Path, redis_client: redis.Redis, redis_server_url: str) -> Iterator[tuple[str, str, Path]]:
    """`sewamitra serve` (the real gunicorn, as `up` runs it) on a SQLite database and the test's
    Redis, everything it writes kept in a file: its base URL, a live token, the file."""
    database = f"sqlite:///{tmp_path / 'helpline.db'}"
    engine = create_engine(database)
    upgrade(engine)
    with session_scope(engine) as session:
        secret = tokens.create_token(session, "state-portal", ApiRole.PARTNER).secret
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEWAMITRA_", "TWILIO_"))}
    env |= {
        "SEWAMITRA_DATA_DIR": str(tmp_path / "var"),
        "SEWAMITRA_DATABASE_URL": database,
        "SEWAMITRA_REDIS_URL": redis_server_url,
        "SEWAMITRA_SECRET_KEY": "s" * 40,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "SEWAMITRA_PUBLIC_URL": "https://helpline.example.gov.in",
    }
    port = free_port()
    written = tmp_path / "serve.log"
    with written.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sewamitra",
                "--config",
                str(ROOT / "config.yaml"),
                "serve",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _reachable(base, process), 60, "gunicorn to answer")
        yield base, secret, written
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _reachable(base: str, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"`sewamitra serve` exited with {process.returncode}")
    try:
        return _answer(f"{base}/healthz") > 0
    except OSError:
        return False


def _stop(base: str, written: Path) -> str:
    """What the server wrote once it has written the last request's line (gunicorn logs it after answering)."""
    _answer(f"{base}/healthz?last=1")
    return wait_until(lambda: _with(written.read_text(), "/healthz?last=1"), 20, "the last request's log line")


def _with(text: str, line: str) -> str:
    return text if line in text else ""


def _revealed(log: str) -> str:
    """The log as someone who decodes its URLs reads it, separators between digits dropped."""
    for _ in range(3):
        log = urllib.parse.unquote_plus(log)
    return re.sub(r"(?<=\d)[\s\-()]+(?=\d)", "", log)


def test_the_access_log_masks_numbers_and_holds_no_token_or_password(served: tuple[str, str, Path]) -> None:
    base, secret, written = served
    refused = "sm_" + "R" * 43
    nested = urllib.parse.quote(f"/console/requests?q=%2B91{CITIZEN_DIGITS}&api_key={refused}", safe="/")
    referrer = f"https://portal.example/?phone=%2B91{CITIZEN_DIGITS}&password={PASSWORD_SENT}&api_key={secret}"
    asked = [
        (f"/api/v1/requests?phone=%2B91{CITIZEN_DIGITS}", {"Authorization": f"Bearer {secret}"}),
        (f"/api/v1/requests?phone={CITIZEN_DIGITS[:5]}+{CITIZEN_DIGITS[5:]}", {"Authorization": f"Bearer {secret}"}),
        (f"/open311/v2/requests.json?api_key={secret}&phone={CITIZEN_DIGITS}", {}),
        (f"/open311/v2/requests.json?api_key={refused}", {}),
        (f"/console/sign-in?next={nested}", {"Referer": referrer}),
        (f"/console/requests?q=%2B91%20{CITIZEN_DIGITS}&password={PASSWORD_SENT}", {}),  # redirected to sign in
        (f"/healthz?token={secret}", {"Authorization": "Basic " + "c21fc2VjcmV0OnB3"}),  # user sm_secret, basic
    ]
    for path, headers in asked:
        assert _answer(base + path, headers) > 0
    log = _stop(base, written)
    assert "GET /api/v1/requests?phone=" in log, log
    assert "GET /console/sign-in?next=" in log, log  # the access log
    revealed = _revealed(log)
    assert CITIZEN_DIGITS not in revealed, log
    for kept_back in (secret, refused, secret[:20], refused[:20], PASSWORD_SENT, "sm_secret"):
        assert kept_back not in revealed, (kept_back, log)
    assert not re.search(r"api_key=(?!\[hidden\])", revealed), log


def test_every_processs_log_handler_scrubs_encoded_numbers_and_secrets() -> None:
    """What RQ workers, the scheduler and `up` write goes through the same scrubbing as the access log."""
    written = io.StringIO()
    logger = logging.getLogger("rq.worker")
    handler = logs.handler(written)
    logger.addHandler(handler)
    try:
        logger.error("job failed for /api/v1/requests?phone=%%2B91%s&api_key=%s", CITIZEN_DIGITS, "sm_" + "k" * 43)
        logger.error(
            "redirect to /console/requests%%3Fq%%3D%%252B91%%2520%s%%26password%%3D%s", CITIZEN_DIGITS, PASSWORD_SENT
        )
        logger.error("caller %s, token %s", f"+91 {CITIZEN_DIGITS[:5]} {CITIZEN_DIGITS[5:]}", "sm_" + "q" * 43)
    finally:
        logger.removeHandler(handler)
    line = written.getvalue()
    assert line.count("\n") == 3, line
    assert "+91 98xxxxx210" in line, line
    revealed = _revealed(line)
    assert CITIZEN_DIGITS not in revealed, line
    assert PASSWORD_SENT not in revealed, line
    assert "k" * 20 not in revealed, line
    assert "q" * 20 not in revealed, line


# -- 2. a malformed JSON body is a 400 `invalid`, never a 500 ----------------------------------------

FILED = {"service": "plumber", "phone": "98765 43210", "pincode": "226001", "name": "Asha Verma", "language": "en"}


def partner_token(app: Flask) -> str:
    with session_scope(app.extensions["sewamitra"].engine) as session:
        return tokens.create_token(session, "state-portal", ApiRole.PARTNER).secret


@pytest.mark.parametrize(
    "body",
    [
        "[" * 30000 + "]" * 30000,
        '{"a":' * 9000 + "1" + "}" * 9000,
        '{"phone": ' + "1" * 5000 + "}",
        json.dumps(FILED)[:-1] + ', "latitude": ' + "9" * 5000 + ".5}",
        json.dumps(FILED)[:-1] + ', "latitude": NaN, "longitude": Infinity}',
        json.dumps(FILED)[:-1] + ', "latitude": 1e999, "longitude": 80.9}',
        json.dumps({**FILED, "name": "Asha"})[:-1] + ', "description": "\\ud800 leaks"}',
    ],
    ids=["deep-array", "deep-object", "long-integer", "long-float", "nan", "overflow", "lone-surrogate"],
)
def test_a_malformed_json_body_is_invalid_not_a_500(app: Flask, body: str) -> None:
    answered = app.test_client().post(
        "/api/v1/requests",
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {partner_token(app)}"},
    )
    assert answered.status_code == 400, answered.get_data(as_text=True)[:300]
    error = answered.get_json()["error"]
    assert error["code"] == "invalid", error
    assert error["fields"], error


def test_open311_takes_no_json_and_says_so_with_a_400(app: Flask) -> None:
    answered = app.test_client().post(
        "/open311/v2/requests.json", data="[" * 30000 + "]" * 30000, content_type="application/json"
    )
    assert answered.status_code == 400


# -- 3. a `next` with a control character in it goes to the console's home ----------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/console/\r\nX: 1",
        "/console/\nSet-Cookie: a=b",
        "/\t/evil.example",
        "/console\t/\t/evil.example",
        "/console/\x7f",
        "/console/\x85",
    ],
)
def test_a_control_character_in_next_falls_back_to_the_console(app: Flask, target: str) -> None:
    add_user(app.extensions["sewamitra"].engine, "asha", Role.AGENT)
    console = Console(app)
    console.get("/console/sign-in?" + urllib.parse.urlencode({"next": target}))
    answered = console.post("/console/sign-in", {"username": "asha", "password": PASSWORD, "next": target})
    assert answered.status_code == 302
    assert answered.headers["Location"] == "/console/"
    console.get("/console/", follow_redirects=True)  # a page of the signed-in session, for its form token
    back = console.post("/console/language", {"language": "hi", "back": target})
    assert back.status_code == 302
    assert back.headers["Location"] == "/console/"


# -- 4. text that reverses or reorders itself is refused, as the CSV import refuses it ----------------

REORDERED = "Asha \u202egnp.exe"  # shown as "Asha exe.png"


def test_the_api_refuses_text_that_reorders_itself_in_every_field_of_a_filing(app: Flask) -> None:
    client, filer = app.test_client(), {"Authorization": f"Bearer {partner_token(app)}"}
    clean = {**FILED, "address": "12 Hazratganj", "description": "The tap leaks.", "preferred_time": "after 5 pm"}
    for field, control in (
        ("name", "\u202e"),
        ("address", "\u202b"),
        ("description", "\u2067"),
        ("preferred_time", "\u2069"),
    ):
        answered = client.post("/api/v1/requests", json={**clean, field: f"Asha {control}gnp.exe"}, headers=filer)
        assert answered.status_code == 400, (field, answered.get_json())
        assert answered.get_json()["error"]["fields"] == {field: REORDERS}
    assert _filed(app) == 0
    assert client.post("/api/v1/requests", json=clean, headers=filer).status_code == 201


def test_open311_refuses_text_that_reorders_itself_in_every_field_of_a_filing(app: Flask) -> None:
    clean = {
        "service_code": "electrician",
        "attribute[pincode]": "226001",
        "phone": "9876543210",
        "first_name": "Ravi",
        "last_name": "Shankar",
        "description": "The fan does not run.",
        "address_string": "12 Hazratganj",
        "attribute[preferred_time]": "morning",
        "attribute[language]": "en",
        "api_key": partner_token(app),
    }
    for field in ("first_name", "last_name", "address_string", "description", "attribute[preferred_time]"):
        answered = app.test_client().post("/open311/v2/requests.json", data={**clean, field: REORDERED})
        assert answered.status_code == 400, (field, answered.get_json())
        assert {item["field"]: item["description"] for item in answered.get_json()} == {field: REORDERS}
    assert _filed(app) == 0
    assert app.test_client().post("/open311/v2/requests.json", data=clean).status_code in (200, 201)


def _filed(app: Flask) -> int:
    with Session(app.extensions["sewamitra"].engine) as session:
        return len(session.exec(select(ServiceRequest.id)).all())


# -- 5. data files only their owner can read; the admin password is not printed ----------------------


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most accounts have (files 0644): what the helpline's files must not inherit."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def modes(directory: Path) -> dict[str, int]:
    """The permission bits of the directory, and of every file and directory under it (sockets aside)."""
    found = {".": stat.S_IMODE(directory.stat().st_mode)}
    for path in directory.rglob("*"):
        if path.is_dir() or path.is_file():
            found[str(path.relative_to(directory))] = stat.S_IMODE(path.stat().st_mode)
    return found


def private(found: dict[str, int]) -> dict[str, str]:
    """What is not the owner's alone: a file not 0600, a directory not 0700."""
    return {name: oct(mode) for name, mode in found.items() if mode not in (0o600, 0o700)}


def test_the_sqlite_database_and_its_wal_and_shm_are_the_owners_alone(tmp_path: Path, usual_umask: None) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'sewamitra.db'}")
    upgrade(engine)
    with engine.connect() as connection:  # open: the -wal and -shm files exist
        connection.execute(sa.text("CREATE TABLE probe (x INTEGER)"))
        connection.commit()
        found = modes(tmp_path / "var")
    engine.dispose()
    assert {"sewamitra.db", "sewamitra.db-wal", "sewamitra.db-shm"} <= set(found), found
    assert found["."] == 0o700, found
    assert private(found) == {}, found


def test_a_database_left_readable_by_an_older_version_is_made_private(tmp_path: Path, usual_umask: None) -> None:
    (tmp_path / "var").mkdir()
    for name in ("sewamitra.db", "sewamitra.db-wal", "sewamitra.db-shm"):
        (tmp_path / "var" / name).touch(mode=0o644)
    engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'sewamitra.db'}")
    upgrade(engine)
    engine.dispose()
    assert {name: mode for name, mode in private(modes(tmp_path / "var")).items() if name != "."} == {}


def test_the_embedded_redis_keeps_its_dump_and_append_only_file_private(usual_umask: None) -> None:
    directory = Path(tempfile.mkdtemp(prefix="sm-perm-"))
    server = EmbeddedRedis(directory / "redis")
    try:
        client = redis.Redis.from_url(server.start())
        client.set("sewamitra:caller", "+919876543210")
        client.save()  # dump.rdb
        client.close()
        found = modes(directory / "redis")
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    assert "dump.rdb" in found, found
    assert any(name.startswith("appendonlydir/") for name in found), found
    assert private(found) == {}, found


def test_up_keeps_the_admin_password_in_a_private_file_and_does_not_print_it(tmp_path: Path, usual_umask: None) -> None:
    settings = make_settings(tmp_path)
    login = prepare_database(settings, seed_demo=False)
    password_file = settings.data_dir / localsecrets.ADMIN_PASSWORD_FILE
    password = password_file.read_text().strip()
    assert password not in login
    assert str(password_file) in login
    found = modes(settings.data_dir)
    assert found["."] == 0o700, found
    assert private(found) == {}, found


# -- 6. the import marks a worker police-verified only with the reference and the date ---------------

IMPORT_HEADER = "name,phone,skills,pincode,provider,police_verified,available,police_reference,police_verified_on"


def test_the_import_verifies_a_worker_only_with_a_police_reference_and_date(
    engine: sa.Engine,
    settings: Settings,
) -> None:
    rows = [
        IMPORT_HEADER,
        "Ramesh Kumar,9839012345,plumber,226001,,yes,yes,,",
        "Suresh Pal,9839012346,plumber,226001,,yes,yes,LKO/PV/2026/118,",
        "Mahesh Rao,9839012347,plumber,226001,,yes,yes,,2026-10-02",
        "Dinesh Jha,9839012348,plumber,226001,,yes,yes,LKO/PV/2026/119,2026-10-02",
        "Naresh Sen,9839012349,plumber,226001,,no,yes,,",
    ]
    with session_scope(engine) as session:
        report = import_workers(session, settings, io.StringIO("\n".join(rows) + "\n"), today=date(2026, 11, 23))
    assert [error.row for error in report.errors] == [2, 3, 4]
    assert report.imported == 2
    assert all(error.reason.startswith("police_verified is yes") for error in report.errors), report.errors
    assert "police_reference and police_verified_on" in report.errors[0].reason
    assert "police_verified_on" in report.errors[1].reason
    assert "police_reference" in report.errors[2].reason
    with Session(engine) as session:
        workers = {w.name: w for w in session.exec(select(Worker)).all()}
    assert set(workers) == {"Dinesh Jha", "Naresh Sen"}
    assert workers["Dinesh Jha"].police_verification == VerificationStatus.VERIFIED
    assert workers["Dinesh Jha"].police_reference == "LKO/PV/2026/119"
    assert workers["Naresh Sen"].police_verification == VerificationStatus.PENDING


# -- 7. `up --port N`, then `simulate --url` that port: the call goes through ------------------------


def sewamitra(*args: str) -> list[str]:
    return [sys.executable, "-m", "sewamitra", "--config", str(ROOT / "config.yaml"), *args]


@pytest.mark.slow
def test_simulate_reaches_up_on_another_port_without_the_public_url_set_by_hand() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="sm-port-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEWAMITRA_", "TWILIO_"))}
    env |= {
        "SEWAMITRA_DATA_DIR": str(data_dir),
        "SEWAMITRA_CALL_CENTRE__OPENS": "00:00",
        "SEWAMITRA_CALL_CENTRE__CLOSES": "23:59:59.999999",
        # One web and one RQ process take this call as well as the default two each.
        "SEWAMITRA_WORKERS__WEB": "1",
        "SEWAMITRA_WORKERS__RQ": "1",
    }
    written = data_dir.parent / f"{data_dir.name}.log"
    with written.open("wb") as out:
        up = subprocess.Popen(
            sewamitra("up", "--no-seed", "--port", str(port)), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    try:
        banner = wait_until(lambda: _up_banner(up, written), 120, "`sewamitra up` to be ready")
        assert f"http://127.0.0.1:{port}" in banner, banner
        assert "SEWAMITRA_PUBLIC_URL" in banner, banner
        call = subprocess.run(
            sewamitra("simulate", "--url", f"http://127.0.0.1:{port}", "--keys", "2,1,1,226001#,1,9,2"),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert call.returncode == 0, call.stdout + call.stderr
        assert "application error" not in call.stdout, call.stdout
        assert "Your request number is" in call.stdout, call.stdout
    finally:
        up.terminate()
        try:
            up.wait(40)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
        written.unlink(missing_ok=True)


def test_twilio_signature_signs_for_the_port_up_serves_on(helpline_settings: Settings, tmp_path: Path) -> None:
    """`up --port 8301` with the local default public_url checks signatures over port 8301:
    `twilio-signature --port 8301` signs over it too, or over the port a running `up` wrote down."""
    port = free_port()
    app = create_app(helpline_settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"}))  # as `up` runs it
    form = ["CallSid=CA" + "7" * 32, "From=+919876543210", "To=+18005550100", "CallStatus=ringing"]
    env = {"SEWAMITRA_DATA_DIR": str(tmp_path), "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "SEWAMITRA_PUBLIC_URL": None}
    env["SEWAMITRA_CONFIG"] = str(ROOT / "config.yaml")  # the CLI sets it; the runner puts it back

    def signed(*options: str) -> tuple[int, str]:
        made = CliRunner().invoke(cli.main, ["twilio-signature", *options, "/twilio/voice", *form], env=env)
        assert made.exit_code == 0, made.output
        answer = app.test_client().post(
            "/twilio/voice",
            data=dict(field.split("=", 1) for field in form),
            headers={"X-Twilio-Signature": made.stdout.strip()},
        )
        return answer.status_code, made.stderr

    assert signed() == (403, "signed over http://127.0.0.1:8155/twilio/voice\n")  # config.yaml's port: refused
    assert signed("--port", str(port)) == (200, f"signed over http://127.0.0.1:{port}/twilio/voice\n")
    assert signed("--url", f"http://127.0.0.1:{port}/")[0] == 200
    (tmp_path / SERVED_URL_FILE).write_text(f"http://127.0.0.1:{port}\n")  # a running `up --port {port}`
    assert signed()[0] == 200
    env["SEWAMITRA_PUBLIC_URL"] = "https://helpline.example.gov.in"  # set by hand: --port changes nothing
    assert signed("--port", str(port)) == (403, "signed over https://helpline.example.gov.in/twilio/voice\n")
    app.extensions["sewamitra"].engine.dispose()


def _up_banner(up: subprocess.Popen[bytes], written: Path) -> str:
    text = written.read_text(errors="replace")
    if up.poll() is not None:
        raise AssertionError(f"`sewamitra up` exited with {up.returncode}:\n{text}")
    return text if "Press Ctrl-C" in text else ""


def test_simulate_explains_a_refused_signature_instead_of_playing_twilios_apology(app: Flask) -> None:
    said = io.StringIO()
    with over_http(app) as base_url:  # the helpline checks signatures over https://helpline.example.gov.in
        transcript = simulate_command(
            base_url,
            public_url=base_url,
            auth_token=AUTH_TOKEN,
            from_number="+919876543210",
            keys="2,1",
            out=said,
            inp=io.StringIO(),
        )
    told = said.getvalue()
    assert transcript.errors, told
    assert "signature" in told, told
    assert "public URL" in told, told
    assert base_url in told, told
    assert "application error" not in told, told
    assert "SEWAMITRA_PUBLIC_URL" in told, told
