"""The audit trail is written one way: `storage.audit.record`, with an action from `AuditAction`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from storage import audit
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import AuditEvent, RequestStatus

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "console", "directory", "dispatch", "ivr", "sewamitra", "storage")


def test_record_keeps_the_action_as_the_database_has_always_held_it(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        audit.record(
            session,
            AuditAction.WORKER_AVAILABILITY,
            actor="user:7",
            entity="worker",
            entity_id=3,
            from_status="available",
            to_status="busy",
            reason="on leave",
            detail={"channel": "console"},
        )
    with Session(engine) as session:
        [event] = session.exec(select(AuditEvent)).all()
    assert (event.actor, event.action, event.entity, event.entity_id) == ("user:7", "worker.availability", "worker", 3)
    assert (event.from_status, event.to_status, event.reason) == ("available", "busy", "on leave")
    assert event.detail == {"channel": "console"}


def test_a_record_rolled_back_with_its_change_is_not_kept(engine: sa.Engine) -> None:
    with pytest.raises(RuntimeError), session_scope(engine) as session:  # noqa: PT012 (the change, then its failure)
        audit.record(session, AuditAction.SMS_UNCLEAR, actor="phone:1234", entity="sms")
        raise RuntimeError("the change failed")
    with Session(engine) as session:
        assert session.exec(select(AuditEvent)).all() == []


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (RequestStatus.CANCELLED, "request.cancelled"),
        (RequestStatus.ESCALATED, "request.escalated"),
        (RequestStatus.CLOSED, "request.closed"),
    ],
)
def test_a_request_moved_by_compare_and_set_keeps_its_old_action(status: RequestStatus, action: str) -> None:
    assert AuditAction.request_moved(status) == action


def test_no_audit_event_is_built_by_hand_outside_the_audit_module() -> None:
    built = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path != ROOT / "storage" / "audit.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\bAuditEvent\(", line) and not line.lstrip().startswith("class ")
    ]
    assert built == []
