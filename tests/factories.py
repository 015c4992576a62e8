"""What many tests build: settings, workers and requests near Lucknow's GPO, API tokens, signed
Twilio and Plivo posts, and the RQ jobs run in the test's own process."""

from __future__ import annotations

import threading
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, SQLModel, col, select
from twilio.request_validator import RequestValidator
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from core import numbers, pincodes
from core.clock import SYSTEM, Clock
from core.settings import Settings, load_settings
from devtools.plivo_simulator import PlivoCallSimulator, plivo_headers, plivo_number
from devtools.simulator import CallSimulator, FlaskTransport, Queued, Transcript
from dispatch import calllogs, context, jobs
from dispatch.queues import worker as rq_worker
from storage import tokens
from storage.db import session_scope
from storage.models import (
    ApiRole,
    Caller,
    Offer,
    Provider,
    RequestStatus,
    ServiceRequest,
    VerificationStatus,
    Worker,
    WorkerSkill,
)
from storage.runtime import Runtime
from telephony import telephony

ROOT = Path(__file__).resolve().parent.parent
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
PLIVO_AUTH_ID = "MA0123456789ABCDEF01"
PLATFORMS = ["twilio", "plivo"]  # what `both_platforms` runs a test on (conftest)
PUBLIC_URL = "https://helpline.example.gov.in"
CITIZEN = "+919876543210"


@dataclass(frozen=True)
class Point:
    """Coordinates a test can count on, where a looked-up place may have none."""

    latitude: float
    longitude: float


def located(pincode: str) -> Point:
    """Where the bundled directory puts `pincode`; the tests that use it cannot run without it."""
    place = pincodes.lookup(pincode)
    assert place is not None, pincode
    assert place.latitude is not None, pincode
    assert place.longitude is not None, pincode
    return Point(place.latitude, place.longitude)


GPO = located("226001")
KM_NORTH = 1 / 111.0  # degrees of latitude in a kilometre
ALWAYS_OPEN = {"opens": time(0, 0), "closes": time(23, 59, 59, 999999)}
AGENCY = "Gomti Home Services"
LUCKNOW_REQUEST = {
    "service": "plumber",
    "phone": "98765 43210",
    "pincode": "226001",
    "name": "Asha Verma",
    "address": "12 Hazratganj",
    "description": "The kitchen tap leaks.\nSecond floor.",
    "preferred_time": "after 5 pm",
    "language": "en",
}


# -- settings -------------------------------------------------------------------------------------------


def make_settings(tmp_path: Path, **environ: str) -> Settings:
    """Settings from the repository's config.yaml, with `environ` as the environment."""
    env = {"SEWAMITRA_DATA_DIR": str(tmp_path / "var"), **environ}
    return load_settings(ROOT / "config.yaml", env)


def with_hours(settings: Settings, **hours: object) -> Settings:
    return settings.model_copy(update={"call_centre": settings.call_centre.model_copy(update=hours)})


# -- rows -----------------------------------------------------------------------------------------------


def engine_of(app: Flask) -> sa.Engine:
    runtime: Runtime = app.extensions["sewamitra"]
    return runtime.engine


def add_worker(
    engine: sa.Engine,
    name: str,
    phone: str,
    km_north: float,
    *,
    skills: tuple[str, ...] = ("plumber",),
    verified: bool = True,
    available: bool = True,
    rating: float | None = 4.0,
    voice: bool = False,
) -> int:
    """A worker `km_north` kilometres north of Lucknow's GPO (PIN 226001)."""
    with session_scope(engine) as session:
        worker = Worker(
            name=name,
            phone=phone,
            pincode="226001",
            district="LUCKNOW",
            latitude=GPO.latitude + km_north * KM_NORTH,
            longitude=GPO.longitude,
            rating=rating,
            police_verification=VerificationStatus.VERIFIED if verified else VerificationStatus.PENDING,
            available=available,
            voice_preferred=voice,
        )
        session.add(worker)
        session.flush()
        assert worker.id is not None
        session.add_all([WorkerSkill(worker_id=worker.id, service_code=skill) for skill in skills])
        return worker.id


