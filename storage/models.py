"""The helpline's records: SQLModel tables, one class a noun, statuses as str Enums."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which drops the zone) and PostgreSQL alike."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use storage.models.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(enum: type[StrEnum]) -> sa.Enum:
    return sa.Enum(
        enum,
        native_enum=False,
        length=20,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _moment(index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=True, index=index)


class VerificationStatus(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    REJECTED = "rejected"


class Origin(StrEnum):
    LOCAL = "local"
    RETURNED_MIGRANT = "returned_migrant"


class RequestStatus(StrEnum):
    NEW = "new"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    COMPLETED = "completed"
    CLOSED = "closed"
    ESCALATED = "escalated"
    CANCELLED = "cancelled"


class Channel(StrEnum):
    IVR = "ivr"
    AGENT = "agent"
    SMS = "sms"
    API = "api"
    OPEN311 = "open311"


class OfferStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"
    TAKEN_BACK = "taken_back"  # accepted, then taken back: the worker did not start the visit in time


class OfferChannel(StrEnum):
    SMS = "sms"
    VOICE = "voice"
    AGENT = "agent"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class SmsDelivery(StrEnum):
    """An SMS of ours on its way out: recorded, handed to Twilio, then Twilio's reports of it."""

    PENDING = "pending"  # recorded, not yet handed to Twilio
    SEND_FAILED = "send_failed"  # Twilio would not take it (or could not be reached): tried again when due
    NOT_SENT = "not_sent"  # given up on after its tries: an agent sees it on the request
    QUEUED = "queued"  # Twilio took it
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # Twilio could not send it
    UNDELIVERED = "undelivered"  # the carrier could not deliver it
    DELIVERED = "delivered"


class SmsHandling(StrEnum):
    """An SMS that came in, as the helpline acts on it."""

    RECEIVED = "received"  # recorded, not yet handled
    HANDLING = "handling"  # a job has claimed it
    HANDLED = "handled"
    FAILED = "handling_failed"  # acting on it failed; kept for an agent to read


class CallbackStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    CANCELLED = "cancelled"
    UNREACHABLE = "unreachable"  # `agents.callback_max_attempts` tries, none answered


class CallbackOutcome(StrEnum):
    """How one attempt to ring a caller back went, as the agent confirms it."""

    REACHED = "reached"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    WRONG_NUMBER = "wrong_number"


class PrivacyRequestKind(StrEnum):
    ACCESS = "access"  # what is held about them
    ERASURE = "erasure"


class PrivacyRequestStatus(StrEnum):
    PENDING = "pending"  # an erasure waiting for a supervisor
    DONE = "done"
    REJECTED = "rejected"


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    PROVIDER = "provider"
    DISTRICT_OFFICER = "district_officer"  # the requests of their districts that climbed the ladder
    STATE_OFFICER = "state_officer"  # every district's


class RecordingKind(StrEnum):
    """What a recording holds."""

    ADDRESS = "address"  # the caller's spoken address, at booking
    CITIZEN_CALL = "citizen_call"  # an officer's call to the citizen before closing an escalated request
    AGENT_CALL = "agent_call"  # an agent's call with a caller (AgentCall, by the caller's call id)


class CitizenCallStatus(StrEnum):
    """An officer's call to the citizen, through the helpline: placed, then how the citizen's leg went."""

    PLACED = "placed"  # the officer's phone is being rung
    ANSWERED = "answered"  # the citizen picked up and they talked
    UNANSWERED = "unanswered"  # the officer or the citizen did not pick up, or the line was busy
    FAILED = "failed"


class ApiRole(StrEnum):
    """What another system may do through the JSON API and Open311."""

    PARTNER = "partner"  # a state portal or app: files requests and follows its own
    AGENT = "agent"  # a call-centre system: every request, workers' availability
    SUPERVISOR = "supervisor"  # and onboarding workers
    ADMIN = "admin"
    PROVIDER = "provider"  # an agency's system: its own workers and their jobs


