"""A worker says they can take jobs, or cannot: one change with one audit shape, whoever makes it
(an agent on the console, another system through the API, the worker by SMS or by phone)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlmodel import Session, col, select

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


MAX_AT_ONCE = 50  # one page of the worker list


class NotChanged(StrEnum):
    """Why one worker of a bulk change was left as they were."""

    NOT_YOURS = "not_yours"  # no such worker, or another agency's: the two look the same to the user
    SUSPENDED = "suspended"
    INACTIVE = "inactive"
    ALREADY = "already"


@dataclass(frozen=True)
class BulkChange:
    """What a bulk change did: the workers changed, and each one left as they were with why."""

    changed: list[Worker] = field(default_factory=list)
    left: list[tuple[int, Worker | None, NotChanged]] = field(default_factory=list)

    def refused(self) -> list[int]:
        """The ids the user may not change: to be audited as a refusal."""
        return [worker_id for worker_id, _, why in self.left if why is NotChanged.NOT_YOURS]


def why_not(worker: Worker | None, available: bool, agency_id: int | None) -> NotChanged | None:
    """Pure: why this worker may not be marked so by this user (agency_id: a provider user's
    agency, None for staff), or None when the change goes ahead."""
    if worker is None or (agency_id is not None and worker.provider_id != agency_id):
        return NotChanged.NOT_YOURS
    if available and worker.suspended_at is not None:
        return NotChanged.SUSPENDED
    if available and not worker.active:
        return NotChanged.INACTIVE
    if worker.available == available:
        return NotChanged.ALREADY
    return None


def set_availability_of_many(
    session: Session,
    worker_ids: list[int],
    available: bool,
    *,
    agency_id: int | None,
    actor: str,
    channel: Via,
    now: datetime,
) -> BulkChange:
    """Several workers marked at once, each by `set_availability` (one audit event each, as from
    every channel), in the session's transaction; a suspended or inactive worker is not made
    available, and a provider user (`agency_id`) changes its own agency's workers only."""
    if len(worker_ids) > MAX_AT_ONCE:
        raise ValueError(f"at most {MAX_AT_ONCE} workers at once")
    found = {w.id: w for w in session.exec(select(Worker).where(col(Worker.id).in_(worker_ids)).with_for_update())}
    outcome = BulkChange()
    for worker_id in dict.fromkeys(worker_ids):
        worker = found.get(worker_id)
        why = why_not(worker, available, agency_id)
        if why is not None:
            outcome.left.append((worker_id, None if why is NotChanged.NOT_YOURS else worker, why))
            continue
        changed = set_availability(session, worker_id, available, actor=actor, channel=channel, now=now)
        assert changed is not None  # locked above
        outcome.changed.append(changed)
    return outcome
