"""Settings: config.yaml parsed once into a frozen, typed object, validated at start."""

from __future__ import annotations

import copy
import functools
import itertools
import os
import re
from collections.abc import Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.exceptions import ConfigError

# libyaml's safe loader when PyYAML has it: config.yaml read five times as fast (tests read it per test).
SAFE_LOADER = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
ENV_PREFIX = "SEWAMITRA_"
CONFIG_ENV = "SEWAMITRA_CONFIG"
# Read from the environment only; a config file that holds one is refused.
SECRET_ENV = {
    ("twilio", "account_sid"): "TWILIO_ACCOUNT_SID",
    ("twilio", "auth_token"): "TWILIO_AUTH_TOKEN",
    ("twilio", "api_key_sid"): "TWILIO_API_KEY_SID",
    ("twilio", "api_key_secret"): "TWILIO_API_KEY_SECRET",
    ("plivo", "auth_id"): "PLIVO_AUTH_ID",
    ("plivo", "auth_token"): "PLIVO_AUTH_TOKEN",
    ("secret_key",): "SEWAMITRA_SECRET_KEY",
    ("privacy_key",): "SEWAMITRA_PRIVACY_KEY",
}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Service(_Frozen):
    code: str = Field(pattern=r"^[a-z][a-z_]{1,31}$")
    digit: str = Field(pattern=r"^[1-8]$")
    name_en: str = Field(min_length=1)
    name_hi: str = Field(min_length=1)
    visit_charge: int = Field(ge=0, description="standard visit charge in rupees")

    def name(self, language: str) -> str:
        return self.name_hi if language == "hi" else self.name_en


class Language(_Frozen):
    code: Literal["hi", "en"]
    digit: str = Field(pattern=r"^[1-9]$")
    name: str
    tts_language: str = Field(pattern=r"^[a-z]{2}-[A-Z]{2}$")
    voice: str


class ServiceArea(_Frozen):
    state: str = "UTTAR PRADESH"