class District(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80, unique=True, description="as the India Post directory spells it")
    state: str = Field(max_length=80, index=True)


class Provider(SQLModel, table=True):
    """An agency that employs or registers workers."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=160, unique=True)
    district: str | None = Field(default=None, max_length=80, index=True)
    phone: str | None = Field(default=None, max_length=20)
    email: str | None = Field(default=None, max_length=160)
    active: bool = True
    created_at: datetime = _created()


class Worker(SQLModel, table=True):
    """A sewamitra: a skilled worker who takes home visits."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120)
    phone: str = Field(max_length=20, unique=True, description="E.164")
    language: str = Field(default="hi", max_length=5)
    voice_preferred: bool = Field(default=False, description="offers by voice call, not SMS")
    pincode: str = Field(max_length=6, index=True)
    district: str = Field(max_length=80, index=True)
    latitude: float
    longitude: float
    service_radius_km: float | None = Field(default=None, description="None: the config default")
    police_verification: VerificationStatus = Field(
        default=VerificationStatus.PENDING, sa_type=_enum(VerificationStatus), index=True
    )
    police_verified_on: date | None = None
    police_reference: str | None = Field(default=None, max_length=60)
    police_note: str | None = Field(default=None, max_length=500)
    certification: str | None = Field(default=None, max_length=60, description="e.g. RPL under PMKVY")
    certification_grade: str | None = Field(default=None, max_length=10)
    certifying_institution: str | None = Field(default=None, max_length=160)
    rating: float | None = Field(default=None, ge=1, le=5)
    rating_count: int = 0
    available: bool = True
    active: bool = True
    origin: Origin = Field(default=Origin.LOCAL, sa_type=_enum(Origin))
    provider_id: int | None = Field(default=None, foreign_key="provider.id", index=True)
    created_at: datetime = _created()
    updated_at: datetime = _created()
    # Quality (dispatch/quality): on the agency's review list, and why; suspended (no offers) and why.
    review_reason: str | None = Field(default=None, max_length=200, description="on the review list: why")
    review_flagged_at: datetime | None = _moment()
    review_cleared_at: datetime | None = _moment()  # the record counts again from here
    suspended_at: datetime | None = _moment(index=True)
    suspension_reason: str | None = Field(default=None, max_length=500)
    police_reminder_for: date | None = Field(
        default=None, description="the police verification expiry the agency was last reminded of"
    )


class WorkerSkill(SQLModel, table=True):
    __tablename__ = "worker_skill"

    worker_id: int = Field(foreign_key="worker.id", primary_key=True, ondelete="CASCADE")
    service_code: str = Field(max_length=32, primary_key=True, index=True)


class Caller(SQLModel, table=True):
    """A citizen who phoned or was phoned; known by number."""

    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(max_length=20, unique=True, description="E.164")
    language: str | None = Field(default=None, max_length=5)
    created_at: datetime = _created()
    last_seen_at: datetime = _created()
    erasure_notice_at: datetime | None = _moment()  # told their number goes soon (retention); not a contact


