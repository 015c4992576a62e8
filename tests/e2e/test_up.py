"""A new user runs `sewamitra up` on a fresh checkout: everything starts on embedded defaults with
demo data, books a plumber from a simulated call, texts the caller through the local Twilio sandbox,
and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from rq import Worker
from twilio.request_validator import RequestValidator

from core.geo import distance_km
from devtools.simulator import CallSimulator, HttpTransport
from tests.up import get_json_list, running_up, wait_for

pytestmark = pytest.mark.slow
OFFER_TIMEOUT = 10  # seconds: the shortest the settings allow, so silence can be waited out


def get_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return dict(json.load(answer))
    except urllib.error.HTTPError as error:
        return dict(json.load(error))


CITIZEN = "+919876543210"


def one(database: sa.Engine, query: str) -> tuple:
    with database.connect() as connection:
        return tuple(connection.execute(sa.text(query)).one())


def texts(url: str, to: str) -> list[str]:
    return [m["body"] for m in get_json_list(url) if m["to"] == to]


def offered(database: sa.Engine) -> list[str]:
    """The phones of the workers offered the request, in order."""
    query = "SELECT w.phone FROM offer o JOIN worker w ON w.id = o.worker_id ORDER BY o.id"
    with database.connect() as connection:
        return [phone for (phone,) in connection.execute(sa.text(query)).all()]


def reached(sandbox: str, phone: str, number: str) -> bool:
    """The offer went out: an SMS with the request number, or a call (voice-preferred workers)."""
    return any(m["to"] == phone and number in m["body"] for m in get_json_list(f"{sandbox}/_sandbox/messages")) or any(
        c["to"] == phone for c in get_json_list(f"{sandbox}/_sandbox/calls")
    )


def eligible_plumbers(database: sa.Engine, lat: float, lon: float) -> list[tuple[float, str]]:
    """Verified, available plumbers who serve the spot, by distance: worked out apart from the index."""
    query = (
        "SELECT w.phone, w.latitude, w.longitude, w.service_radius_km FROM worker w "
        "JOIN worker_skill s ON s.worker_id = w.id AND s.service_code = 'plumber' "
        "WHERE w.police_verification = 'verified' AND w.available AND w.active"
    )
    with database.connect() as connection:
        rows = connection.execute(sa.text(query)).all()
    found = [(distance_km(lat, lon, w_lat, w_lon), phone, radius or 10) for phone, w_lat, w_lon, radius in rows]
    return sorted((d, phone) for d, phone, radius in found if d <= radius)


def assert_among_nearest(phone: str, ranked: list[tuple[float, str]], offered_before: set[str]) -> None:
    """Offered to one of the nearest (within 0.2 km: Redis rounds the earth a little differently)."""
    left = [(d, p) for d, p in ranked if p not in offered_before]
    assert left, "no eligible plumber near 226001 in the demo data"
    distance = dict((p, d) for d, p in left).get(phone)
    assert distance is not None, f"{phone} is not an eligible plumber near the request"
    assert distance <= left[0][0] + 0.2, (phone, distance, left[:3])


def sms(public_url: str, token: str, sender: str, body: str) -> None:
    """A worker's text reaches the running helpline, signed as Twilio signs it."""
    form = {"MessageSid": "SM" + os.urandom(16).hex(), "From": sender, "To": "+18005550100", "Body": body}
    url = f"{public_url}/twilio/sms"
    signature = RequestValidator(token).compute_signature(url, form)
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(form).encode(), headers={"X-Twilio-Signature": signature}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def rq_workers(pid: int) -> list[int]:
    """The RQ worker processes `up` runs (the direct children started as `sewamitra worker`)."""
    found = []
    for child in descendants(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            parent = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        if parent == pid and b"worker" in command and b"sewamitra" in command and alive(child):
            found.append(child)
    return sorted(found)


def rq_worker_names(data_dir: Path) -> set[str]:
    """The workers RQ knows of, read from the embedded Redis (none when it is gone)."""
    connection = redis.Redis(unix_socket_path=str(data_dir / "redis" / "redis.sock"), socket_timeout=5)
    try:
        return {worker.name for worker in Worker.all(connection=connection)}
    except redis.RedisError:
        return set()
    finally:
        connection.close()


def in_the_aof(directory: Path, written: bytes) -> bool:
    """Redis's append-only file (one, or Redis 7's several in appendonlydir/) holds `written`."""
    return any(written in aof.read_bytes() for aof in directory.rglob("*.aof"))


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(stat.parent.name)
            found |= {child} | descendants(child)
    return found


@pytest.fixture
def helpline(request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[str], int, Path, list[str]]]:
    """`sewamitra up` with no Redis and no database configured, in a data directory of its own;
    what it printed is shown when the test failed."""
    hours = {"SEWAMITRA_CALL_CENTRE__OPENS": "00:00", "SEWAMITRA_CALL_CENTRE__CLOSES": "23:59:59.999999"}
    with running_up(request, SEWAMITRA_DISPATCH__OFFER_TIMEOUT=str(OFFER_TIMEOUT), **hours) as up:
        yield up.process, up.port, up.data_dir, up.output