class CallCentre(_Frozen):
    timezone: str = "Asia/Kolkata"
    opens: time = time(8, 0)
    closes: time = time(20, 0)
    days: tuple[str, ...] = DAYS

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("days")
    @classmethod
    def _known_days(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [day for day in value if day not in DAYS]
        if unknown:
            raise ValueError(f"unknown day(s) {unknown}; use {list(DAYS)}")
        return value

    @model_validator(mode="after")
    def _opens_before_closing(self) -> CallCentre:
        if self.opens >= self.closes:
            raise ValueError("call_centre.opens must be before call_centre.closes")
        return self

    def is_open(self, at: datetime) -> bool:
        """Whether agents are on the floor at the (timezone-aware) moment `at`."""
        local = at.astimezone(ZoneInfo(self.timezone))
        return DAYS[local.weekday()] in self.days and self.opens <= local.time() < self.closes


class SlotPeriod(_Frozen):
    """A part of the day a visit can be booked for: its key, its hours (local), its names."""

    key: str = Field(pattern=r"^[a-z][a-z_]{1,19}$")
    starts: time
    ends: time
    name_en: str = Field(min_length=1, max_length=40)
    name_hi: str = Field(min_length=1, max_length=40)

    @model_validator(mode="after")
    def _starts_before_ending(self) -> SlotPeriod:
        if self.starts >= self.ends:
            raise ValueError(f"slots.periods.{self.key}: starts must be before ends")
        return self

    def name(self, language: str) -> str:
        return self.name_hi if language == "hi" else self.name_en


def _default_periods() -> tuple[SlotPeriod, ...]:
    return (
        SlotPeriod(key="morning", starts=time(8), ends=time(12), name_en="morning", name_hi="सुबह"),
        SlotPeriod(key="afternoon", starts=time(12), ends=time(16), name_en="afternoon", name_hi="दोपहर"),
        SlotPeriod(key="evening", starts=time(16), ends=time(20), name_en="evening", name_hi="शाम"),
    )


class Slots(_Frozen):
    """The visits a citizen may book: `days_ahead` days from today, each split into `periods`, on the
    working `days` except `closed_dates`, in `call_centre.timezone`; a slot that starts sooner than
    `lead_minutes` from now (or has begun) is not offered."""

    days_ahead: int = Field(2, ge=1, le=7, description="today and the days after it that can be booked")
    lead_minutes: int = Field(60, ge=0, le=24 * 60, description="the least notice a slot needs")
    days: tuple[str, ...] = DAYS
    closed_dates: tuple[date, ...] = ()
    periods: tuple[SlotPeriod, ...] = Field(default_factory=_default_periods, min_length=1, max_length=4)

    @field_validator("days")
    @classmethod
    def _known_days(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [day for day in value if day not in DAYS]
        if unknown:
            raise ValueError(f"unknown day(s) {unknown}; use {list(DAYS)}")
        return value

    @field_validator("periods")
    @classmethod
    def _periods_in_order(cls, value: tuple[SlotPeriod, ...]) -> tuple[SlotPeriod, ...]:
        _require_unique("slots.periods key", [period.key for period in value])
        for earlier, later in itertools.pairwise(value):
            if later.starts < earlier.ends:
                raise ValueError(f"slots.periods: {later.key} must start after {earlier.key} ends")
        return value


class ChangeReason(_Frozen):
    """Why a citizen calls a request off: keyed on the phone by its place in `changes.reasons`."""

    key: str = Field(pattern=r"^[a-z][a-z_]{1,29}$")
    name_en: str = Field(min_length=1, max_length=60)
    name_hi: str = Field(min_length=1, max_length=60)

    def name(self, language: str) -> str:
        return self.name_hi if language == "hi" else self.name_en


def _default_reasons() -> tuple[ChangeReason, ...]:
    return (
        ChangeReason(key="not_needed", name_en="no longer needed", name_hi="अब ज़रूरत नहीं"),
        ChangeReason(key="fixed_myself", name_en="fixed it myself", name_hi="ख़ुद ठीक कर लिया"),
        ChangeReason(key="worker_late", name_en="the worker is too late", name_hi="कारीगर बहुत देर से"),
        ChangeReason(key="other", name_en="another reason", name_hi="कोई और कारण"),
    )


class Changes(_Frozen):
    """When a citizen may cancel or move their own request by phone or SMS without an agent: while no
    worker has it (`free_while_unassigned`), and until `free_until_hours` before its slot starts.
    Later (or a job in hand with no slot: the worker may be on the way) an agent decides."""

    free_while_unassigned: bool = True
    free_until_hours: float = Field(
        4, ge=0, le=72, description="a booked visit is changed freely until this long before"
    )
    reasons: tuple[ChangeReason, ...] = Field(default_factory=_default_reasons, min_length=1, max_length=6)

    @field_validator("reasons")
    @classmethod
    def _unique_reasons(cls, value: tuple[ChangeReason, ...]) -> tuple[ChangeReason, ...]:
        _require_unique("changes.reasons key", [reason.key for reason in value])
        return value

    def reason(self, key: str | None) -> ChangeReason | None:
        return next((reason for reason in self.reasons if reason.key == key), None)


class Dispatch(_Frozen):
    offer_timeout: int = Field(300, ge=10, le=86400)
    max_offers: int = Field(5, ge=1, le=50)
    parallel_offers: int = Field(1, ge=1, le=20)
    escalate_after: int = Field(1800, ge=60)
    default_radius_km: float = Field(10, gt=0, le=200)
    max_radius_km: float = Field(50, gt=0, le=500, description="the widest an agent may widen one round")
    voice_after_unanswered_sms: int = Field(1, ge=0)
    sweep_interval: int = Field(60, ge=5, le=3600)
    allow_parallel_jobs: bool = False

    @model_validator(mode="after")
    def _widest_not_narrower(self) -> Dispatch:
        if self.max_radius_km < self.default_radius_km:
            raise ValueError("dispatch.max_radius_km must be at least dispatch.default_radius_km")
        return self


class Rework(_Frozen):
    """A finished job the citizen is unhappy with is visited again: a new request linked to it."""

    threshold_rating: int = Field(2, ge=1, le=4, description="a rating this low or lower asks for a rework")
    window_days: int = Field(
        7, ge=0, le=365, description="days after the job in which a low rating or a problem books a rework"
    )
    same_worker_first: bool = Field(True, description="offered to the worker who did the job before anyone else")


class WorkersQuality(_Frozen):
    """When a worker goes on their agency's review list, and how long a police verification holds."""

    rating_floor: float = Field(3.0, ge=1, le=5, description="an average under this over the last rated jobs")
    rated_jobs: int = Field(10, ge=1, le=500, description="... over this many rated jobs (fewer: not judged yet)")
    complaints: int = Field(3, ge=1, le=100, description="or this many complaints (low ratings, problems)")
    complaint_window_days: int = Field(30, ge=1, le=365, description="... among the jobs of these last days")
    police_verification_valid_days: int = Field(
        730, ge=0, le=3650, description="days a police verification holds; 0: it does not expire"
    )
    police_reminder_days_before: int = Field(30, ge=0, le=365, description="the agency is reminded this early")


class Visit(_Frozen):
    """The worker's day (dispatch/visit.py): how late a visit may start before the agency is told, and
    before the job is taken back and offered again; the wrong start codes a worker may send."""

    start_within_minutes: int = Field(
        240,
        ge=15,
        le=7 * 24 * 60,
        description="a request without a slot should be started this long after it is assigned",
    )
    late_grace_minutes: int = Field(
        60,
        ge=0,
        le=24 * 60,
        description="after a late visit is flagged (its agency told), this long before it is taken back",
    )
    start_code_tries: int = Field(5, ge=1, le=20, description="wrong start codes before only an agent's reset helps")
    max_eta_minutes: int = Field(240, ge=10, le=24 * 60, description="the longest ETA a worker may give")


class Console(_Frozen):
    idle_timeout_minutes: int = Field(30, ge=1, le=720)
    max_session_hours: int = Field(12, ge=1, le=72)
    login_attempts: int = Field(5, ge=1, le=100, description="failed sign-ins before a pause")
    login_window_minutes: int = Field(15, ge=1, le=1440)
    assignment_sla_minutes: int = Field(60, ge=1, le=10080, description="a request unassigned longer breaches SLA")


class EscalationLevel(_Frozen):
    """One rung of the escalation ladder: who answers for a request there, and how long they have,
    counted from when the request reached this rung (the first rung: from when it was filed)."""

    who: Literal["agent", "provider", "district_officer", "state_officer", "supervisor"]
    name_en: str = Field(min_length=1, max_length=60)
    name_hi: str = Field(min_length=1, max_length=60)
    assign_within_minutes: int = Field(ge=1, le=60 * 24 * 60, description="unassigned longer: up one rung")
    resolve_within_minutes: int = Field(ge=1, le=60 * 24 * 60, description="not completed in this: up one rung")

    def name(self, language: str) -> str:
        return self.name_hi if language == "hi" else self.name_en


class PauseReason(_Frozen):
    code: str = Field(pattern=r"^[a-z][a-z_]{1,23}$")
    name_en: str = Field(min_length=1, max_length=40)
    name_hi: str = Field(min_length=1, max_length=40)

    def name(self, language: str) -> str:
        return self.name_hi if language == "hi" else self.name_en


class Disposition(_Frozen):
    """A wrap-up code: what an agent call was about, given by the agent in wrap-up."""

    code: str = Field(pattern=r"^[a-z][a-z_]{1,19}$")
    name_en: str = Field(min_length=1, max_length=40)
    name_hi: str = Field(min_length=1, max_length=40)

    def name(self, language: str) -> str:
        return self.name_hi if language == "hi" else self.name_en


class ScorecardItem(_Frozen):
    """One item a supervisor scores an agent call on, from 0 to `max_points`."""

    code: str = Field(pattern=r"^[a-z][a-z_]{1,23}$")
    name_en: str = Field(min_length=1, max_length=60)
    name_hi: str = Field(min_length=1, max_length=60)
    max_points: int = Field(ge=1, le=100)

    def name(self, language: str) -> str:
        return self.name_hi if language == "hi" else self.name_en


DEFAULT_SCORECARD = (
    ScorecardItem(code="greeting", name_en="Greeting", name_hi="अभिवादन", max_points=10),
    ScorecardItem(code="language", name_en="Caller's language", name_hi="कॉलर की भाषा", max_points=10),
    ScorecardItem(code="identity_check", name_en="Identity check", name_hi="पहचान की जाँच", max_points=20),
    ScorecardItem(code="resolution", name_en="Resolution", name_hi="समाधान", max_points=40),
    ScorecardItem(code="courtesy", name_en="Courtesy", name_hi="शिष्टाचार", max_points=20),
)


class Quality(_Frozen):
    """Quality review of agent calls: the scorecard supervisors score a call on, and the pass mark
    (points of the total) a call must reach."""

    scorecard: tuple[ScorecardItem, ...] = DEFAULT_SCORECARD
    pass_mark: int = Field(70, ge=0)

    @field_validator("scorecard")
    @classmethod
    def _unique_items(cls, value: tuple[ScorecardItem, ...]) -> tuple[ScorecardItem, ...]:
        if not value:
            raise ValueError("a scorecard needs at least one item")
        _require_unique("code", [i.code for i in value])
        return value

    @model_validator(mode="after")
    def _reachable_pass_mark(self) -> Quality:
        if self.pass_mark > self.max_points:
            raise ValueError(f"pass_mark ({self.pass_mark}) is more than the scorecard's {self.max_points} points")
        return self

    @property
    def max_points(self) -> int:
        return sum(item.max_points for item in self.scorecard)


class CloseOutcome(_Frozen):
    """How an officer closed an escalated request after calling the citizen."""

    code: str = Field(pattern=r"^[a-z_]{2,30}$")
    en: str = Field(min_length=1, max_length=80)
    hi: str = Field(min_length=1, max_length=80)

    def name(self, language: str) -> str:
        return self.hi if language == "hi" else self.en


UPPER_RUNGS = ("district_officer", "state_officer", "supervisor")


class Escalation(_Frozen):
    """The ladder a request unresolved in time climbs (UP's IGRS: the next officer after a deadline),
    and the outcomes an officer closes it with after a recorded call to the citizen."""

    levels: tuple[EscalationLevel, ...] = Field(min_length=1, max_length=9)
    close_outcomes: tuple[CloseOutcome, ...] = Field(min_length=1)

    @field_validator("levels")
    @classmethod
    def _upper_rungs_have_an_escalations_list(cls, value: tuple[EscalationLevel, ...]) -> tuple[EscalationLevel, ...]:
        """A rung a request climbs to is answered by people whose console has the Escalations list."""
        for number, level in enumerate(value[1:], start=2):
            if level.who not in UPPER_RUNGS:
                raise ValueError(f"escalation level {number}: who must be one of {', '.join(UPPER_RUNGS)}")
        return value

    @field_validator("close_outcomes")
    @classmethod
    def _unique_outcomes(cls, value: tuple[CloseOutcome, ...]) -> tuple[CloseOutcome, ...]:
        _require_unique("close outcome", [outcome.code for outcome in value])
        return value

    def level(self, number: int) -> EscalationLevel:
        """Rung `number` (1 is the first); past the top, the top."""
        return self.levels[min(max(number, 1), len(self.levels)) - 1]

    @property
    def top(self) -> int:
        return len(self.levels)

    def outcome(self, code: str) -> CloseOutcome | None:
        return next((outcome for outcome in self.close_outcomes if outcome.code == code), None)


def default_escalation() -> Escalation:
    """Three rungs, as config.yaml has them, when a configuration names none."""
    return Escalation(
        levels=(
            EscalationLevel(
                who="provider",
                name_en="Provider agency",
                name_hi="सेवा एजेंसी",
                assign_within_minutes=24 * 60,
                resolve_within_minutes=3 * 24 * 60,
            ),
            EscalationLevel(
                who="district_officer",
                name_en="District officer",
                name_hi="ज़िला अधिकारी",
                assign_within_minutes=24 * 60,
                resolve_within_minutes=3 * 24 * 60,
            ),
            EscalationLevel(
                who="state_officer",
                name_en="State officer",
                name_hi="राज्य अधिकारी",
                assign_within_minutes=24 * 60,
                resolve_within_minutes=7 * 24 * 60,
            ),
        ),
        close_outcomes=(CloseOutcome(code="resolved", en="Resolved", hi="समाधान हुआ"),),
    )


# The pause the helpline itself puts an agent in: an offered caller they let pass or did not answer.
MISSED = "missed"
SIGNED_OUT = "signed_out"  # and the one an agent is in after signing out
DEFAULT_PAUSE_REASONS = (
    PauseReason(code="break", name_en="Break", name_hi="विराम"),
    PauseReason(code="lunch", name_en="Lunch", name_hi="भोजन"),
    PauseReason(code="training", name_en="Training", name_hi="प्रशिक्षण"),
    PauseReason(code="meeting", name_en="Meeting", name_hi="बैठक"),
)


# The wrap-up code of an agent call whose wrap-up ran out before the agent gave one.
NONE_GIVEN = "none"
DEFAULT_DISPOSITIONS = (
    Disposition(code="booked", name_en="Request booked", name_hi="अनुरोध दर्ज हुआ"),
    Disposition(code="tracked", name_en="Request tracked", name_hi="अनुरोध की स्थिति बताई"),
    Disposition(code="complaint", name_en="Complaint", name_hi="शिकायत"),
    Disposition(code="change", name_en="Change or cancellation", name_hi="बदलाव या रद्द"),
    Disposition(code="privacy", name_en="Privacy request", name_hi="निजता अनुरोध"),
    Disposition(code="wrong_number", name_en="Wrong number", name_hi="गलत नंबर"),
    Disposition(code="prank", name_en="Prank call", name_hi="शरारती कॉल"),
    Disposition(code="other", name_en="Other", name_hi="अन्य"),
)


class Agents(_Frozen):
    """Agents taking calls: why they may pause, how long their wrap-up lasts, how long an offer rings,
    and the wrap-up codes (dispositions) each call ends with; which callers who hung up in the queue
    are rung back, and how often they are tried."""

    pause_reasons: tuple[PauseReason, ...] = DEFAULT_PAUSE_REASONS
    wrap_up_seconds: int = Field(60, ge=0, le=1800)
    offer_ring_seconds: int = Field(20, ge=5, le=120)
    missed_caller_after_seconds: int = Field(10, ge=0, le=3600)
    callback_max_attempts: int = Field(3, ge=1, le=20)
    callback_retry_minutes: int = Field(30, ge=1, le=7 * 24 * 60)
    hold_music_url: str = Field(
        "http://com.twilio.music.classical.s3.amazonaws.com/BusyStrings.mp3",
        pattern=r"^https?://[^\s]{1,500}$",
        description="an MP3 a caller put on hold by their agent hears (both platforms fetch it themselves)",
    )
    record_calls: bool = True  # agents' calls recorded in the caller's room, the caller told so first
    dispositions: tuple[Disposition, ...] = DEFAULT_DISPOSITIONS

    @field_validator("dispositions")
    @classmethod
    def _unique_dispositions(cls, value: tuple[Disposition, ...]) -> tuple[Disposition, ...]:
        if not value:
            raise ValueError("at least one wrap-up code is needed")
        _require_unique("code", [d.code for d in value])
        if NONE_GIVEN in {d.code for d in value}:
            raise ValueError(f"{NONE_GIVEN!r} is the helpline's own wrap-up code (none given): choose another")
        return value

    def disposition_name(self, code: str | None, language: str = "en") -> str:
        """A code's name; a code since retired from config.yaml stands as itself."""
        known = next((d for d in self.dispositions if d.code == code), None)
        return known.name(language) if known else code or ""

    @field_validator("pause_reasons")
    @classmethod
    def _unique_reasons(cls, value: tuple[PauseReason, ...]) -> tuple[PauseReason, ...]:
        if not value:
            raise ValueError("at least one pause reason is needed")
        _require_unique("code", [r.code for r in value])
        if {MISSED, SIGNED_OUT} & {r.code for r in value}:
            raise ValueError(f"{MISSED!r} and {SIGNED_OUT!r} are the helpline's own pause reasons: choose other codes")
        return value


class Open311(_Frozen):
    jurisdiction_id: str | None = Field(None, max_length=100, description="GeoReport's id of the place served")


class Processes(_Frozen):
    web: int = Field(2, ge=1, le=64)
    rq: int = Field(2, ge=1, le=64)


class Twilio(_Frozen):
    api_base_url: str | None = None
    validate_signatures: bool = True
    messaging_service_sid: str | None = None
    from_number: str | None = None
    twiml_app_sid: str | None = Field(
        None, pattern=r"^AP[0-9a-fA-F]{32}$", description="the TwiML App whose Voice URL answers the browser's calls"
    )
    account_sid: str | None = None
    auth_token: str | None = None
    api_key_sid: str | None = Field(None, pattern=r"^SK[0-9a-fA-F]{32}$", description="signs the browser's tokens")
    api_key_secret: str | None = None

    @property
    def browser_ready(self) -> bool:
        """Whether agents can answer in the browser: the account, an API key and a TwiML App."""
        return all((self.account_sid, self.api_key_sid, self.api_key_secret, self.twiml_app_sid))


class Plivo(_Frozen):
    api_base_url: str | None = None
    validate_signatures: bool = True
    from_number: str | None = Field(None, description="caller ID of the calls we place: an Indian number of ours")
    dlt_entity_id: str | None = Field(None, pattern=r"^\d{10,30}$", description="the DLT principal entity id")
    dlt_header: str | None = Field(None, pattern=r"^[A-Za-z0-9]{3,11}$", description="the DLT header (sender)")
    browser_app_id: str | None = Field(
        None, pattern=r"^\d{6,30}$", description="the application whose answer URL answers the browser's calls"
    )
    auth_id: str | None = None
    auth_token: str | None = None

    @property
    def browser_ready(self) -> bool:
        """Whether agents can answer in the browser: the account and the application of their endpoints."""
        return all((self.auth_id, self.auth_token, self.browser_app_id))

    def missing(self) -> list[str]:
        """What a helpline on Plivo still lacks, named as the operator sets it; [] when nothing.
        No credentials at all is local development (`sewamitra up` starts the Plivo sandbox)."""
        credentials = {"PLIVO_AUTH_ID": self.auth_id, "PLIVO_AUTH_TOKEN": self.auth_token}
        if not any(credentials.values()):
            return []
        keys = {"plivo.from_number": self.from_number, "plivo.dlt_entity_id": self.dlt_entity_id}
        keys["plivo.dlt_header"] = self.dlt_header
        return [name for name, value in {**credentials, **keys}.items() if not value]


class Telephony(_Frozen):
    platform: Literal["twilio", "plivo"] = "twilio"


class SmsTemplate(_Frozen):
    dlt_template_id: str = Field(pattern=r"^\d{19}$")
    hi: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def text(self, language: str) -> str:
        return self.hi if language == "hi" else self.en


class Sms(_Frozen):
    templates: dict[str, SmsTemplate] = Field(default_factory=dict)

    @field_validator("templates")
    @classmethod
    def _one_dlt_template_each(cls, templates: dict[str, SmsTemplate]) -> dict[str, SmsTemplate]:
        """Operators match each SMS to the one template registered under its id: two texts under
        one id would have one of them blocked."""
        named: dict[str, str] = {}
        for name, template in templates.items():
            if template.dlt_template_id in named:
                raise ValueError(
                    f"{name} and {named[template.dlt_template_id]} share DLT template id {template.dlt_template_id}"
                )
            named[template.dlt_template_id] = name
        return templates


PROCESSING_LOGS_MIN_DAYS = 365  # the DPDP Rules 2025 keep logs of processing at least a year


class Retention(_Frozen):
    """Days each kind of personal data is kept before the nightly job erases it."""

    recordings: int = Field(90, ge=1, description="a caller's recorded words, from the call")
    citizens: int = Field(365, ge=1, description="citizens' phone numbers, names and free text, from last contact")
    sms_bodies: int = Field(180, ge=1, description="the text of SMS in and out, from the message")
    call_logs: int = Field(365, description="records of calls (logs of processing), from the call")
    audit_events: int = Field(730, description="the audit trail (logs of processing), from the event")
    call_notes: int = Field(
        90, ge=1, description="what staff write about a call (wrap-up notes, review comments, callback notes)"
    )

    @field_validator("call_logs", "audit_events")
    @classmethod
    def _a_year_at_least(cls, value: int) -> int:
        if value < PROCESSING_LOGS_MIN_DAYS:
            raise ValueError(
                f"logs of processing are kept at least {PROCESSING_LOGS_MIN_DAYS} days "
                f"(DPDP Rules 2025); {value} is too short"
            )
        return value

    @model_validator(mode="after")
    def _notes_found_through_their_call(self) -> Retention:
        """A citizen's erasure finds staff's notes about their calls through the calls' records: a note
        kept longer than its call's record would outlive the number that finds it."""
        if self.call_notes > self.call_logs:
            raise ValueError(f"call_notes ({self.call_notes}) must be at most call_logs ({self.call_logs} days)")
        return self


class BridgedCalls(_Frozen):
    """A worker and a citizen talk through the helpline, never seeing each other's number: while the
    job is assigned and for a while after it is done, each call limited in length."""

    after_completion_hours: int = Field(24, ge=0, le=24 * 30, description="how long after the job is done")
    time_limit_minutes: int = Field(15, ge=1, le=240, description="the longest one bridged call may last")


class Privacy(_Frozen):
    retention: Retention = Retention()
    bridged_calls: BridgedCalls = BridgedCalls()
    erasure_notice_hours: int = Field(
        48,
        ge=0,
        le=24 * 30,
        description="a citizen is told by SMS this long before an erasure for lapsed purpose (DPDP Rules 2025); 0: off",
    )
    grievance_officer: str = Field("Grievance Officer, Sewamitra helpline", min_length=1, max_length=160)
    grievance_email: str = Field("grievance@sewamitra.example", pattern=r"^[^@\s]+@[^@\s]+$")

    @model_validator(mode="after")
    def _notice_within_retention(self) -> Privacy:
        """A notice due before the citizen's last contact would be sent to everyone, at once."""
        if self.erasure_notice_hours >= self.retention.citizens * 24:
            raise ValueError(
                f"erasure_notice_hours ({self.erasure_notice_hours}) must be shorter than "
                f"retention.citizens ({self.retention.citizens} days)"
            )
        return self


class Settings(_Frozen):
    helpline_name: str = "Sewamitra"
    helpline_number: str
    helpline_public_number: str = Field(
        "155330", pattern=r"^\d{3,11}$", description="the number the SMS tell citizens and workers to call, as dialled"
    )
    public_url: str = Field(pattern=r"^https?://[^/]+(/.*)?$")
    data_dir: Path = Path("var")
    recordings_dir: Path = Path("recordings")
    database_url: str | None = None
    redis_url: str | None = None
    secret_key: str | None = None
    privacy_key: str | None = Field(None, description="keys the hash that replaces an erased phone number")
    proxy_hops: int = Field(0, ge=0, le=5, description="reverse proxies in front whose X-Forwarded-* to trust")
    service_area: ServiceArea = ServiceArea()
    languages: tuple[Language, ...]
    services: tuple[Service, ...]
    call_centre: CallCentre = CallCentre()
    slots: Slots = Slots()
    changes: Changes = Changes()
    dispatch: Dispatch = Dispatch()
    rework: Rework = Rework()
    workers_quality: WorkersQuality = WorkersQuality()
    visit: Visit = Visit()
    console: Console = Console()
    agents: Agents = Agents()
    quality: Quality = Quality()
    open311: Open311 = Open311()
    workers: Processes = Processes()
    telephony: Telephony = Telephony()
    twilio: Twilio = Twilio()
    plivo: Plivo = Plivo()
    sms: Sms = Sms()
    privacy: Privacy = Privacy()
    escalation: Escalation = Field(default_factory=default_escalation)

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("services")
    @classmethod
    def _unique_services(cls, value: tuple[Service, ...]) -> tuple[Service, ...]:
        _require_unique("code", [s.code for s in value])
        _require_unique("digit", [s.digit for s in value])
        return value

    @field_validator("languages")
    @classmethod
    def _unique_languages(cls, value: tuple[Language, ...]) -> tuple[Language, ...]:
        if not value:
            raise ValueError("at least one language is needed")
        _require_unique("code", [lang.code for lang in value])
        _require_unique("digit", [lang.digit for lang in value])
        return value

    @model_validator(mode="after")
    def _platform_configured(self) -> Settings:
        """A half-configured platform is refused at start, not at the first call or SMS."""
        if self.telephony.platform == "plivo":
            auth_id = self.plivo.auth_id
            if auth_id and not re.fullmatch(r"(MA|SA)[A-Z0-9]{18}", auth_id):
                raise ValueError("PLIVO_AUTH_ID is not a Plivo Auth ID (20 characters, MA… or SA…)")
            missing = self.plivo.missing()
            if missing:
                raise ValueError(f"telephony.platform is plivo, but {', '.join(missing)} is not set")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'sewamitra.db'}"

    def service(self, code: str) -> Service:
        for service in self.services:
            if service.code == code:
                return service
        raise KeyError(code)

    def service_name(self, code: str, language: str = "en") -> str:
        """The service's name; a code since retired from the catalogue (an old request's) stands as itself."""
        known = next((service for service in self.services if service.code == code), None)
        return known.name(language) if known else code

    @property
    def service_codes(self) -> frozenset[str]:
        return frozenset(s.code for s in self.services)


def _require_unique(what: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} appears twice")
        seen.add(value)


def default_config_path(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get(CONFIG_ENV, "config.yaml"))


def load_settings(path: Path | None = None, environ: Mapping[str, str] = os.environ) -> Settings:
    """Read config.yaml, apply SEWAMITRA_* overrides and secrets from `environ`, validate."""
    path = path or default_config_path(environ)
    raw = _read_yaml(path)
    origins: dict[tuple[str, ...], str] = {}
    for env_name, value in environ.items():
        if env_name.startswith(ENV_PREFIX) and env_name != CONFIG_ENV:
            key = tuple(part.lower() for part in env_name[len(ENV_PREFIX) :].split("__"))
            _set_nested(raw, key, value)
            origins[key] = env_name
    for key, env_name in SECRET_ENV.items():
        if env_name in environ:
            _set_nested(raw, key, environ[env_name])
            origins[key] = env_name
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(path, exc, origins)) from None
    relative = {
        key: (path.parent / getattr(settings, key)).resolve()
        for key in ("data_dir", "recordings_dir")
        if not getattr(settings, key).is_absolute()
    }
    return settings.model_copy(update=relative) if relative else settings


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc.strerror})") from None
    try:
        raw = copy.deepcopy(_document(text)) or {}  # the caller's own copy: the environment's values go into it
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    for key, env_name in SECRET_ENV.items():
        if _get_nested(raw, key) is not None:
            raise ConfigError(
                f"{path}: {'.'.join(key)} is a secret and is read only from the environment "
                f"variable {env_name}; remove it from the file"
            )
    return raw


@functools.lru_cache(maxsize=8)
def _document(text: str) -> Any:
    """A configuration file's YAML, parsed once per process for each text (a process that loads the
    settings again, as the tests do for each test, parses nothing again); never changed in place."""
    return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 (a safe loader, C or Python)


def _get_nested(raw: dict[str, Any], key: tuple[str, ...]) -> Any:
    node: Any = raw
    for part in key:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _set_nested(raw: dict[str, Any], key: tuple[str, ...], value: str) -> None:
    node = raw
    for part in key[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[key[-1]] = None if value.lower() in ("", "null", "none") else value


def _explain(path: Path, exc: ValidationError, origins: dict[tuple[str, ...], str]) -> str:
    lines = [f"{path}: the configuration is not valid:"]
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc) or "(top level)"
        source = next((f" (from {env})" for k, env in origins.items() if loc[: len(k)] == k), "")
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        given = error.get("input")
        shown = "" if isinstance(given, dict | list) or given is None else f", got {given!r}"
        lines.append(f"  {key}{source}: {message}{shown}")
    return "\n".join(lines)
