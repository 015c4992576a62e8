"""Bulk onboarding of workers from a CSV file a provider agency or the state sends in.

Bad rows are reported with the row number a person sees in a spreadsheet and skipped; good rows
are flushed into the caller's transaction, so one commit (or one rollback) covers the whole file.
"""

from __future__ import annotations

import csv
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TextIO

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from core import pincodes
from core.exceptions import ImportFileError, SewamitraError
from core.phones import indian_mobile
from core.pincodes import Place
from core.settings import Settings
from core.text import REORDERS, reorders
from storage.models import Origin, Provider, VerificationStatus, Worker, WorkerSkill

Progress = Callable[[int, int], None]

REQUIRED = ("name", "phone", "skills", "pincode", "provider", "police_verified", "available")
OPTIONAL = (
    "service_radius_km",
    "language",
    "voice_preferred",
    "certification",
    "certification_grade",
    "police_reference",
    "police_verified_on",
    "origin",
)
MAX_ROWS = 50_000
MAX_RADIUS_KM = 200.0
BATCH = 500
FORMULA_STARTS = ("=", "+", "-", "@")
PHONE_CHARACTERS = re.compile(r"^[0-9+\-() ]{1,20}$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
YES_NO = {"yes": True, "no": False}
# Messages start with the column they are about, but for these.
COLUMN_OF_MESSAGE = (("no skills", "skills"), ("unknown skill", "skills"), ("unknown pincode", "pincode"))
JOINERS = frozenset("\u200c\u200d")  # ZWNJ and ZWJ: part of how Hindi is written


def _column_size(model: type[SQLModel], column: str) -> int:
    """The width of a text column, so the file is held to what the database can store."""
    length = getattr(sa.inspect(model).columns[column].type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"{model.__name__}.{column} is not a sized text column")
    return length


LIMITS = {
    "name": _column_size(Worker, "name"),
    "provider": _column_size(Provider, "name"),
    "certification": _column_size(Worker, "certification"),
    "certification_grade": _column_size(Worker, "certification_grade"),
    "police_reference": _column_size(Worker, "police_reference"),
}


@dataclass(frozen=True)
class RowError:
    row: int
    reason: str


@dataclass(frozen=True)
class ImportReport:
    """What the operator needs to fix the file: how many went in, which rows did not, and why."""

    imported: int
    providers_created: list[str]
    errors: list[RowError]


@dataclass(frozen=True)
class WorkerRow:
    """One valid line of the file, ready to become a Worker."""

    row: int
    name: str
    phone: str
    skills: tuple[str, ...]
    pincode: str
    district: str
    latitude: float
    longitude: float
    provider: str | None
    police_verified: bool
    available: bool
    service_radius_km: float | None = None
    language: str = "hi"
    voice_preferred: bool = False
    certification: str | None = None
    certification_grade: str | None = None
    police_reference: str | None = None
    police_verified_on: date | None = None
    origin: Origin = Origin.LOCAL

    def worker(self, provider_id: int | None) -> Worker:
        verified = VerificationStatus.VERIFIED if self.police_verified else VerificationStatus.PENDING
        return Worker(
            name=self.name,
            phone=self.phone,
            pincode=self.pincode,
            district=self.district,
            latitude=self.latitude,
            longitude=self.longitude,
            service_radius_km=self.service_radius_km,
            language=self.language,
            voice_preferred=self.voice_preferred,
            police_verification=verified,
            police_verified_on=self.police_verified_on,
            police_reference=self.police_reference,
            certification=self.certification,
            certification_grade=self.certification_grade,
            available=self.available,
            origin=self.origin,
            provider_id=provider_id,
        )


def import_workers(
    session: Session,
    settings: Settings,
    source: TextIO,
    *,
    progress: Progress | None = None,
    today: date | None = None,
) -> ImportReport:
    """Import every good row of `source`; flushes, never commits: the caller decides."""
    columns, records = read_records(source)
    rows, errors = _parse_all(columns, records, settings, today or date.today())
    rows, duplicates = without_duplicates(rows, registered_phones(session, [row.phone for row in rows]))
    provider_ids, created = _providers(session, rows)
    _save(session, rows, provider_ids, progress)
    return ImportReport(len(rows), created, sorted(errors + duplicates, key=lambda error: error.row))


def read_records(source: TextIO) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header's column names and every non-blank record with the row it starts on."""
    lines = _lines(source)
    header = next(lines, None)
    if header is None:
        raise ImportFileError(f"the file is empty; its first row must name the columns: {', '.join(REQUIRED)}")
    columns = check_header(header[1])
    records = []
    for record in lines:
        records.append(record)
        if len(records) > MAX_ROWS:
            raise ImportFileError(f"the file has more than {MAX_ROWS:,} rows; split it and import the parts in turn")
    return columns, records


def _lines(source: TextIO) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(source)
    start = 1
    try:
        for values in reader:
            if any(value.strip() for value in values):
                yield start, values
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ImportFileError(f"line {reader.line_num}: the file cannot be read as CSV ({exc})") from None
    except UnicodeDecodeError:
        raise ImportFileError("the file is not UTF-8 text; save it from the spreadsheet as 'CSV UTF-8'") from None


def check_header(header: Sequence[str]) -> list[str]:
    """The header's column names, normalised; refuses a file whose columns we do not know."""
    columns = [name.lstrip("\ufeff").strip().lower() for name in header]
    for number, name in enumerate(columns, start=1):
        if not name:
            raise ImportFileError(f"column {number} of the header has no name")
        if name not in REQUIRED and name not in OPTIONAL:
            raise ImportFileError(
                f"unknown column {name!r}; the columns are {', '.join(REQUIRED)} and, if wanted, {', '.join(OPTIONAL)}"
            )
        if columns.index(name) != number - 1:
            raise ImportFileError(f"column {name!r} appears twice in the header")
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise ImportFileError(f"missing required column(s): {', '.join(missing)}")
    return columns


def _parse_all(
    columns: list[str], records: list[tuple[int, list[str]]], settings: Settings, today: date
) -> tuple[list[WorkerRow], list[RowError]]:
    rows: list[WorkerRow] = []
    errors: list[RowError] = []
    for number, values in records:
        if any(value.strip() for value in values[len(columns) :]):
            reason = f"the row has {len(values)} values but the header names {len(columns)} columns"
            errors.append(RowError(number, reason))
            continue
        parsed = parse_row(number, dict(zip(columns, values, strict=False)), settings, today)
        if isinstance(parsed, WorkerRow):
            rows.append(parsed)
        else:
            errors.append(RowError(number, "; ".join(parsed)))
    return rows, errors


def parse_row(row: int, cells: Mapping[str, str], settings: Settings, today: date) -> WorkerRow | list[str]:
    """A valid WorkerRow, or every reason the row cannot be imported."""
    problems: list[str] = []
    name = _text(cells, "name", problems, required=True)
    phone = _mobile(cells, problems)
    skills = _skill_codes(cells, [service.code for service in settings.services], problems)
    place = _service_area_place(cells, settings.service_area.state, problems)
    provider = _text(cells, "provider", problems)
    verified = _yes_no(cells, "police_verified", problems)
    available = _yes_no(cells, "available", problems)
    km = _radius(cells, problems)
    language = _choice(cells, "language", [lang.code for lang in settings.languages], problems)
    voice = _yes_no(cells, "voice_preferred", problems, default=False)
    reference = _text(cells, "police_reference", problems)
    verified_on = _verification_date(cells, today, problems)
    if verified_on and not verified:
        problems.append("police_verified_on is given but police_verified is no")
    if verified:
        problems += _verification_evidence(cells)
    origin = Origin(_choice(cells, "origin", [origin.value for origin in Origin], problems))
    course, grade = _certification(cells, problems)
    if problems or name is None or phone is None or place is None or place.latitude is None or place.longitude is None:
        return problems
    return WorkerRow(
        row=row,
        name=name,
        phone=phone,
        skills=skills,
        provider=provider,
        pincode=place.pincode,
        district=place.district,
        latitude=place.latitude,
        longitude=place.longitude,
        police_verified=verified,
        police_verified_on=verified_on,
        police_reference=reference,
        available=available,
        service_radius_km=km,
        language=language,
        voice_preferred=voice,
        certification=course,
        certification_grade=grade,
        origin=origin,
    )


def _cell(cells: Mapping[str, str], column: str) -> str:
    return cells.get(column, "").strip()


def _text(cells: Mapping[str, str], column: str, problems: list[str], *, required: bool = False) -> str | None:
    """Free text, whitespace and invisible characters tidied, refused when too long for its column,
    formula-like, or holding characters that hide or reorder what an agent or a citizen reads."""
    raw = cells.get(column, "")
    if reorders(raw):
        problems.append(f"{column} {REORDERS}")
        return None
    value = " ".join(_without_invisible(raw).split())
    if not value.strip("".join(JOINERS)):
        if required:
            problems.append(f"{column} is empty")
        return None
    if len(value) > LIMITS[column]:
        problems.append(f"{column} is longer than {LIMITS[column]} characters")
    elif value.startswith(FORMULA_STARTS):
        problems.append(f"{column} starts with {value[0]!r}, which a spreadsheet would run as a formula")
    elif any(unicodedata.category(char) == "Cc" for char in value):
        problems.append(f"{column} contains control characters")
    else:
        return value
    return None


def _without_invisible(text: str) -> str:
    """Without format characters (byte-order marks, zero-width spaces…), except the joiners that
    Devanagari and other Indian scripts need to shape their letters."""
    return "".join(char for char in text if unicodedata.category(char) != "Cf" or char in JOINERS)


def _mobile(cells: Mapping[str, str], problems: list[str]) -> str | None:
    raw = _cell(cells, "phone")
    if not raw:
        problems.append("phone is empty")
        return None
    number = indian_mobile(raw) if PHONE_CHARACTERS.match(raw) else None
    if number is None:
        problems.append(f"phone {_shown(raw)} is not a valid Indian mobile number")
    return number


def _skill_codes(cells: Mapping[str, str], codes: list[str], problems: list[str]) -> tuple[str, ...]:
    """The catalogue codes named, in the file's order, each once."""
    named = [code.strip().lower() for code in _cell(cells, "skills").split(";")]
    named = list(dict.fromkeys(code for code in named if code))
    unknown = [code for code in named if code not in codes]
    if not named:
        problems.append(f"no skills given; name one or more of {', '.join(codes)} separated by ';'")
    elif unknown:
        listed = ", ".join(_shown(code) for code in unknown[:5]) + (", …" if len(unknown) > 5 else "")
        problems.append(f"unknown skill {listed}; valid codes are {', '.join(codes)}")
    return tuple(named)


def _service_area_place(cells: Mapping[str, str], state: str, problems: list[str]) -> Place | None:
    """The PIN code's place, if the helpline serves it and can put it on the map."""
    pin = "".join(_cell(cells, "pincode").split())
    place = pincodes.lookup(pin) if pincodes.is_well_formed(pin) else None
    if not pincodes.is_well_formed(pin):
        problems.append(f"pincode {_shown(_cell(cells, 'pincode'))} is not a 6-digit PIN code")
    elif place is None:
        problems.append(f"unknown pincode {pin}")
    elif not place.in_state(state):
        problems.append(f"pincode {pin} is in {place.state}, outside {state.upper()}")
    elif place.latitude is None or place.longitude is None:
        problems.append(f"pincode {pin} has no map position in the India Post directory; use a neighbouring one")
    else:
        return place
    return None


def _yes_no(cells: Mapping[str, str], column: str, problems: list[str], *, default: bool | None = None) -> bool:
    value = _cell(cells, column)
    if not value and default is not None:
        return default
    if value.lower() in YES_NO:
        return YES_NO[value.lower()]
    problems.append(
        f"{column} must be yes or no, not {_shown(value)}" if value else f"{column} is empty; write yes or no"
    )
    return False


def _radius(cells: Mapping[str, str], problems: list[str]) -> float | None:
    raw = _cell(cells, "service_radius_km")
    if not raw:
        return None
    try:
        km = float(raw)
    except ValueError:
        km = math.nan
    if not (math.isfinite(km) and 0 < km <= MAX_RADIUS_KM):
        problems.append(f"service_radius_km must be a number of kilometres above 0 and up to 200, not {_shown(raw)}")
        return None
    return km


def _choice(cells: Mapping[str, str], column: str, allowed: list[str], problems: list[str]) -> str:
    """One of `allowed`; an empty cell means the first."""
    value = _cell(cells, column).lower()
    if not value:
        return allowed[0]
    if value not in allowed:
        problems.append(f"{column} must be one of {', '.join(allowed)}, not {_shown(_cell(cells, column))}")
        return allowed[0]
    return value


def _verification_date(cells: Mapping[str, str], today: date, problems: list[str]) -> date | None:
    raw = _cell(cells, "police_verified_on")
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw) if ISO_DATE.match(raw) else None
    except ValueError:
        day = None
    if day is None:
        problems.append(f"police_verified_on must be a date written YYYY-MM-DD, not {_shown(raw)}")
    elif day > today:
        problems.append(f"police_verified_on {day.isoformat()} is in the future")
        return None
    return day