def test_up_runs_everything_books_a_call_and_stops_cleanly(helpline) -> None:
    process, port, data_dir, output = helpline
    banner = "".join(output)
    assert f"http://127.0.0.1:{port}/twilio/voice" in banner
    password = (data_dir / "console-admin-password").read_text().strip()
    assert f"admin, password in {data_dir / 'console-admin-password'}" in banner
    assert password not in banner

    # Each RQ worker registers once it has started, the first job may run on either before the other
    # has: what /healthz says is waited for, not read at the first job.
    health = wait_for(
        lambda: (
            (h := get_json(f"http://127.0.0.1:{port}/healthz"))["jobs_last_ran_s_ago"] is not None
            and (h["rq_workers"], h["schedulers"]) == (2, 1)
            and h
        ),
        60,
        "the scheduler's first job to run on a worker, and both RQ workers and the scheduler to be registered",
    )
    assert health["status"] == "ok"
    assert health["rq_workers"] == 2
    assert health["schedulers"] == 1

    engine = sa.create_engine(f"sqlite:///{data_dir / 'sewamitra.db'}")
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM worker")).scalar() == 800
        assert connection.execute(sa.text("SELECT count(*) FROM district")).scalar() == 75
    engine.dispose()

    token = (data_dir / "local-twilio-auth-token").read_text().strip()
    account = (data_dir / "local-twilio-account-sid").read_text().strip()
    public_url = f"http://127.0.0.1:{port}"
    transport = HttpTransport(public_url, public_url, token, account_sid=account)
    transcript = CallSimulator(transport, public_url=public_url).run("2,1,1,226001#,1,9,2")
    assert not transcript.errors, transcript.render(requests=True)
    assert transcript.said("Your request number is:")

    database = sa.create_engine(f"sqlite:///{data_dir / 'sewamitra.db'}")
    number, lat, lon = one(database, "SELECT number, latitude, longitude FROM service_request")
    sandbox = re.search(r"(http://127\.0\.0\.1:\d+)/_sandbox", banner)
    assert sandbox, banner
    sent = f"{sandbox.group(1)}/_sandbox/messages"
    # A first call: the privacy notice's link and the request number (two RQ workers: either first).
    wait_for(lambda: [t for t in texts(sent, CITIZEN) if number in t], 30, "the request number by SMS")
    wait_for(lambda: [t for t in texts(sent, CITIZEN) if "/privacy" in t], 30, "the privacy notice's link by SMS")

    # The nearest verified, available plumber is offered the job by SMS; silence moves it on.
    ranked = eligible_plumbers(database, lat, lon)
    first = wait_for(lambda: offered(database)[:1], 30, "the first offer")[0]
    assert_among_nearest(first, ranked, offered_before=set())
    wait_for(lambda: reached(sandbox.group(1), first, number), 30, "the offer to reach the worker")
    second = wait_for(lambda: offered(database)[1:], 3 * OFFER_TIMEOUT, "the offer to move on")[0]
    assert_among_nearest(second, ranked, offered_before={first})
    wait_for(lambda: reached(sandbox.group(1), second, number), 30, "the second offer to reach its worker")

    # The second says YES: both sides hear; then DONE with the citizen's code, and a feedback call.
    sms(public_url, token, second, "YES")
    wait_for(lambda: len(texts(sent, CITIZEN)) == 3, 30, "the citizen to hear who is coming")
    worker_name, code = one(
        database, "SELECT w.name, r.completion_code FROM service_request r JOIN worker w ON w.id = r.worker_id"
    )
    assert any(worker_name in t and code in t for t in texts(sent, CITIZEN))
    to_worker = texts(sent, second)
    assert any(number in t and "155330" in t for t in to_worker)  # the job, and the helpline's number to call
    assert not any(CITIZEN[3:] in t for t in to_worker)  # never the citizen's
    sms(public_url, token, second, f"DONE {number} {code}")
    calls = wait_for(
        lambda: [c for c in get_json_list(f"{sandbox.group(1)}/_sandbox/calls") if c["to"] == CITIZEN],
        30,
        "the feedback call",
    )
    assert "flow=feedback" in calls[0]["url"]
    assert one(database, "SELECT status FROM service_request") == ("completed",)

    # An RQ worker killed outright is started again, registers with RQ under a name of its own (the
    # dead one's stays taken for minutes), and the next booking is still offered.
    workers = rq_workers(process.pid)
    registered = rq_worker_names(data_dir)
    os.kill(workers[0], signal.SIGKILL)
    wait_for(lambda: set(workers) - set(rq_workers(process.pid)), 30, "the killed worker to be gone")
    wait_for(lambda: len(rq_workers(process.pid)) == len(workers), 30, "the worker to be restarted")
    wait_for(lambda: rq_worker_names(data_dir) - registered, 60, "the restarted worker to register with RQ")
    # English remembered; the first job's worker can still be rung (2: not now), then a new booking.
    transcript = CallSimulator(transport, public_url=public_url).run("2,1,1,226001#,1,9,2")
    assert not transcript.errors, transcript.render(requests=True)
    wait_for(
        lambda: one(database, "SELECT count(*) FROM service_request WHERE status = 'offered'") == (1,),
        30,
        "the second booking to be offered",
    )
    database.dispose()

    children = descendants(process.pid)
    assert len(children) >= 6  # redis, gunicorn (+ its workers), 2 RQ workers, scheduler, Twilio sandbox
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=40) == 0
    wait_for(lambda: not any(alive(pid) for pid in children), 10, "every child process to exit")
    assert not (data_dir / "redis" / "redis.sock").exists()


