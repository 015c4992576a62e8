"""The audit trail: who did what to which record, written one way by every channel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from storage.models import AuditEvent, RequestStatus, utcnow


class AuditAction(StrEnum):
    """Every action the helpline records; the values are what the database and the timelines hold."""

    ACCESS_REFUSED = "access.refused"
    CSRF_REFUSED = "csrf.refused"
    API_TOKEN_CREATED = "api_token.created"  # noqa: S105 (an action, not a secret)
    API_TOKEN_REVOKED = "api_token.revoked"  # noqa: S105 (an action, not a secret)
    USER_CREATED = "user.created"
    USER_SIGNED_IN = "user.signed_in"
    USER_SIGNED_OUT = "user.signed_out"
    USER_SIGN_IN_FAILED = "user.sign_in_failed"
    USER_SIGN_IN_PAUSED = "user.sign_in_paused"
    USER_CHANGED = "user.changed"
    USER_DISABLED = "user.disabled"
    USER_ENABLED = "user.enabled"
    USER_PASSWORD_RESET = "user.password_reset"  # noqa: S105 (an action, not a secret)
    USER_PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 (an action, not a secret)
    CALLBACK_REQUESTED = "callback.requested"
    CALLBACK_SCHEDULED = "callback.scheduled"
    CALLBACK_HANDLED = "callback.handled"
    CALLBACK_TAKEN = "callback.taken"  # an agent made a callback theirs
    CALLBACK_CALL_PLACED = "callback.call_placed"  # click-to-call: the agent's phone rung, then the caller
    CALLBACK_ATTEMPTED = "callback.attempted"  # one try's outcome and note, confirmed by the agent
    QUEUE_TAKEN = "queue.taken"
    AGENT_STATE_CHANGED = "agent.state_changed"  # ready, on a call, wrap-up, paused (with its reason)
    AGENT_OFFERED = "agent.offered"  # a waiting caller rang on a ready agent's console
    AGENT_RECORDING_PAUSED = "agent.recording_paused"  # the agent paused the recording of their call
    AGENT_RECORDING_RESUMED = "agent.recording_resumed"
    AGENT_RECORDING_REFUSED = "agent.recording_refused"  # not their call, or the platform failed
    SOFTPHONE_TOKEN = "softphone.token"  # noqa: S105 (a name) an agent's browser was given the platform's token to place calls
    SOFTPHONE_LEG_REFUSED = "softphone.leg_refused"  # a browser's call for a caller its agent does not hold
    # A supervisor on an agent's call (callcentre/monitoring.py): listen, whisper or barge.
    MONITOR_ASKED = "monitor.asked"  # from the wall: the supervisor's phone rings
    MONITOR_JOINED = "monitor.joined"  # their key press: in the caller's room
    MONITOR_SWITCHED = "monitor.switched"  # listen, whisper, barge: from → to
    MONITOR_ENDED = "monitor.ended"  # their phone hung up
    MONITOR_REFUSED = "monitor.refused"  # a call not live, a mode the platform cannot do, the platform's no
    CALL_HELD = "call.held"  # the agent put their caller on hold (music), from the caller's screen
    CALL_RESUMED = "call.resumed"
    AGENT_MUTED = "agent.muted"  # the agent muted themselves: their caller no longer hears them
    AGENT_UNMUTED = "agent.unmuted"
    CALL_TRANSFERRED = "call.transferred"  # to another agent, the supervisors, or the phone menu
    CALL_CONTROL_FAILED = "call.control_failed"  # the platform refused a hold, mute or transfer
    AGENT_CALL_DISPOSED = "agent_call.disposed"  # its wrap-up code given or corrected (or none given)
    AGENT_CALL_REVIEWED = "agent_call.reviewed"  # a supervisor's quality review saved (new or edited)
    FEEDBACK_CALL_UNANSWERED = "feedback.call_unanswered"
    REQUEST_CREATED = "request.created"
    REQUEST_OFFERED = "request.offered"
    REQUEST_ASSIGNED = "request.assigned"
    REQUEST_COMPLETED = "request.completed"
    REQUEST_COMPLETION_REFUSED = "request.completion_refused"
    REQUEST_CLOSED = "request.closed"
    REQUEST_ESCALATED = "request.escalated"
    REQUEST_CANCELLED = "request.cancelled"
    REQUEST_REDISPATCHED = "request.redispatched"
    REQUEST_HANDED = "request.handed"  # to a provider agency
    REQUEST_RESCHEDULED = "request.rescheduled"  # moved to another visit slot (dispatch/changes.py)
    REQUEST_RELEASED = "request.released"  # a worker gave back a job moved to a time they cannot make
    REQUEST_CHANGE_REFUSED = "request.change_refused"  # a change asked by SMS from a number that did not book it
    REQUEST_NOTE = "request.note"
    REQUEST_FOLLOWUP = "request.followup"
    REQUEST_CALL_BRIDGED = "request.call_bridged"  # worker and citizen put through by the helpline
    REQUEST_REWORK = "request.rework"  # on the job redone: its rework visit opened (a low rating, a problem)
    REQUEST_REWORK_OTHER_WORKER = "request.rework_other"  # a rework's citizen or agent asked for another worker
    REQUEST_LEVEL_RAISED = "request.level_raised"  # up one rung of the escalation ladder (dispatch/ladder)
    REQUEST_CITIZEN_CALL_PLACED = "request.citizen_call_placed"  # an officer rings the citizen, recorded
    REQUEST_CITIZEN_CALL_ENDED = "request.citizen_call_ended"  # how that call went, and its recording
    REQUEST_ESCALATION_CLOSED = "request.escalation_closed"  # closed after the call, with an outcome
    # The worker's day (dispatch/visit.py): on the way, arrived, started with the citizen's start code.
    REQUEST_ON_THE_WAY = "request.on_the_way"
    REQUEST_ARRIVED = "request.arrived"
    REQUEST_STARTED = "request.started"
    REQUEST_START_REFUSED = "request.start_refused"  # a wrong start code, or too many
    REQUEST_CODE_SENT = "request.code_sent"  # a start or completion code sent again to the citizen by an agent
    REQUEST_CODE_RESET = "request.code_reset"  # a new code: the old one stops working
    REQUEST_LATE = "request.late"  # not started by the slot's end: the agency is told
    REQUESTS_EXPORTED = "requests.exported"
    OFFER_SENT = "offer.sent"
    OFFER_DECLINED = "offer.declined"
    OFFER_EXPIRED = "offer.expired"
    OFFER_WITHDRAWN = "offer.withdrawn"
    SMS_UNCLEAR = "sms.unclear"
    WORKER_CREATED = "worker.created"
    WORKER_AVAILABILITY = "worker.availability"
    WORKER_DEACTIVATED = "worker.deactivated"
    WORKER_REACTIVATED = "worker.reactivated"
    WORKER_VERIFIED = "worker.verified"
    WORKER_REJECTED = "worker.rejected"
    WORKERS_IMPORTED = "workers.imported"
    WORKER_REVIEW_FLAGGED = "worker.review_flagged"  # on the agency's review list (dispatch/quality)
    WORKER_REVIEW_CLEARED = "worker.review_cleared"
    WORKER_SUSPENDED = "worker.suspended"
    WORKER_SUSPENSION_LIFTED = "worker.suspension_lifted"
    WORKER_VERIFICATION_REMINDED = "worker.verification_reminded"  # the agency told it expires soon
    RETENTION_RUN = "privacy.retention_run"  # counts only: never whose data
    PRIVACY_ACCESS_GIVEN = "privacy.access_given"
    PRIVACY_ERASURE_FILED = "privacy.erasure_filed"
    PRIVACY_ERASED = "privacy.erased"  # counts only
    PRIVACY_ERASURE_REJECTED = "privacy.erasure_rejected"
    RECORDING_PLAYED = "recording.played"  # the spoken address heard: by a worker on the phone, an agent in the console
    RECORDING_REFUSED = "recording.refused"  # a console user who may not hear it asked to
    BREACH_RECORDED = "privacy.breach_recorded"  # counts only

    @classmethod
    def request_moved(cls, status: RequestStatus) -> AuditAction:
        """A request moved to `status` by a plain compare-and-set (cancelled, escalated, closed)."""
        return cls(f"request.{status.value}")


def record(
    session: Session,
    action: AuditAction,
    *,
    actor: str,
    entity: str,
    entity_id: int | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    detail: Mapping[str, object] | None = None,
) -> AuditEvent:
    """Add one audit event to the session's transaction: it is kept if, and only if, the change is."""
    event = AuditEvent(
        **row(
            action,
            actor=actor,
            entity=entity,
            entity_id=entity_id,
            from_status=from_status,
            to_status=to_status,
            reason=reason,
            detail=detail,
        )
    )
    session.add(event)
    return event


def row(
    action: AuditAction,
    *,
    actor: str,
    entity: str,
    entity_id: int | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    detail: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """One audit event's columns: what `record` adds, and `record_rows` inserts."""
    return {
        "at": utcnow(),
        "actor": actor,
        "action": action.value,
        "entity": entity,
        "entity_id": entity_id,
        "from_status": from_status,
        "to_status": to_status,
        "reason": reason,
        "detail": dict(detail or {}),
    }


def record_rows(session: Session, rows: Sequence[Mapping[str, object]]) -> None:
    """Several events in the session's transaction in one INSERT, with no ORM object each (a dispatch
    round's): kept if, and only if, the change is."""
    if rows:
        session.execute(sa.insert(AuditEvent.__table__), list(rows))  # type: ignore[attr-defined]