def _verification_evidence(cells: Mapping[str, str]) -> list[str]:
    """A verified worker needs the police reference and the date, as the console's verification form asks."""
    missing = [column for column in ("police_reference", "police_verified_on") if not _cell(cells, column)]
    if not missing:
        return []
    return [
        f"police_verified is yes, which needs {' and '.join(missing)} (the police verification's reference "
        "and date), as the console's verification does"
    ]


def _certification(cells: Mapping[str, str], problems: list[str]) -> tuple[str | None, str | None]:
    """The certificate and its grade; a grade alone means a column was filled in by mistake."""
    course, grade = _text(cells, "certification", problems), _text(cells, "certification_grade", problems)
    if grade and not _cell(cells, "certification"):
        problems.append("certification_grade is given without a certification")
    return course, grade


def _shown(value: str) -> str:
    """A value quoted for a message, cut short so a hostile cell cannot flood the report."""
    return repr(value if len(value) <= 40 else value[:40] + "…")


def without_duplicates(rows: list[WorkerRow], registered: set[str]) -> tuple[list[WorkerRow], list[RowError]]:
    """Each phone number once: not already in the database, not twice in the file."""
    first_row: dict[str, int] = {}
    kept: list[WorkerRow] = []
    errors: list[RowError] = []
    for row in rows:
        if row.phone in registered:
            errors.append(RowError(row.row, f"phone {row.phone} already belongs to a registered worker"))
        elif row.phone in first_row:
            errors.append(RowError(row.row, f"phone {row.phone} is already on row {first_row[row.phone]}"))
        else:
            first_row[row.phone] = row.row
            kept.append(row)
    return kept, errors


