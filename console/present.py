"""How the console shows things: times in the call centre's zone, waits, phone numbers for a role."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Flask, g

from console import metrics
from console.auth import runtime
from console.labels import translate as t
from core import phones, pincodes, slots
from storage.models import Role, ServiceRequest

# Roles that phone citizens back and so see their numbers in full.
SEES_CITIZEN_NUMBERS = (Role.AGENT, Role.SUPERVISOR, Role.ADMIN)


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(
        local=local_time,
        wait=wait,
        citizen_phone=citizen_phone,
        district=district_name,
        service=service_name,
        duration=duration,
        overdue=overdue,
        slot=visit_slot,
    )


def zone() -> ZoneInfo:
    return ZoneInfo(runtime().settings.call_centre.timezone)


def local_time(moment: datetime | None, fmt: str = "%d %b %H:%M") -> str:
    """In the call centre's zone; in Hindi with the month as a number (strftime knows English names only)."""
    if moment is None:
        return "–"
    if g.get("language") == "hi":
        fmt = fmt.replace("%b", "%m").replace("%d %m", "%d/%m")
    return moment.astimezone(zone()).strftime(fmt)


def day_range(day: date) -> tuple[datetime, datetime]:
    """The UTC bounds of a calendar day in the call centre's zone."""
    return metrics.day_bounds(day, runtime().settings.call_centre.timezone)


def today() -> date:
    return metrics.local_day(runtime().clock.now(), runtime().settings.call_centre.timezone)


def wait(seconds: float | int | None) -> str:
    """'4 min 05 s', '35 s' (in Hindi '4 मिनट 05 सेकंड')."""
    if seconds is None:
        return "–"
    seconds, s, m, h = int(seconds), t("s"), t("min"), t("h")
    if seconds < 60:
        return f"{seconds} {s}"
    if seconds < 3600:
        return f"{seconds // 60} {m} {seconds % 60:02d} {s}"
    return f"{seconds // 3600} {h} {seconds % 3600 // 60:02d} {m}"


def overdue(request: ServiceRequest) -> str:
    """How far past the assignment SLA a request is: up to its assignment, or up to now while it
    waits for a worker; '–' within it."""
    limit = timedelta(minutes=runtime().settings.console.assignment_sla_minutes)
    end = request.assigned_at if request.worker_id is not None and request.assigned_at else runtime().clock.now()
    late = end - request.created_at - limit
    return wait(late.total_seconds()) if late > timedelta(0) else "–"


def visit_slot(request: ServiceRequest) -> str:
    """When the visit is booked for, in the console's language: "tomorrow evening (16:00-20:00)", or
    "as soon as possible"."""
    settings = runtime().settings
    language = "hi" if g.get("language") == "hi" else "en"
    return slots.when(settings, request.slot_starts_at, request.slot_ends_at, language, runtime().clock.now())


def duration(seconds: float | None) -> str:
    """A dashboard tile's wait, in the console's language."""
    return metrics.format_duration(seconds, (t("s"), t("min"), t("h")))


def citizen_phone(number: str | None) -> str:
    """A citizen's number in full for those who ring them back, masked for everyone else."""
    if not number:
        return t("withheld")
    if phones.is_pseudonym(number):
        return t("erased")
    return number if g.user.role in SEES_CITIZEN_NUMBERS else phones.mask(number)


def district_name(district: str) -> str:
    """The directory's district in the console's language: 'LUCKNOW' -> 'Lucknow' or 'लखनऊ'."""
    return pincodes.display_name(district, g.get("language", "en"))


def service_name(code: str) -> str:
    try:
        return runtime().settings.service(code).name(g.get("language", "en"))
    except KeyError:
        return code


def local_moment(raw: str) -> datetime | None:
    """A datetime-local field ('2026-12-02T10:30') in the call centre's zone; None if absent or absurd."""
    try:
        moment = datetime.fromisoformat(raw[:16]).replace(tzinfo=zone())
    except ValueError:
        return None
    now = runtime().clock.now().astimezone(zone())
    return moment if now - timedelta(minutes=5) <= moment <= now + timedelta(days=30) else None
