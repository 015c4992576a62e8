"""Time slots a visit is booked for: the calendar of `Settings.slots` in the call centre's time zone.

Pure: the moment is an argument. A slot is a local day and one of its periods (morning, afternoon,
evening by default); a request keeps the slot's bounds in UTC (`ServiceRequest.slot_starts_at`,
`slot_ends_at`), so a later change of the periods in config.yaml leaves booked visits as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.settings import DAYS, Settings, SlotPeriod

MONTHS_HI = (
    "जनवरी",
    "फ़रवरी",
    "मार्च",
    "अप्रैल",
    "मई",
    "जून",
    "जुलाई",
    "अगस्त",
    "सितंबर",
    "अक्टूबर",
    "नवंबर",
    "दिसंबर",
)

# A visit booked for no slot: the first worker free comes, within about ASAP_HOURS.
ASAP_EN = "as soon as possible"
ASAP_HI = "जल्द से जल्द"
ASAP_HOURS = 2


@dataclass(frozen=True)
class Slot:
    day: date  # in the call centre's time zone
    period: SlotPeriod
    starts_at: datetime  # aware, UTC
    ends_at: datetime

    @property
    def key(self) -> str:
        """How the API and the console name it: `2026-12-04/morning`."""
        return f"{self.day.isoformat()}/{self.period.key}"


def _zone(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.call_centre.timezone)


def _slot(settings: Settings, day: date, period: SlotPeriod) -> Slot:
    zone = _zone(settings)
    starts = datetime.combine(day, period.starts, zone).astimezone(ZoneInfo("UTC"))
    ends = datetime.combine(day, period.ends, zone).astimezone(ZoneInfo("UTC"))
    return Slot(day, period, starts, ends)


def upcoming(settings: Settings, now: datetime) -> list[Slot]:
    """The slots open for booking at `now`, soonest first: working days from today on, for
    `days_ahead` calendar days, closed dates skipped, none starting within `lead_minutes`."""
    rules = settings.slots
    today = now.astimezone(_zone(settings)).date()
    earliest = now + timedelta(minutes=rules.lead_minutes)
    found: list[Slot] = []
    for offset in range(rules.days_ahead):
        day = today + timedelta(days=offset)
        if DAYS[day.weekday()] not in rules.days or day in rules.closed_dates:
            continue
        found.extend(slot for period in rules.periods if (slot := _slot(settings, day, period)).starts_at >= earliest)
    return found


def window(starts_at: datetime | None, ends_at: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The time a visit takes up: its slot, or for one booked as soon as possible the next ASAP_HOURS."""
    if starts_at is None or ends_at is None:
        return now, now + timedelta(hours=ASAP_HOURS)
    return starts_at, ends_at


def find(settings: Settings, key: str, now: datetime) -> Slot | None:
    """The open slot named `key` (`YYYY-MM-DD/period`), or None: unknown, past, closed or too soon."""
    return next((slot for slot in upcoming(settings, now) if slot.key == key.strip().lower()), None)


def parse(settings: Settings, key: str) -> Slot | None:
    """The slot a well-formed key names, open or not (a key picked a minute ago, now within the lead
    time, is still the caller's choice); None for a key of no day or no period of config.yaml."""
    day_text, _, period_key = key.strip().lower().partition("/")
    period = next((p for p in settings.slots.periods if p.key == period_key), None)
    try:
        day = date.fromisoformat(day_text) if len(day_text) == 10 else None
    except ValueError:
        day = None
    return _slot(settings, day, period) if day is not None and period is not None else None


def key_of(settings: Settings, starts_at: datetime, ends_at: datetime) -> str:
    """The key of a booked slot's bounds: `2026-12-04/evening`; `2026-12-04/16:00-20:00` for bounds no
    period of config.yaml has any more."""
    zone = _zone(settings)
    start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    period = next((p for p in settings.slots.periods if p.starts == start.time() and p.ends == end.time()), None)
    return f"{start.date().isoformat()}/{period.key if period else f'{start:%H:%M}-{end:%H:%M}'}"


def when(
    settings: Settings,
    starts_at: datetime | None,
    ends_at: datetime | None,
    language: str,
    now: datetime,
    *,
    spoken: bool = False,
) -> str:
    """When the visit is, in words: the booked slot's, or "as soon as possible" for none."""
    if starts_at is None or ends_at is None:
        return ASAP_HI if language == "hi" else ASAP_EN
    return describe(settings, starts_at, ends_at, language, now, spoken=spoken)


def describe(
    settings: Settings, starts_at: datetime, ends_at: datetime, language: str, now: datetime, *, spoken: bool = False
) -> str:
    """A booked slot in words, e.g. "tomorrow evening (16:00-20:00)" / "कल शाम (16:00-20:00)";
    `spoken`, as a voice reads it: "tomorrow evening, 16:00 to 20:00" / "कल शाम, 16:00 से 20:00 तक"."""
    zone = _zone(settings)
    start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    days_away = (start.date() - now.astimezone(zone).date()).days
    if days_away == 0:
        day = "आज" if language == "hi" else "today"
    elif days_away == 1:
        day = "कल" if language == "hi" else "tomorrow"
    elif language == "hi":
        day = f"{start.day} {MONTHS_HI[start.month - 1]}"
    else:
        day = f"{start.day} {start.strftime('%b')}"
    period = next((p for p in settings.slots.periods if p.starts == start.time() and p.ends == end.time()), None)
    if spoken:
        hours = f"{start:%H:%M} से {end:%H:%M} तक" if language == "hi" else f"{start:%H:%M} to {end:%H:%M}"
        return f"{day} {period.name(language)}, {hours}" if period else f"{day}, {hours}"
    hours = f"{start:%H:%M}-{end:%H:%M}"
    return f"{day} {period.name(language)} ({hours})" if period else f"{day} {hours}"