def by_column(problems: list[str]) -> dict[str, list[str]]:
    """A row's problems, by the column each is about ('' for the rest): for a form or an API to
    show next to the field."""
    placed: dict[str, list[str]] = {}
    for problem in problems:
        named = [column for start, column in COLUMN_OF_MESSAGE if problem.startswith(start)]
        named += [column for column in (*REQUIRED, *OPTIONAL) if problem.startswith(column + " ")]
        placed.setdefault(named[0] if named else "", []).append(problem)
    return placed


def save_rows(session: Session, rows: list[WorkerRow], provider_id: int | None) -> list[int]:
    """Workers for rows already checked, all of one agency (or none); their ids, in the rows' order."""
    workers = [row.worker(provider_id) for row in rows]
    session.add_all(workers)
    session.flush()
    ids = [_saved(worker.id) for worker in workers]
    session.add_all(
        WorkerSkill(worker_id=worker_id, service_code=code)
        for worker_id, row in zip(ids, rows, strict=True)
        for code in row.skills
    )
    session.flush()
    return ids


def registered_phones(session: Session, phones: list[str]) -> set[str]:
    """Which of these numbers a worker on the register already has (asked in batches)."""
    found: set[str] = set()
    for start in range(0, len(phones), BATCH):
        chunk = phones[start : start + BATCH]
        found.update(session.exec(select(Worker.phone).where(col(Worker.phone).in_(chunk))).all())
    return found


