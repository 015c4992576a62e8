"""GET /healthz: is the database reachable, Redis up, are jobs running, and how deep are the queues?"""

from __future__ import annotations

from datetime import datetime

import redis
import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from rq import Worker, cron_scheduler_registry
from rq.registry import FailedJobRegistry

from dispatch.jobs import HEARTBEAT_KEY
from dispatch.queues import QUEUE_ORDER, queue

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    helpline = current_app.extensions["sewamitra"]
    report: dict[str, object] = {}
    try:
        with helpline.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        report["database"] = "ok"
    except sa.exc.SQLAlchemyError as exc:
        report["database"] = f"error: {type(exc).__name__}"
    try:
        connection = helpline.redis
        connection.ping()
        report["redis"] = "ok"
        report["rq_workers"] = Worker.count(connection=connection)
        report["schedulers"] = schedulers(connection)
        report["jobs_last_ran_s_ago"] = _seconds_since(connection.get(HEARTBEAT_KEY), helpline.clock.now())
        report["queues"] = {name.value: queue(connection, name).count for name in QUEUE_ORDER}
        report["failed_jobs"] = sum(FailedJobRegistry(queue=queue(connection, name)).count for name in QUEUE_ORDER)
    except Exception as exc:  # any Redis failure is a health answer, not a crash
        report["redis"] = f"error: {type(exc).__name__}"
    healthy = report["database"] == "ok" and report["redis"] == "ok"
    report["status"] = "ok" if healthy else "degraded"
    return jsonify(report), 200 if healthy else 503


def schedulers(connection: redis.Redis) -> int:
    """The schedulers running, as `rq.cron.CronScheduler.all` finds them (its registry cleaned of the
    silent, each one's own record there), without importing `rq.cron`: it brings croniter and
    dateutil into every web worker for this one count."""
    cron_scheduler_registry.cleanup(connection)
    names = cron_scheduler_registry.get_keys(connection)
    return sum(1 for name in names if connection.exists(f"{SCHEDULER_PREFIX}{name}"))


SCHEDULER_PREFIX = "rq:cron_scheduler:"  # rq.cron.CronScheduler.fetch's key of a scheduler's record


def _seconds_since(raw: bytes | None, now: datetime) -> float | None:
    if raw is None:
        return None
    return round((now - datetime.fromisoformat(raw.decode())).total_seconds(), 1)