class ServiceRequest(SQLModel, table=True):
    __tablename__ = "service_request"

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=8, unique=True, description="7 digits, the last a Verhoeff check digit")
    idempotency_key: str | None = Field(default=None, max_length=120, unique=True)
    idempotency_digest: str | None = Field(
        default=None, max_length=64, description="of what was filed with the key: its reuse for another is refused"
    )
    service_code: str = Field(max_length=32, index=True)
    pincode: str = Field(max_length=6)
    district: str = Field(max_length=80, index=True)
    latitude: float | None = None
    longitude: float | None = None
    address_note: str | None = Field(default=None, max_length=500)
    preferred_time: str | None = Field(default=None, max_length=80)
    slot_starts_at: datetime | None = _moment(index=True)  # the visit's booked slot (core.slots), in UTC
    slot_ends_at: datetime | None = _moment()
    description: str | None = Field(default=None, max_length=4000, description="what the citizen wrote (API)")
    contact_name: str | None = Field(default=None, max_length=120, description="the citizen's name, when given")
    filed_by: str | None = Field(default=None, max_length=80, index=True, description="'api:<client>' that filed it")
    caller_id: int | None = Field(default=None, foreign_key="caller.id", index=True)
    language: str = Field(default="hi", max_length=5)
    channel: Channel = Field(default=Channel.IVR, sa_type=_enum(Channel))
    status: RequestStatus = Field(default=RequestStatus.NEW, sa_type=_enum(RequestStatus), index=True)
    worker_id: int | None = Field(default=None, foreign_key="worker.id", index=True)
    completion_code: str | None = Field(default=None, max_length=4)
    rating: int | None = Field(default=None, ge=1, le=5)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    updated_at: datetime = _created()
    assigned_at: datetime | None = _moment(index=True)
    completed_at: datetime | None = _moment()
    dispatch_round: int = Field(default=0, sa_column_kwargs={"server_default": "0"}, description="an agent's redo: +1")
    round_started_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime, nullable=True, description="an agent restarted dispatch; None: created_at"
    )
    round_radius_km: float | None = Field(
        default=None, description="an agent widened this round to reach so far; None: each worker's own radius"
    )
    handed_to_provider_id: int | None = Field(
        default=None, foreign_key="provider.id", index=True, description="an agent handed it to this agency"
    )
    rework_of_id: int | None = Field(
        default=None,
        foreign_key="service_request.id",
        unique=True,
        description="the finished job this one visits again (a low rating or a problem): one rework each",
    )
    avoid_worker_id: int | None = Field(
        default=None, foreign_key="worker.id", description="a rework the citizen wants another worker for"
    )
    escalation_level: int = Field(
        default=1, sa_column_kwargs={"server_default": "1"}, index=True, description="its rung of escalation.levels"
    )
    escalation_level_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime, nullable=True, description="when it reached its level; None: created_at"
    )
    # The worker's day (dispatch/visit.py): on the way (with an ETA), arrived, started with the
    # citizen's start code; flagged late when not started by the slot's end.
    on_the_way_at: datetime | None = _moment()
    eta_minutes: int | None = Field(default=None, ge=1, description="the worker's ETA when they set out")
    arrived_at: datetime | None = _moment()
    started_at: datetime | None = _moment()
    start_code: str | None = Field(default=None, max_length=4, description="the citizen gives it to start the visit")
    start_code_tries: int = Field(
        default=0, sa_column_kwargs={"server_default": "0"}, description="wrong start codes since the code was made"
    )
    late_flagged_at: datetime | None = _moment()


