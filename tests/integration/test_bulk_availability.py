"""An agency marks its workers available or unavailable from the worker list, several at once:
each change audited as from every channel, another agency's workers refused and the refusal
audited, a suspended worker not made available, and forged lists (garbage ids, too many) changing
nothing. SQLite and PostgreSQL, the real Redis and RQ queue."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from rq import Queue
from sqlmodel import Session, col, select

from dispatch import quality
from storage.db import session_scope
from storage.models import AuditEvent, Role
from tests.console import Console, add_user
from tests.factories import add_worker, worker_of

pytestmark = pytest.mark.both_databases
LIST = "/console/workers"
BULK = "/console/workers/availability"


def of_agency(engine: sa.Engine, name: str, agency: str, phone: str, *, available: bool = True) -> int:
    worker_id = add_worker(engine, name, phone, km_north=1, available=available)
    with session_scope(engine) as db:
        db.execute(
            sa.text("UPDATE worker SET provider_id = (SELECT id FROM provider WHERE name = :name) WHERE id = :worker"),
            {"name": agency, "worker": worker_id},
        )
    return worker_id


def signed_in_at_the_list(app: Flask, username: str) -> Console:
    console = Console(app)
    console.sign_in(username)
    console.get(LIST)
    return console


def availability(engine: sa.Engine, *worker_ids: int) -> list[bool]:
    return [worker_of(engine, worker_id).available for worker_id in worker_ids]


def events(engine: sa.Engine, action: str) -> list[AuditEvent]:
    with Session(engine) as db:
        return list(db.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))).all())


def reindexed(connection: redis.Redis) -> list[tuple[Any, ...]]:
    waiting = Queue("default", connection=connection).jobs
    return sorted(tuple(job.args) for job in waiting if job.func_name == "dispatch.jobs.reindex_worker")


def test_an_agency_marks_two_of_its_workers_unavailable_each_audited_and_reindexed(
    app: Flask, engine: sa.Engine, redis_client: redis.Redis
) -> None:
    add_user(engine, "gomti", Role.PROVIDER, provider="Gomti Services")
    ramesh = of_agency(engine, "Ramesh Kumar", "Gomti Services", "+919800000001")
    sunita = of_agency(engine, "Sunita Devi", "Gomti Services", "+919800000002")
    gomti = signed_in_at_the_list(app, "gomti")

    answer = gomti.post(BULK, {"available": "no", "worker": [str(ramesh), str(sunita)], "back": "/console/workers?q=a"})

    assert answer.status_code == 302
    assert answer.headers["Location"].endswith("/console/workers?q=a")
    assert availability(engine, ramesh, sunita) == [False, False]
    changes = [(e.entity_id, e.from_status, e.to_status, e.detail) for e in events(engine, "worker.availability")]
    assert sorted(changes) == sorted(
        [(ramesh, "available", "busy", {"channel": "console"}), (sunita, "available", "busy", {"channel": "console"})]
    )
    assert reindexed(redis_client) == sorted([(ramesh,), (sunita,)])
    shown = gomti.get(LIST).get_data(as_text=True)
    assert "Marked unavailable" in shown
    assert "Ramesh Kumar, Sunita Devi" in shown
    assert "Marked unavailable" not in gomti.get(LIST).get_data(as_text=True)  # said once


def test_another_agencys_worker_and_an_unknown_id_are_refused_and_audited_the_own_one_changes(
    app: Flask, engine: sa.Engine
) -> None:
    add_user(engine, "saryu", Role.PROVIDER, provider="Saryu Services")
    add_user(engine, "gomti", Role.PROVIDER, provider="Gomti Services")
    ours = of_agency(engine, "Ramesh Kumar", "Gomti Services", "+919800000001", available=False)
    theirs = of_agency(engine, "Sunita Devi", "Saryu Services", "+919800000002", available=False)
    gomti = signed_in_at_the_list(app, "gomti")

    gomti.post(BULK, {"available": "yes", "worker": [str(ours), str(theirs), "999999"]})

    assert availability(engine, ours, theirs) == [True, False]
    [refusal] = events(engine, "access.refused")
    assert (refusal.entity, refusal.detail["workers"]) == ("worker", [theirs, 999999])
    shown = gomti.get(LIST).get_data(as_text=True)
    assert f"#{theirs}: not found, or not your agency" in shown.replace("&#39;", "'")
    assert "Sunita Devi" not in shown  # another agency's worker is not named to them


def test_a_suspended_worker_is_not_made_available_and_the_list_says_so(app: Flask, engine: sa.Engine) -> None:
    add_user(engine, "gomti", Role.PROVIDER, provider="Gomti Services")
    ramesh = of_agency(engine, "Ramesh Kumar", "Gomti Services", "+919800000001", available=False)
    sunita = of_agency(engine, "Sunita Devi", "Gomti Services", "+919800000002", available=False)
    with session_scope(engine) as db:
        assert quality.suspend(db, sunita, "complaints", "user:1", datetime.now(UTC))
    gomti = signed_in_at_the_list(app, "gomti")

    gomti.post(BULK, {"available": "yes", "worker": [str(ramesh), str(sunita)]})

    assert availability(engine, ramesh, sunita) == [True, False]
    assert [e.entity_id for e in events(engine, "worker.availability")] == [ramesh]
    shown = gomti.get(LIST).get_data(as_text=True)
    assert 'Marked available: <span class="num">1</span>' in shown
    assert "Sunita Devi: suspended" in shown


@pytest.mark.parametrize(
    "ids",
    [
        pytest.param(["1", "x"], id="garbage"),
        pytest.param(["1", "-3"], id="negative"),
        pytest.param(["1", "99999999999999999999"], id="huge"),
        pytest.param(["1", "1\x00"], id="nul"),
        pytest.param([str(n) for n in range(1, 52)], id="too-many"),
        pytest.param([], id="none"),
    ],
)
def test_a_forged_list_changes_nothing_and_says_why(app: Flask, engine: sa.Engine, ids: list[str]) -> None:
    add_user(engine, "gomti", Role.PROVIDER, provider="Gomti Services")
    ramesh = of_agency(engine, "Ramesh Kumar", "Gomti Services", "+919800000001")
    gomti = signed_in_at_the_list(app, "gomti")

    answer = gomti.post(BULK, {"available": "no", "worker": [i.replace("1", str(ramesh), 1) for i in ids]})

    assert answer.status_code in (302, 400)
    assert availability(engine, ramesh) == [True]
    assert events(engine, "worker.availability") == []
    if answer.status_code == 302:
        shown = gomti.get(LIST).get_data(as_text=True)
        assert any(
            words in shown for words in ("could not be read", "at most 50 workers", "Tick the workers to change first")
        )


def test_a_wrong_state_or_no_csrf_token_is_refused(app: Flask, engine: sa.Engine) -> None:
    add_user(engine, "gomti", Role.PROVIDER, provider="Gomti Services")
    ramesh = of_agency(engine, "Ramesh Kumar", "Gomti Services", "+919800000001")
    gomti = signed_in_at_the_list(app, "gomti")

    assert gomti.post(BULK, {"available": "maybe", "worker": [str(ramesh)]}).status_code == 400
    forged = gomti.client.post(BULK, data={"available": "no", "worker": [str(ramesh)]})
    assert forged.status_code in (400, 403)
    assert (
        gomti.post(BULK, {"available": "no", "worker": [str(ramesh)], "back": "https://evil.example/"})
        .headers["Location"]
        .endswith("/console/workers")
    )
    assert availability(engine, ramesh) == [False]  # only the last, genuine one


def test_a_supervisor_marks_any_agencys_workers(app: Flask, engine: sa.Engine) -> None:
    add_user(engine, "gomti", Role.PROVIDER, provider="Gomti Services")
    add_user(engine, "saryu", Role.PROVIDER, provider="Saryu Services")
    ramesh = of_agency(engine, "Ramesh Kumar", "Gomti Services", "+919800000001")
    sunita = of_agency(engine, "Sunita Devi", "Saryu Services", "+919800000002")
    add_user(engine, "vikram", Role.SUPERVISOR)
    vikram = signed_in_at_the_list(app, "vikram")

    vikram.post(BULK, {"available": "no", "worker": [str(ramesh), str(sunita)]})

    assert availability(engine, ramesh, sunita) == [False, False]
    assert events(engine, "access.refused") == []
