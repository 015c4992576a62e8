"""What the JSON API takes in: strict models (no guessing at types, no unknown fields), which the
OpenAPI document also publishes, so the document and the checks cannot drift apart."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.ids import MAX_ID
from storage.models import Origin

PINCODE = r"^[1-9][0-9]{5}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RequestCreate(_Strict):
    """A citizen's request, filed by another system. Where: a PIN code, a point, or an address with its PIN code."""

    service: str = Field(min_length=1, max_length=32, description="a service code from GET /api/v1/services")
    phone: str = Field(min_length=6, max_length=20, description="the citizen's Indian phone number")
    pincode: str | None = Field(None, pattern=PINCODE, description="6-digit PIN code of the address")
    latitude: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False, description="WGS84")
    longitude: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False, description="WGS84")
    address: str | None = Field(None, max_length=500, description="house, street, locality; may hold the PIN code")
    name: str | None = Field(None, max_length=120, description="the citizen's name")
    description: str | None = Field(None, max_length=4000, description="what needs doing")
    preferred_time: str | None = Field(None, max_length=80, description="when the citizen would like the visit")
    slot: str | None = Field(
        None,
        max_length=40,
        description="the visit's slot, a key from GET /api/v1/slots such as 2026-12-04/evening; "
        "left out, a worker comes as soon as possible",
    )
    language: Literal["hi", "en"] = Field("hi", description="the language of the SMS and calls the citizen gets")


class Cancellation(_Strict):
    """Why: one of the citizen's reasons (`changes.reasons` in config.yaml: not_needed, fixed_myself,
    worker_late, other by default), words, or both; at least one."""

    reason: str | None = Field(None, min_length=1, max_length=500, description="why the request is cancelled (audited)")
    reason_key: str | None = Field(
        None, min_length=1, max_length=30, description="a reason's key: not_needed, fixed_myself, worker_late, other…"
    )


class Reschedule(_Strict):
    """Another visit slot for an open request (one booked as soon as possible gets its first)."""

    slot: str = Field(
        min_length=1, max_length=40, description="an open slot's key from GET /api/v1/slots, e.g. 2026-12-04/morning"
    )


class WorkerCreate(_Strict):
    """A worker onboarded by an agency or supervisor: waits for police verification before any visit."""

    name: str = Field(min_length=1, max_length=120)
    phone: str = Field(min_length=6, max_length=20, description="the worker's Indian mobile number")
    skills: list[str] = Field(min_length=1, max_length=8, description="service codes from GET /api/v1/services")
    pincode: str = Field(pattern=PINCODE, description="where the worker lives")
    provider_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="the agency (staff only; an agency's token: its own)"
    )
    service_radius_km: float | None = Field(None, gt=0, le=200, allow_inf_nan=False)
    language: Literal["hi", "en"] = "hi"
    voice_preferred: bool = Field(False, description="offers by a phone call rather than SMS")
    certification: str | None = Field(None, max_length=60, description="e.g. RPL under PMKVY")
    certification_grade: str | None = Field(None, max_length=10)
    origin: Literal["local", "returned_migrant"] = Origin.LOCAL.value


class Availability(_Strict):
    available: bool = Field(description="true: may be offered jobs; false: busy")


# -- what the API answers ------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Citizen(_Out):
    phone: str | None = Field(description="E.164; masked for an agency's token")
    name: str | None


class WorkerOnJob(_Out):
    id: int | None = Field(description="null for a partner's token")
    name: str
    phone: str | None = Field(description="null for a partner's token")


class SlotShown(_Out):
    key: str = Field(description="what a request's `slot` names, e.g. 2026-12-04/evening")
    starts_at: datetime = Field(description="ISO 8601 with the call centre's offset, e.g. 2026-12-04T16:00:00+05:30")
    ends_at: datetime
    name_en: str = Field(description="in words, e.g. 'tomorrow evening (16:00-20:00)'")
    name_hi: str


class Slots(_Out):
    items: list[SlotShown] = Field(description="the slots open for booking now, soonest first")


class Request(_Out):
    number: str = Field(description="7 digits, the last a check digit; what the citizen hears and keys on the phone")
    status: Literal["new", "offered", "assigned", "completed", "closed", "escalated", "cancelled"]
    service: str
    service_name: str
    channel: Literal["ivr", "agent", "sms", "api", "open311"]
    language: str
    pincode: str
    district: str
    latitude: float | None
    longitude: float | None
    address: str | None
    description: str | None
    preferred_time: str | None
    slot: SlotShown | None = Field(description="the booked visit slot; null: as soon as possible")
    citizen: Citizen
    worker: WorkerOnJob | None
    rating: int | None
    created_at: datetime
    updated_at: datetime
    assigned_at: datetime | None
    completed_at: datetime | None


class OfferMade(_Out):
    id: int
    worker_id: int | None = Field(description="null for a partner's token")
    worker_name: str | None = Field(description="null for a partner's token")
    status: Literal["pending", "accepted", "declined", "expired", "withdrawn"]
    channel: Literal["sms", "voice", "agent"]
    round: int
    created_at: datetime
    expires_at: datetime | None
    answered_at: datetime | None


class Event(_Out):
    at: datetime
    action: str
    from_status: str | None
    to_status: str | None
    actor: str | None = Field(description="who: 'ivr', 'dispatch', 'user:<id>', 'api:<client>'…; staff only")
    reason: str | None = Field(description="staff only")


class RequestDetail(Request):
    offers: list[OfferMade]
    timeline: list[Event] = Field(description="oldest first; for tokens other than staff, the moves between states")


class Agency(_Out):
    id: int
    name: str


class WorkerShown(_Out):
    id: int
    name: str
    phone: str
    skills: list[str]
    pincode: str
    district: str
    latitude: float
    longitude: float
    service_radius_km: float | None
    language: str
    voice_preferred: bool
    police_verification: Literal["pending", "verified", "rejected"]
    police_verified_on: date | None
    available: bool
    active: bool
    rating: float | None
    rating_count: int
    provider: Agency | None
    created_at: datetime
    updated_at: datetime


class Service(_Out):
    code: str
    name_en: str
    name_hi: str
    keypad_digit: str
    visit_charge: int = Field(description="rupees")


class Services(_Out):
    items: list[Service]


class RequestPage(_Out):
    items: list[Request]
    page: int
    per_page: int
    total: int


class WorkerPage(_Out):
    items: list[WorkerShown]
    page: int
    per_page: int
    total: int


class Problem(_Out):
    status: int
    code: str = Field(description="invalid, unauthorized, forbidden, not_found, conflict, too_large, …")
    message: str
    fields: dict[str, str] | None = Field(None, description="each field at fault, and what is wrong with it")


class Failure(_Out):
    error: Problem