def add_request(engine: sa.Engine, service: str = "plumber", created: datetime | None = None) -> int:
    """A citizen's request at Lucknow's GPO, as the call would have filed it."""
    with session_scope(engine) as session:
        caller = session.exec(select(Caller).where(Caller.phone == CITIZEN)).first() or Caller(phone=CITIZEN)
        session.add(caller)
        session.flush()
        request = ServiceRequest(
            number=numbers.new_request_number(),
            service_code=service,
            pincode="226001",
            district="LUCKNOW",
            latitude=GPO.latitude,
            longitude=GPO.longitude,
            caller_id=caller.id,
            address_note="12 Hazratganj",
            created_at=created or datetime.now(UTC),
        )
        session.add(request)
        session.flush()
        assert request.id is not None
        return request.id


def request_of(engine: sa.Engine, request_id: int) -> ServiceRequest:
    with Session(engine) as session:
        request = session.get(ServiceRequest, request_id)
        assert request is not None
        return request


def requests_in(app: Flask) -> list[ServiceRequest]:
    with Session(engine_of(app)) as session:
        return list(session.exec(select(ServiceRequest).order_by(col(ServiceRequest.id))).all())


# -- the API --------------------------------------------------------------------------------------------


def token(app: Flask, role: ApiRole, client: str = "", *, provider: str | None = None) -> str:
    """A live token for a client of this role (an agency's, for provider)."""
    with session_scope(engine_of(app)) as session:
        if provider and session.exec(select(Provider).where(Provider.name == provider)).first() is None:
            session.add(Provider(name=provider, district="LUCKNOW"))
            session.flush()
        return tokens.create_token(session, client or f"{role.value}-system", role, provider=provider).secret


class Api:
    """Another system calling the API with its token."""

    def __init__(self, app: Flask, secret: str | None) -> None:
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {secret}"} if secret else {}

    def get(self, path: str, **query: Any) -> TestResponse:
        return self.client.get(path, query_string=query, headers=self.headers)

    def post(self, path: str, body: Any, **headers: str) -> TestResponse:
        return self.client.post(path, json=body, headers={**self.headers, **headers})

    def put(self, path: str, body: Any) -> TestResponse:
        return self.client.put(path, json=body, headers=self.headers)


# -- Twilio and Plivo -----------------------------------------------------------------------------------


def platform_of(app: Flask) -> str:
    """The telephony platform the app answers: twilio or plivo."""
    return str(app.extensions["sewamitra"].settings.telephony.platform)