# `sewamitra up` keeps its embedded Redis running: SIGKILLed, it is started again from its AOF, and the
# helpline comes back to health with its RQ workers registered.


def test_up_starts_its_embedded_redis_again_when_it_dies_and_keeps_its_data(
    helpline: tuple[subprocess.Popen[str], int, Path, list[str]],
) -> None:
    process, port, data_dir, output = helpline
    socket_path = str(data_dir / "redis" / "redis.sock")
    before = redis.Redis(unix_socket_path=socket_path, socket_timeout=5)
    before.set("sewamitra:test:kept", "yes")
    before.close()
    # Redis writes the AOF's file after the command and fsyncs it every second; a SIGKILL loses nothing
    # the kernel already holds, so the write is safe once the file has it.
    wait_for(lambda: in_the_aof(data_dir / "redis", b"sewamitra:test:kept"), 30, "the write to reach the AOF")
    first = int((data_dir / "redis" / "redis.pid").read_text())
    wait_for(lambda: rq_worker_names(data_dir), 60, "the RQ workers to register")

    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not alive(first), 10, "the first redis-server to be gone")

    wait_for(
        lambda: any("embedded Redis died; starting it again" in line for line in output),
        60,
        "`up` to start Redis again",
    )
    wait_for(lambda: get_json(f"http://127.0.0.1:{port}/healthz").get("redis") == "ok", 60, "Redis to be healthy")
    wait_for(lambda: rq_worker_names(data_dir), 60, "the RQ workers to be registered again")
    after = redis.Redis(unix_socket_path=socket_path, socket_timeout=5)
    assert after.get("sewamitra:test:kept") == b"yes"  # from the AOF
    after.close()
    assert process.poll() is None
    second = int((data_dir / "redis" / "redis.pid").read_text())
    assert second != first
    assert alive(second)
