"""A worker added by hand (the console's form, another system through the API): stored with their
skills and the audit event of it, waiting for police verification whoever adds them."""

from __future__ import annotations

from sqlmodel import Session

from directory.importer import WorkerRow, save_rows
from storage.audit import AuditAction, record
from storage.models import VerificationStatus


def onboard(session: Session, row: WorkerRow, provider_id: int | None, *, actor: str) -> int:
    """The new worker's id; in the session's transaction. After the commit, reindex them."""
    added = save_rows(session, [row], provider_id)[0]
    record(
        session,
        AuditAction.WORKER_CREATED,
        actor=actor,
        entity="worker",
        entity_id=added,
        to_status=VerificationStatus.PENDING.value,
        detail={"provider_id": provider_id, "skills": list(row.skills)},
    )
    return added