def signed_post(client: FlaskClient, path: str, form: dict[str, str], *, token: str = AUTH_TOKEN) -> TestResponse:
    """Post `form` to `path` exactly as the app's platform would: signed over the public URL (Twilio's
    signature, or Plivo's V3 signature and nonce)."""
    if platform_of(client.application) == "plivo":
        return client.post(path, data=form, headers=plivo_headers(token, PUBLIC_URL + path, form))
    signature = RequestValidator(token).compute_signature(PUBLIC_URL + path, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def queue_wait_form(call_sid: str, phone: str, queue_time: int) -> dict[str, str]:
    """What Twilio posts to a queue's waitUrl for a caller on hold (every half minute or so)."""
    return {
        "CallSid": call_sid,
        "From": phone,
        "To": "+18005550100",
        "CallStatus": "in-progress",
        "Direction": "inbound",
        "QueuePosition": "1",
        "QueueTime": str(queue_time),
    }


def message_id(platform: str) -> str:
    """A fresh id of an inbound SMS as the platform makes them."""
    if platform == "plivo":
        return str(uuid.uuid4())
    return "SM" + numbers.new_request_number().ljust(32, "0")


def sms_from(client: FlaskClient, phone: str, body: str, sid: str | None = None) -> None:
    """A text reaches our webhook, signed as the app's platform signs it."""
    platform = platform_of(client.application)
    if platform == "plivo":
        form = {"MessageUUID": sid or message_id(platform), "From": plivo_number(phone), "To": "918035350100"}
        form |= {"Text": body, "Type": "sms"}
    else:
        form = {"MessageSid": sid or message_id(platform), "From": phone, "To": "+18005550100", "Body": body}
    answer = signed_post(client, f"/{platform}/sms", form)
    assert answer.status_code == 200
    assert answer.data.startswith(b"<?xml" if platform == "twilio" else b"<Response")


def simulator(client: FlaskClient, **setup: Any) -> CallSimulator:
    """A simulated call into the app, by its platform's rules and signatures."""
    if platform_of(client.application) == "plivo":
        transport = FlaskTransport(client, PUBLIC_URL, AUTH_TOKEN, sign=plivo_headers)
        return PlivoCallSimulator(transport, public_url=PUBLIC_URL, **setup)
    return CallSimulator(FlaskTransport(client, PUBLIC_URL, AUTH_TOKEN), public_url=PUBLIC_URL, **setup)


def call(app: Flask, keys: str, *, from_number: str = CITIZEN) -> Transcript:
    """The citizen dials the helpline and keys `keys`; then hangs up when the keys run out."""
    transcript = simulator(app.test_client(), from_number=from_number).run(keys)
    assert not transcript.errors, transcript.render(requests=True)
    return transcript


def answer_our_call(client: FlaskClient, placed: dict, keys: str) -> Transcript:
    """The platform runs a call the helpline placed (recorded by the sandbox): the callee answers and keys."""
    voice = placed["url"].removeprefix(PUBLIC_URL)
    status = placed["status_callback"].removeprefix(PUBLIC_URL)
    outbound = "outbound" if platform_of(client.application) == "plivo" else "outbound-api"
    ringing = simulator(
        client,
        direction=outbound,
        from_number=placed["from"],
        to_number=placed["to"],
        voice_path=voice,
        status_path=status,
    )
    transcript = ringing.run(keys)
    assert not transcript.errors, transcript.render(requests=True)
    return transcript


def in_the_agent_queue(transcript: Transcript) -> bool:
    """The caller was put in the queue for an agent: Twilio's <Enqueue>, or, on a platform without a
    queue verb, the helpline's own queue (its wait document)."""
    ours = any(request.url.endswith("/voice/queue/wait") for request in transcript.requests)
    return Queued("helpline") in transcript.events or ours


def call_form(platform: str, call_id: str, **fields: str) -> dict[str, str]:
    """A voice webhook's form as the platform posts it for an inbound call from CITIZEN; `call_id`
    one character, repeated into the platform's call id."""
    if platform == "plivo":
        uuid_of = str(uuid.UUID(call_id * 32))
        return {"CallUUID": uuid_of, "From": plivo_number(CITIZEN), "To": "918035350100", "Direction": "inbound"} | {
            "CallStatus": "in-progress",
            **fields,
        }
    return {
        "CallSid": "CA" + call_id * 32,
        "From": CITIZEN,
        "To": "+18005550100",
        "CallStatus": "in-progress",
        **fields,
    }


ENGLISH_DIGITS = "zero one two three four five six seven eight nine"
HINDI_DIGITS = "शून्य एक दो तीन चार पाँच छह सात आठ नौ"


def spoken_digits(number: str, words: str) -> str:
    return ", ".join(words.split()[int(d)] for d in number)


# -- the RQ workers -------------------------------------------------------------------------------------


def work_queued_jobs(app: Flask) -> None:
    """What the RQ workers do next: every queued job, in the jobs' context the test installed."""
    rq_worker(app.extensions["sewamitra"].redis).work(burst=True)


@contextmanager
def jobs_context(app: Flask, clock: Clock = SYSTEM) -> Iterator[None]:
    """The jobs' context as `sewamitra worker` installs it (the app's settings and services, the
    platform's API at the sandbox), by `clock`, for the while."""
    runtime: Runtime = app.extensions["sewamitra"]
    settings = runtime.settings
    context.install(context.JobContext(settings, runtime.engine, runtime.redis, telephony(settings), clock))
    try:
        yield
    finally:
        context.install(None)


def run_jobs(app: Flask) -> None:
    """What the RQ workers would do next: every queued job, in the jobs' context for the while."""
    with jobs_context(app):
        rq_worker(app.extensions["sewamitra"].redis).work(burst=True)


def write_call_logs(app: Flask) -> int:
    """What the call logs' writer does when a worker's mover queues it: the logs of the calls that
    ended, written (`dispatch.calllogs`)."""
    runtime: Runtime = app.extensions["sewamitra"]
    return calllogs.write_due(runtime.engine, runtime.redis)


# -- shared by several modules ---------------------------------------------------------------------


def run_context_jobs(ctx: context.JobContext) -> None:
    """Every queued job, in the jobs' context the test installed."""
    rq_worker(ctx.redis).work(burst=True)


def offers_of(engine: sa.Engine, request_id: int) -> list[Offer]:
    with Session(engine) as session:
        return list(session.exec(select(Offer).where(Offer.request_id == request_id).order_by(col(Offer.id))).all())


def assigned_job(
    ctx: context.JobContext, engine: sa.Engine, webhook: FlaskClient, phone: str, **worker: object
) -> ServiceRequest:
    """A worker near 226001 who took a fresh request by texting 1."""
    add_worker(engine, str(worker.pop("name", "Ramesh Kumar")), phone, 0.5, **worker)  # type: ignore[arg-type]
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    sms_from(webhook, phone, "1")
    run_context_jobs(ctx)
    request = request_of(engine, request_id)
    assert request.status is RequestStatus.ASSIGNED
    return request


def worker_of(engine: sa.Engine, worker_id: int) -> Worker:
    with Session(engine) as session:
        found = session.get(Worker, worker_id)
        assert found is not None
        return found


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """`app` served over real HTTP on a free local port."""
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        thread.join()


# -- what a store holds, as text: for the privacy tests' searches for a number ---------------------------


def forms(number: str) -> tuple[str, str]:
    """The number in E.164 and in the 10 digits a person writes."""
    return number, number[-10:]


def table_dump(engine: sa.Engine) -> str:
    """Every row of every table, as text."""
    lines = []
    with engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            lines += [f"{table.name}: {tuple(row)}" for row in connection.execute(sa.select(table))]
    return "\n".join(lines)


def redis_sends(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What every Redis connection of this process sends from now on, one entry a round trip (a command
    or several sent together)."""
    sent: list[object] = []
    send = redis.connection.AbstractConnection.send_packed_command

    def counted(self: redis.connection.AbstractConnection, *args: Any, **kwargs: Any) -> None:
        sent.append(args)
        send(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    return sent


def redis_dump(connection: redis.Redis) -> str:
    """Every key and value in the test's Redis database, RQ's compressed job data inflated."""
    parts: list[Any] = []
    for name in connection.scan_iter(count=1000):
        kind = connection.type(name)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        values: list[Any] = []
        if kind == "string":
            values = [connection.get(name) or b""]
        elif kind == "hash":
            values = [value for pair in connection.hgetall(name).items() for value in pair]
        elif kind == "list":
            values = connection.lrange(name, 0, -1)
        elif kind == "set":
            values = list(connection.smembers(name))
        elif kind == "zset":
            values = connection.zrange(name, 0, -1)
        parts += [name, *values, *(_inflated(v) for v in values)]
    return b"\n".join(parts).decode("utf-8", "replace")


def _inflated(value: bytes) -> bytes:
    try:
        return zlib.decompress(value)
    except zlib.error:
        return b""


def holds(dump: str, number: str) -> bool:
    return any(form in dump for form in forms(number))


TWILIO_API_KEY_SID = "SK" + "5" * 32
TWILIO_API_KEY_SECRET = "browser-key-secret-" + "k" * 32
TWIML_APP_SID = "AP" + "a" * 32
PLIVO_BROWSER_APP_ID = "77123456789012345"


def with_browser_phones(settings: Settings) -> Settings:
    """The platform's browser credentials configured: agents answer in the console (the softphone)."""
    twilio = {"api_key_sid": TWILIO_API_KEY_SID, "api_key_secret": TWILIO_API_KEY_SECRET}
    twilio |= {"twiml_app_sid": TWIML_APP_SID}
    return settings.model_copy(
        update={
            "twilio": settings.twilio.model_copy(update=twilio),
            "plivo": settings.plivo.model_copy(update={"browser_app_id": PLIVO_BROWSER_APP_ID}),
        }
    )