class Offer(SQLModel, table=True):
    """One worker asked to take one request."""

    __table_args__ = (
        sa.Index(
            "uq_offer_one_accepted",
            "request_id",
            unique=True,
            sqlite_where=sa.text("status = 'accepted'"),
            postgresql_where=sa.text("status = 'accepted'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="service_request.id", index=True)
    worker_id: int = Field(foreign_key="worker.id", index=True)
    status: OfferStatus = Field(default=OfferStatus.PENDING, sa_type=_enum(OfferStatus), index=True)
    channel: OfferChannel = Field(default=OfferChannel.SMS, sa_type=_enum(OfferChannel))
    dispatch_round: int = Field(default=0, sa_column_kwargs={"server_default": "0"}, description="the request's round")
    created_at: datetime = _created()
    expires_at: datetime | None = _moment(index=True)
    answered_at: datetime | None = _moment()


class CallLog(SQLModel, table=True):
    __tablename__ = "call_log"

    id: int | None = Field(default=None, primary_key=True)
    call_sid: str = Field(max_length=40, unique=True)
    direction: Direction = Field(default=Direction.INBOUND, sa_type=_enum(Direction))
    from_number: str | None = Field(default=None, max_length=40)
    to_number: str | None = Field(default=None, max_length=40)
    status: str | None = Field(default=None, max_length=20)
    duration_s: int | None = None
    hangup_cause: str | None = Field(default=None, max_length=40, description="why it ended: Plivo's HangupCause")
    language: str | None = Field(default=None, max_length=5)
    path: list[str] = Field(default_factory=list, sa_type=sa.JSON, description="menu nodes visited")
    outcome: str | None = Field(default=None, max_length=40)
    queue_result: str | None = Field(default=None, max_length=20, description="Twilio's QueueResult: bridged, hangup…")
    queue_wait_s: int | None = Field(default=None, description="seconds the caller waited in the agent queue")
    request_id: int | None = Field(default=None, foreign_key="service_request.id", index=True)
    worker_id: int | None = Field(default=None, foreign_key="worker.id", index=True)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    ended_at: datetime | None = _moment()


class AgentCall(SQLModel, table=True):
    """A caller an agent talked to: from the bridge to the end of the agent's leg. A caller put
    through to a second agent (a transfer) is a second row. The wrap-up, recording and quality
    review of the call hang on it."""

    __tablename__ = "agent_call"
    __table_args__ = (sa.UniqueConstraint("call_sid", "agent_id", name="uq_agent_call_caller_agent"),)

    id: int | None = Field(default=None, primary_key=True)
    call_sid: str = Field(max_length=40, index=True, description="the caller's call id")
    agent_id: int = Field(foreign_key="console_user.id", index=True)
    language: str = Field(default="hi", max_length=5)
    answered_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    ended_at: datetime | None = _moment()
    disposition: str | None = Field(
        default=None, max_length=24, index=True, description="its wrap-up code; 'none': wrap-up ran out without one"
    )
    disposition_note: str | None = Field(default=None, max_length=500)
    disposed_at: datetime | None = _moment()


class CallReview(SQLModel, table=True):
    """A supervisor's quality review of one agent call against `quality.scorecard`: each item's points
    and comment (`scores`: code → {points, comment}), their total and whether it reached the pass mark
    then. One review a call, edited only by its author."""

    __tablename__ = "call_review"

    id: int | None = Field(default=None, primary_key=True)
    agent_call_id: int = Field(foreign_key="agent_call.id", unique=True)
    reviewer_id: int = Field(foreign_key="console_user.id", index=True)
    scores: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    points: int = 0
    max_points: int = 0
    passed: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class CallbackRequest(SQLModel, table=True):
    """A caller who asked to be called back: out of hours, or tired of waiting in the queue; or one
    who hung up in the queue (reason `missed`: at most one open per number)."""

    __tablename__ = "callback_request"
    __table_args__ = (
        sa.Index(
            "uq_callback_request_open_missed",
            "phone",
            unique=True,
            sqlite_where=sa.text("status = 'pending' AND reason = 'missed'"),
            postgresql_where=sa.text("status = 'pending' AND reason = 'missed'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(max_length=20, description="E.164")
    caller_id: int | None = Field(default=None, foreign_key="caller.id", index=True)
    language: str = Field(default="hi", max_length=5)
    reason: str = Field(max_length=40, description="out_of_hours, left_queue, queue_full, …")
    call_sid: str | None = Field(default=None, max_length=40, unique=True)
    status: CallbackStatus = Field(default=CallbackStatus.PENDING, sa_type=_enum(CallbackStatus), index=True)
    note: str | None = Field(default=None, max_length=500)
    request_id: int | None = Field(default=None, foreign_key="service_request.id", index=True)
    due_at: datetime | None = _moment(index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    handled_at: datetime | None = _moment()
    handled_by: int | None = Field(default=None, foreign_key="console_user.id")
    owner_id: int | None = Field(default=None, foreign_key="console_user.id", index=True, description="who took it")


class CallbackAttempt(SQLModel, table=True):
    """One try at ringing a caller back: placed through the helpline (click-to-call: `dial_status`
    is how the platform's dial to the caller ended) or noted by hand; its outcome and note confirmed
    by the agent. Tries that found nobody (no answer, busy) count towards `agents.callback_max_attempts`."""

    __tablename__ = "callback_attempt"

    id: int | None = Field(default=None, primary_key=True)
    callback_id: int = Field(foreign_key="callback_request.id", index=True)
    user_id: int = Field(foreign_key="console_user.id", index=True)
    placed_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    dialled: bool = Field(default=False, description="placed through the helpline's phone line")
    dial_status: str | None = Field(default=None, max_length=20, description="completed, no_answer, busy, failed")
    outcome: CallbackOutcome | None = Field(default=None, sa_type=_enum(CallbackOutcome))
    note: str | None = Field(default=None, max_length=500)
    recorded_at: datetime | None = _moment()


class Recording(SQLModel, table=True):
    """What a caller said at a Record (the spoken address), kept by the telephony platform: the
    helpline keeps its id, URL and length, attached to the request the call booked. Erased at the
    platform and here (URL blanked, `erased_at` set) after `privacy.retention.recordings` days."""

    id: int | None = Field(default=None, primary_key=True)
    call_sid: str = Field(max_length=40, index=True)
    turn: int = Field(default=0, description="the call's turn it was made at: a platform's retry is the same one")
    request_id: int | None = Field(default=None, foreign_key="service_request.id", index=True)
    platform: str = Field(max_length=20, description="twilio, plivo")
    recording_id: str = Field(max_length=64, description="Twilio's RecordingSid, Plivo's RecordingID")
    url: str = Field(default="", max_length=500, description="the platform's URL of the audio; blank once erased")
    duration_s: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    erased_at: datetime | None = _moment(index=True)
    kind: RecordingKind = Field(
        default=RecordingKind.ADDRESS,
        sa_type=_enum(RecordingKind),
        sa_column_kwargs={"server_default": RecordingKind.ADDRESS.value},
    )


class CitizenCall(SQLModel, table=True):
    """An officer's recorded call to the citizen of an escalated request, placed from the console:
    the officer's phone rung first, then bridged to the citizen with the helpline's number as caller
    ID. A request that climbed the ladder closes only after such a call, answered and recorded, at
    its current level."""

    __tablename__ = "citizen_call"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="service_request.id", index=True)
    user_id: int = Field(foreign_key="console_user.id", index=True)
    escalation_level: int = Field(description="the request's level when the call was placed")
    status: CitizenCallStatus = Field(default=CitizenCallStatus.PLACED, sa_type=_enum(CitizenCallStatus))
    seconds: int = 0
    recording_id: int | None = Field(default=None, foreign_key="recording.id")
    placed_at: datetime = _created()
    ended_at: datetime | None = _moment()


class UserDistrict(SQLModel, table=True):
    """A district officer's districts: the requests they see and act on."""

    __tablename__ = "user_district"

    user_id: int = Field(foreign_key="console_user.id", primary_key=True, ondelete="CASCADE")
    district: str = Field(max_length=80, primary_key=True, index=True, description="as requests spell it")


class SmsLog(SQLModel, table=True):
    __tablename__ = "sms_log"

    id: int | None = Field(default=None, primary_key=True)
    message_sid: str | None = Field(default=None, max_length=40, unique=True)
    direction: Direction = Field(default=Direction.OUTBOUND, sa_type=_enum(Direction))
    from_number: str | None = Field(default=None, max_length=40)
    to_number: str | None = Field(default=None, max_length=40)
    body: str = Field(max_length=1600)
    template: str | None = Field(default=None, max_length=40)
    status: str | None = Field(
        default=None, max_length=20, description="outbound: an SmsDelivery; inbound: an SmsHandling"
    )
    error_code: str | None = Field(default=None, max_length=10)
    request_id: int | None = Field(default=None, foreign_key="service_request.id", index=True)
    worker_id: int | None = Field(default=None, foreign_key="worker.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    updated_at: datetime = _created()
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"}, description="tries to hand it to Twilio")
    next_attempt_at: datetime | None = _moment(index=True)  # a send_failed one is tried again then (the sweeper)


class AuditEvent(SQLModel, table=True):
    """Who did what to which record, when and why."""

    __tablename__ = "audit_event"
    __table_args__ = (sa.Index("ix_audit_event_entity", "entity", "entity_id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    actor: str = Field(max_length=80, description="'ivr', 'system', 'user:<id>', 'worker:<id>'")
    action: str = Field(max_length=60)
    entity: str = Field(max_length=40)
    entity_id: int | None = None
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str | None = Field(default=None, max_length=20)
    reason: str | None = Field(default=None, max_length=500)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class ApiToken(SQLModel, table=True):
    """A bearer token another system uses; only its SHA-256 is kept, the token itself is shown once."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    client: str = Field(max_length=60, index=True, description="the system it belongs to; tokens rotate, it stays")
    role: ApiRole = Field(sa_type=_enum(ApiRole))
    provider_id: int | None = Field(default=None, foreign_key="provider.id")
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=12, description="the token's first characters, to tell tokens apart")
    created_at: datetime = _created()
    expires_at: datetime | None = _moment()
    revoked_at: datetime | None = _moment()
    last_used_at: datetime | None = _moment()


class User(SQLModel, table=True):
    """A console user: agent, supervisor, admin, or a provider agency's staff."""

    __tablename__ = "console_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=60, unique=True)
    password_hash: str = Field(max_length=255)
    role: Role = Field(sa_type=_enum(Role))
    full_name: str | None = Field(default=None, max_length=120)
    phone: str | None = Field(default=None, max_length=20, description="desk phone the console rings")
    provider_id: int | None = Field(default=None, foreign_key="provider.id")
    active: bool = True
    session_epoch: int = Field(
        default=0,
        sa_column_kwargs={"server_default": "0"},
        description="+1 at sign-out: every session signed in before is over",
    )
    must_change_password: bool = Field(
        default=False,
        sa_column_kwargs={"server_default": sa.false()},
        description="a first or reset password: every console page asks for a new one until it is set",
    )
    language: str | None = Field(default=None, max_length=5, description="the console's language at sign-in")
    call_languages: str | None = Field(
        default=None, max_length=20, description="languages they take calls in, comma-separated; None: every one"
    )
    call_services: str | None = Field(
        default=None, max_length=400, description="services they take calls about, comma-separated; None: every one"
    )
    created_at: datetime = _created()
    last_login_at: datetime | None = _moment()


class PrivacyRequest(SQLModel, table=True):
    """A citizen's request about their own data (DPDP Act 2023 s.11-12), filed by an agent or by the
    caller on the phone; an erasure waits for a supervisor's approval. It names the caller by id only."""

    __tablename__ = "privacy_request"

    id: int | None = Field(default=None, primary_key=True)
    kind: PrivacyRequestKind = Field(sa_type=_enum(PrivacyRequestKind))
    status: PrivacyRequestStatus = Field(
        default=PrivacyRequestStatus.PENDING, sa_type=_enum(PrivacyRequestStatus), index=True
    )
    caller_id: int = Field(foreign_key="caller.id", index=True)
    filed_by: int | None = Field(
        default=None, foreign_key="console_user.id", description="None: by the caller, by phone"
    )
    filed_at: datetime = _created()
    decided_by: int | None = Field(default=None, foreign_key="console_user.id")
    decided_at: datetime | None = _moment()


class Breach(SQLModel, table=True):
    """A personal data breach, as the register for the Data Protection Board keeps it (DPDP Act s.8(6))."""

    id: int | None = Field(default=None, primary_key=True)
    description: str = Field(max_length=2000, description="what happened, and what was done")
    occurred_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    recorded_at: datetime = _created()
    recorded_by: int = Field(foreign_key="console_user.id")
    scope: str = Field(max_length=200, description="how the affected were chosen: a district and window, or numbers")
    affected: int = 0
    notified: int = Field(default=0, description="affected citizens sent the notice by SMS")


class BreachCitizen(SQLModel, table=True):
    """One citizen whose data a breach touched."""

    __tablename__ = "breach_citizen"

    breach_id: int = Field(foreign_key="breach.id", primary_key=True)
    caller_id: int = Field(foreign_key="caller.id", primary_key=True, index=True)
