"""A worker marked busy leaves the same trace whichever channel it came by: the console, the API,
the worker's SMS or the worker's call. Real databases of each kind, real Redis, real RQ jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import sqlalchemy as sa
from flask import Flask
from rq import Queue
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from core import pincodes
from core.settings import Settings
from dispatch import jobs
from dispatch.queues import worker as rq_worker
from ivr.effects import CallContext, set_availability
from storage import tokens
from storage.db import session_scope
from storage.models import ApiRole, AuditEvent, Role, VerificationStatus, Worker, WorkerSkill
from tests.console import Console, add_user
from tests.factories import AUTH_TOKEN, PUBLIC_URL, worker_of

RAMESH = "+919839012345"
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)
CALL_SID = "CA" + "7" * 32


def add_worker(engine: sa.Engine) -> int:
    """A verified, available plumber, last changed long ago."""
    place = pincodes.lookup("226001")
    assert place is not None
    assert place.latitude is not None
    assert place.longitude is not None
    with session_scope(engine) as session:
        worker = Worker(
            name="Ramesh Yadav",
            phone=RAMESH,
            pincode="226001",
            district=place.district,
            latitude=place.latitude,
            longitude=place.longitude,
            police_verification=VerificationStatus.VERIFIED,
            created_at=LONG_AGO,
            updated_at=LONG_AGO,
        )
        session.add(worker)
        session.flush()
        assert worker.id is not None
        session.add(WorkerSkill(worker_id=worker.id, service_code="plumber"))
        return worker.id


def the_change(engine: sa.Engine, worker_id: int) -> tuple[Any, ...]:
    """The one audit event of the change, in every field but the moment and the actor."""
    with Session(engine) as session:
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "worker.availability")).all()
    return (
        event.action,
        event.entity,
        event.entity_id,
        event.from_status,
        event.to_status,
        event.reason,
        event.detail,
        event.actor.split(":")[0],
    )


def shape(worker_id: int, channel: str, actor: str) -> tuple[Any, ...]:
    return ("worker.availability", "worker", worker_id, "available", "busy", None, {"channel": channel}, actor)


def changed_now(engine: sa.Engine, worker_id: int) -> bool:
    worker = worker_of(engine, worker_id)
    return not worker.available and datetime.now(UTC) - worker.updated_at < timedelta(minutes=5)


def reindex_jobs(connection: redis.Redis) -> list[tuple[str | None, tuple[Any, ...]]]:
    """The reindex jobs waiting in the default queue: their ids and arguments."""
    waiting = Queue("default", connection=connection).jobs
    return [(job.id, tuple(job.args)) for job in waiting if job.func_name == "dispatch.jobs.reindex_worker"]


def test_an_agent_on_the_console(app: Flask, engine: sa.Engine, redis_client: redis.Redis) -> None:
    worker_id = add_worker(engine)
    add_user(engine, "asha.agent", Role.AGENT)
    agent = Console(app)
    agent.sign_in("asha.agent")
    agent.get(f"/console/workers/{worker_id}")

    assert agent.post(f"/console/workers/{worker_id}/availability", {"available": "no"}).status_code == 302

    assert the_change(engine, worker_id) == shape(worker_id, "console", "user")
    assert changed_now(engine, worker_id)
    assert [args for _, args in reindex_jobs(redis_client)] == [(worker_id,)]


def test_another_system_through_the_api(app: Flask, engine: sa.Engine, redis_client: redis.Redis) -> None:
    worker_id = add_worker(engine)
    with session_scope(engine) as session:
        secret = tokens.create_token(session, "call-centre", ApiRole.AGENT).secret
    client = app.test_client()

    answer = client.put(
        f"/api/v1/workers/{worker_id}/availability",
        json={"available": False},
        headers={"Authorization": f"Bearer {secret}"},
    )

    assert answer.status_code == 200
    assert answer.get_json()["available"] is False
    assert the_change(engine, worker_id) == shape(worker_id, "api", "api")
    assert changed_now(engine, worker_id)
    assert [args for _, args in reindex_jobs(redis_client)] == [(worker_id,)]


def test_the_worker_by_sms(app: Flask, engine: sa.Engine, redis_client: redis.Redis, jobs_run: None) -> None:
    worker_id = add_worker(engine)
    jobs.rebuild_index()
    assert redis_client.zrange("sewamitra:geo:plumber", 0, -1) == [str(worker_id).encode()]
    form = {"MessageSid": "SM" + "5" * 32, "From": RAMESH, "To": "+18005550100", "Body": "BUSY"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{PUBLIC_URL}/twilio/sms", form)

    answer = app.test_client().post("/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
    rq_worker(redis_client).work(burst=True)  # handles the SMS, then reindexes the worker

    assert answer.status_code == 200
    assert the_change(engine, worker_id) == shape(worker_id, "sms", "worker")
    assert changed_now(engine, worker_id)
    assert redis_client.zrange("sewamitra:geo:plumber", 0, -1) == []  # reindexed: busy is out of the index


def test_the_worker_on_the_phone(helpline_settings: Settings, engine: sa.Engine, redis_client: redis.Redis) -> None:
    worker_id = add_worker(engine)
    call = CallContext(helpline_settings, engine, redis_client, CALL_SID, RAMESH, turn=3, language="hi")

    outcome = set_availability(call, {"worker": str(worker_id), "state": "busy"})

    assert outcome.name == "set"
    assert the_change(engine, worker_id) == shape(worker_id, "ivr", "worker")
    assert changed_now(engine, worker_id)
    assert reindex_jobs(redis_client) == [(f"reindex-{worker_id}-{CALL_SID}", (worker_id,))]
