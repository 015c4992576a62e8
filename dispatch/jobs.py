"""Background jobs. Module-level functions that take ids, never ORM objects."""

from __future__ import annotations

from datetime import UTC, datetime

from rq import get_current_job

HEARTBEAT_KEY = "sewamitra:jobs:heartbeat"


def heartbeat() -> str:
    """Prove the scheduler → queue → worker path is alive: /healthz reads the time it left."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("heartbeat runs only as an RQ job")
    moment = datetime.now(UTC).isoformat()
    job.connection.set(HEARTBEAT_KEY, moment)
    return moment
