"""A worker says they can take jobs, or cannot: one change with one audit shape, whoever makes it
(an agent on the console, another system through the API, the worker by SMS or by phone)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Session

from storage.audit import AuditAction, record
from storage.models import Worker


class Via(StrEnum):
    """The channel a change came by, kept in the audit event's detail."""

    CONSOLE = "console"
    API = "api"
    SMS = "sms"
    IVR = "ivr"


def state(available: bool) -> str:
    """The word the audit trail and the console use for it."""
    return "available" if available else "busy"


def set_availability(
    session: Session,
    worker_id: int,
    available: bool,
    *,
    actor: str,
    channel: Via,
    reason: str | None = None,
    now: datetime,
) -> Worker | None:
    """Mark the worker available or busy in the session's transaction, audited from what to what;
    None when there is no such worker. After the commit, `enqueue.reindex_worker` (offers follow the index)."""
    worker = session.get(Worker, worker_id, with_for_update=True)
    if worker is None:
        return None
    record(
        session,
        AuditAction.WORKER_AVAILABILITY,
        actor=actor,
        entity="worker",
        entity_id=worker_id,
        from_status=state(worker.available),
        to_status=state(available),
        reason=reason,
        detail={"channel": channel.value},
    )
    worker.available, worker.updated_at = available, now
    session.add(worker)
    return worker