def provider_key(name: str) -> str:
    """How two spellings of one agency are told to be the same: case and spacing do not count."""
    return " ".join(name.split()).casefold()


def _providers(session: Session, rows: list[WorkerRow]) -> tuple[dict[str, int], list[str]]:
    """Ids of the agencies the rows name, creating those named for the first time."""
    ids: dict[str, int] = {}
    for provider_id, name in session.exec(select(Provider.id, Provider.name).order_by(col(Provider.id))).all():
        ids.setdefault(provider_key(name), _saved(provider_id))
    new: dict[str, Provider] = {}
    for row in rows:
        if row.provider and provider_key(row.provider) not in ids:
            new.setdefault(provider_key(row.provider), Provider(name=row.provider))
    session.add_all(new.values())
    session.flush()
    ids.update({key: _saved(provider.id) for key, provider in new.items()})
    return ids, [provider.name for provider in new.values()]


def _save(session: Session, rows: list[WorkerRow], provider_ids: dict[str, int], progress: Progress | None) -> None:
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        workers = [row.worker(provider_ids[provider_key(row.provider)] if row.provider else None) for row in batch]
        session.add_all(workers)
        session.flush()
        session.add_all(
            WorkerSkill(worker_id=_saved(worker.id), service_code=code)
            for row, worker in zip(batch, workers, strict=True)
            for code in row.skills
        )
        session.flush()
        if progress:
            progress(start + len(batch), len(rows))


def _saved(row_id: int | None) -> int:
    if row_id is None:
        raise SewamitraError("a new row has no id after flush")
    return row_id
