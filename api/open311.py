"""Open311 GeoReport v2 at /open311/v2: the catalogue, filing a request, and following requests,
in XML or JSON (`.xml` / `.json` on each path).

Filing needs an API token (`api_key`, as GeoReport says, or `Authorization: Bearer`); reading does
not, so it shows what any citizen may see: the status, the service and the locality, never the
address, the description or the citizen. A token that may see a request (the partner that filed it,
the helpline's staff) sees those too. Where it is: `lat` and `long`, an `address_string` with its
PIN code, or the PIN code itself (`attribute[pincode]`, described in each service's definition).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, g, request
from sqlmodel import Session, col, select
from werkzeug.exceptions import HTTPException

from api import filing, inputs
from api.auth import STAFF, audit_refusal, authenticate, bearer, runtime
from api.errors import RETRY_AFTER_S, ApiError, unavailable
from api.georeport import Format, answer, errors
from core import numbers, pincodes, slots
from core.settings import Settings
from storage.models import ApiRole, ApiToken, Channel, Provider, RequestStatus, ServiceRequest, Worker

log = logging.getLogger(__name__)
bp = Blueprint("open311", __name__, url_prefix="/open311/v2")
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
FORMATS = "<any(json, xml):fmt>"
OPEN = frozenset({RequestStatus.NEW, RequestStatus.OFFERED, RequestStatus.ASSIGNED, RequestStatus.ESCALATED})
NOTES = {
    RequestStatus.NEW: "received; looking for a verified worker nearby",
    RequestStatus.OFFERED: "offered to a verified worker nearby; waiting for their answer",
    RequestStatus.ASSIGNED: "a verified worker has taken the job and will visit",
    RequestStatus.ESCALATED: "no worker took it in time; a helpline agent is arranging one",
    RequestStatus.COMPLETED: "the worker has finished the job",
    RequestStatus.CLOSED: "closed after the helpline followed it up",
    RequestStatus.CANCELLED: "cancelled",
}
WINDOW = timedelta(days=90)
MOST = 1000  # requests a query returns at most, newest first
MAX_IDS = 100
MAX_BODY = 64 * 1024
FILERS = (ApiRole.PARTNER, *STAFF)
# POST fields, and the longest each may be (description: GeoReport's own limit).
FIELDS = {
    "api_key": 64,
    "jurisdiction_id": 100,
    "service_code": 32,
    "lat": 32,
    "long": 32,
    "address_string": 500,
    "address_id": 100,
    "email": 160,
    "device_id": 100,
    "account_id": 100,
    "first_name": 60,
    "last_name": 60,
    "phone": 20,
    "description": 4000,
    "media_url": 500,
    "pincode": 6,
    "language": 2,
    "attribute[pincode]": 6,
    "attribute[language]": 2,
    "attribute[preferred_time]": 80,
    "attribute[slot]": 40,
}
# The fields whose text reaches the request (and an agent's or a worker's screen).
TEXTS = ("first_name", "last_name", "address_string", "description", "attribute[preferred_time]")
# What only the helpline sets: GeoReport's fields of a request's answer (its id, state and times) and
# our own of its progress. A client posting one expects it to take effect, and it never would: refused,
# as /api/v1 refuses any field it does not take (other unknown fields are ignored, as GeoReport allows).
SET_BY_THE_HELPLINE = frozenset(
    {
        "service_request_id",
        "token",
        "status",
        "status_notes",
        "agency_responsible",
        "service_notice",
        "requested_datetime",
        "updated_datetime",
        "expected_datetime",
        "worker",
        "worker_id",
        "worker_name",
        "number",
        "channel",
        "filed_by",
        "assigned_at",
        "completed_at",
        "completion_code",
        "rating",
        "created_at",
        "updated_at",
    }
)


class Refused(Exception):
    """A GeoReport error answer: its status and, by field, what is wrong."""

    def __init__(self, status: int, problems: dict[str, str]) -> None:
        super().__init__(status, problems)
        self.status, self.problems = status, problems


@bp.before_request
def small_bodies() -> None:
    request.max_content_length = MAX_BODY


def _format() -> Format:
    return "json" if request.path.endswith(".json") else "xml"


@bp.errorhandler(Refused)
def refused(error: Refused) -> Response:
    return errors(_format(), error.status, error.problems)


@bp.errorhandler(ApiError)
def api_error(error: ApiError) -> Response:
    """A check shared with the JSON API, answered the GeoReport way."""
    return errors(_format(), error.status, error.fields or {"": error.message})


@bp.errorhandler(Exception)
def failed(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return http_error(error)
    outage = unavailable(error)
    if outage is not None:
        answer = errors(_format(), outage.status, {"": outage.message})
        answer.headers["Retry-After"] = str(RETRY_AFTER_S)
        return answer
    log.exception("Open311 call %s %s failed", request.method, request.path, exc_info=error)
    return errors(_format(), 500, {"": "the helpline could not answer; try again"})


def http_error(error: HTTPException) -> Response:
    texts = {
        404: "no such resource; see /open311/v2/discovery.xml",
        405: "this resource does not take this method",
        413: f"the request is larger than {MAX_BODY // 1024} KiB",
    }
    return errors(_format(), error.code or 500, {"": texts.get(error.code or 500, error.name)})


# -- the catalogue ---------------------------------------------------------------------------------


@bp.get(f"/discovery.{FORMATS}")
def discovery(fmt: Format) -> Response:
    """Where this GeoReport endpoint is and what it speaks (GeoReport's service discovery)."""
    settings = runtime().settings
    _jurisdiction(settings)
    base = f"{settings.public_url}/open311/v2"
    endpoint = {
        "specification": SPECIFICATION,
        "url": base,
        "changeset": "2026-12-02T00:00:00Z",
        "type": "production",
        "formats": ["text/xml", "application/json"],
    }
    document = {
        "changeset": "2026-12-02T00:00:00Z",
        "contact": f"{settings.helpline_name}: {settings.helpline_number}",
        "key_service": f"API tokens: ask the helpline's administrator ({settings.helpline_name})",
        "endpoints": [endpoint],
    }
    return answer(fmt, "discovery", document)


@bp.get(f"/services.{FORMATS}")
def services(fmt: Format) -> Response:
    settings = runtime().settings
    _jurisdiction(settings)
    return answer(fmt, "services", [_service(settings, s.code) for s in settings.services])


def _service(settings: Settings, code: str) -> dict[str, Any]:
    service = settings.service(code)
    return {
        "service_code": service.code,
        "service_name": service.name_en,
        "description": f"{service.name_en} ({service.name_hi}): a verified worker visits the home; "
        f"visit charge ₹{service.visit_charge}",
        "metadata": True,
        "type": "realtime",
        "keywords": f"{service.code}, {service.name_hi}",
        "group": "home services",
    }


@bp.get(f"/services/<code>.{FORMATS}")
def definition(code: str, fmt: Format) -> Response:
    """The extra fields a request for this service takes: where (the PIN code), the language, a time."""
    settings = runtime().settings
    _jurisdiction(settings)
    if code not in settings.service_codes:
        raise Refused(404, {"service_code": f"no service {code[:32]!r}; see services.{fmt}"})
    languages = [{"key": lang.code, "name": lang.name} for lang in settings.languages]
    attributes = [
        _attribute(
            "pincode",
            "string",
            1,
            "6-digit PIN code of the address (not needed with lat/long, or an address_string that holds it)",
        ),
        _attribute("language", "singlevaluelist", 2, "language of the SMS and calls the citizen gets", languages),
        _attribute("preferred_time", "string", 3, "when the citizen would like the visit"),
        _attribute(
            "slot",
            "singlevaluelist",
            4,
            "the visit's slot, open for booking now (left out: as soon as possible)",
            _open_slots(settings),
        ),
    ]
    return answer(fmt, "service_definition", {"service_code": code, "attributes": attributes})


def _open_slots(settings: Settings) -> list[dict[str, str]]:
    now = runtime().clock.now()
    return [
        {"key": slot.key, "name": slots.describe(settings, slot.starts_at, slot.ends_at, "en", now)}
        for slot in slots.upcoming(settings, now)
    ]


def _attribute(
    code: str, datatype: str, order: int, description: str, values: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    shown = {
        "variable": True,
        "code": code,
        "datatype": datatype,
        "required": False,
        "datatype_description": None,
        "order": order,
        "description": description,
    }
    return shown | ({"values": values} if values else {})


def _arg(name: str, limit: int = 100) -> str:
    """A query argument ('' when not given); given several times, its values joined by commas."""
    value = ",".join(request.args.getlist(name))
    if len(value) > limit:
        raise Refused(400, {name: f"longer than {limit} characters"})
    return value


def _jurisdiction(settings: Settings, given: str | None = None) -> None:
    """One jurisdiction: any jurisdiction_id but ours names somewhere we do not serve."""
    given = _arg("jurisdiction_id") if given is None else given
    ours = settings.open311.jurisdiction_id
    if given and ours and given != ours:
        raise Refused(404, {"jurisdiction_id": f"this endpoint serves {ours} only"})


# -- filing a request ------------------------------------------------------------------------------


@bp.post(f"/requests.{FORMATS}")
def create(fmt: Format) -> Response:
    """File a citizen's request: stored, texted to them, dispatched like one made on the phone."""
    form = _form()
    token = _filer(form)
    settings = runtime().settings
    _jurisdiction(settings, form.get("jurisdiction_id", ""))
    service = form.get("service_code", "")
    if not service:
        raise Refused(400, {"service_code": "required; see services." + fmt})
    if service not in settings.service_codes:
        raise Refused(404, {"service_code": f"no service {service[:32]!r}; see services.{fmt}"})
    made = _filing(form, settings, service)
    filed = filing.file(runtime(), made, channel=Channel.OPEN311, client=token.client, key=inputs.idempotency_key())
    with Session(runtime().engine) as db:
        found = db.get(ServiceRequest, filed.id)
    assert found is not None  # committed, and a request is never deleted
    return answer(fmt, "service_requests", [_receipt(settings, found)])


def _form() -> dict[str, str]:
    """The POSTed fields GeoReport names, each once and within its length (else 400, by field)."""
    if request.mimetype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise Refused(400, {"": "send the fields form-encoded (application/x-www-form-urlencoded; charset=utf-8)"})
    form, problems = {}, {}
    for name in request.form:
        if _set_by_the_helpline(name):
            problems[name[:60]] = "set by the helpline, never by a client: leave it out"
    for name, limit in FIELDS.items():
        values = request.form.getlist(name)
        if len(values) > 1:
            problems[name] = "given more than once"
        elif values and len(values[0]) > limit:
            problems[name] = f"longer than {limit} characters"
        elif values and "\x00" in values[0]:
            problems[name] = "contains a NUL character"
        elif values:
            form[name] = values[0].strip()
    if problems:
        raise Refused(400, problems)
    return form


def _set_by_the_helpline(name: str) -> bool:
    """`status`, or an `attribute[status]` trying the same by another name."""
    inner = name.removeprefix("attribute[").removesuffix("]") if name.startswith("attribute[") else name
    return inner.strip().lower() in SET_BY_THE_HELPLINE


def _filer(form: dict[str, str]) -> ApiToken:
    """The token that files: `api_key` in the body, or a bearer token; it must be one that may file."""
    secret = form.get("api_key") or bearer()
    if not secret:
        raise Refused(401, {"api_key": "required: a token from the helpline (`sewamitra create-token`)"})
    try:
        token = authenticate(secret)
    except ApiError:
        raise Refused(401, {"api_key": "not a valid token (unknown, revoked or expired)"}) from None
    if token.role not in FILERS:
        g.client = token
        audit_refusal()  # as /api/v1 does: a client reaching past its role is worth knowing about
        raise Refused(403, {"api_key": "this token's role may not file requests"})
    return token


def _filing(form: dict[str, str], settings: Settings, service: str) -> filing.Filing:
    latitude, longitude, problems = _number(form, "lat", 90), _number(form, "long", 180), {}
    for name, value in (("lat", latitude), ("long", longitude)):
        if isinstance(value, str):
            problems[name] = value
    if form.get("address_id") and not (form.get("lat") or form.get("address_string") or _pincode(form)):
        problems["address_id"] = "not used here: give lat and long, an address_string with its PIN code, or pincode"
    where = filing.Location(_pincode(form) or None, _float(latitude), _float(longitude), form.get("address_string"))
    place = filing.locate(where, settings) if not problems else {}
    problems |= _renamed(place) if isinstance(place, dict) else {}
    problems |= filing.check_contact(form.get("phone", ""), settings, service)
    problems |= filing.reordering({field: form.get(field) for field in TEXTS})
    language = form.get("attribute[language]") or form.get("language") or "hi"
    if language not in {lang.code for lang in settings.languages}:
        problems["attribute[language]"] = "one of " + ", ".join(lang.code for lang in settings.languages)
    slot = filing.choose_slot(form.get("attribute[slot]"), settings, runtime().clock.now())
    if isinstance(slot, str):
        problems["attribute[slot]"] = slot
    if problems or isinstance(place, dict):
        raise Refused(400, problems)
    name = " ".join(part for part in (form.get("first_name"), form.get("last_name")) if part)
    return filing.Filing(
        service=service,
        place=place,
        phone=filing.indian_phone(form["phone"]) or "",
        language=language,
        name=filing.tidy(name, 120),
        address=filing.tidy(form.get("address_string"), 500),
        description=filing.tidy_lines(form.get("description"), 4000),
        preferred_time=filing.tidy(form.get("attribute[preferred_time]"), 80),
        slot=slot if isinstance(slot, slots.Slot) else None,
    )


def _pincode(form: dict[str, str]) -> str:
    return form.get("attribute[pincode]") or form.get("pincode") or ""


def _number(form: dict[str, str], name: str, bound: float) -> float | str | None:
    """The coordinate, or what is wrong with it."""
    raw = form.get(name)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        return "a decimal number (WGS84)"
    if not -bound <= value <= bound:  # NaN fails this too
        return f"from {-bound:g} to {bound:g}"
    return value


def _float(value: float | str | None) -> float | None:
    return value if isinstance(value, float) else None


def _renamed(problems: dict[str, str]) -> dict[str, str]:
    """The filing's field names as GeoReport calls them."""
    names = {"latitude": "lat", "longitude": "long", "address": "address_string", "pincode": "attribute[pincode]"}
    return {names.get(field, field): text for field, text in problems.items()}


def _receipt(settings: Settings, found: ServiceRequest) -> dict[str, Any]:
    service = settings.service(found.service_code)
    notice = (
        f"A verified {service.name_en.lower()} near {pincodes.display_name(found.district)} is being "
        f"offered the job; visit charge ₹{service.visit_charge}. The citizen gets the request number by "
        f"SMS and can follow it on {settings.helpline_number}."
    )
    return {"service_request_id": found.number, "service_notice": notice, "account_id": None}


# -- following requests ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """Who reads: anyone, or a token that may see some requests whole."""

    token: ApiToken | None

    def sees_whole(self, found: ServiceRequest) -> bool:
        if self.token is None:
            return False
        if self.token.role in STAFF:
            return True
        return self.token.role is ApiRole.PARTNER and found.filed_by == f"api:{self.token.client}"


def _reader() -> Reader:
    secret = bearer()
    if secret is None:
        return Reader(None)
    try:
        return Reader(authenticate(secret))
    except ApiError:
        raise Refused(401, {"Authorization": "not a valid token (unknown, revoked or expired)"}) from None


@bp.get(f"/requests.{FORMATS}")
def index(fmt: Format) -> Response:
    """Requests by ids, or by service, status and a window of at most 90 days (the last 90 by default)."""
    settings, reader = runtime().settings, _reader()
    _jurisdiction(settings)
    query = select(ServiceRequest)
    ids = _ids()
    if ids:
        query = query.where(col(ServiceRequest.number).in_(ids))
    else:
        query = _within(_by_service_and_status(query, settings))
    with Session(runtime().engine) as db:
        found = db.exec(query.order_by(col(ServiceRequest.created_at).desc()).limit(MOST)).all()
        agencies = _agencies(db, found)
    return answer(fmt, "service_requests", [_shown(settings, r, reader, agencies.get(r.id)) for r in found])


@bp.get(f"/requests/<number>.{FORMATS}")
def show(number: str, fmt: Format) -> Response:
    settings, reader = runtime().settings, _reader()
    _jurisdiction(settings)
    if not numbers.is_valid(number):
        raise Refused(404, {"service_request_id": "a request id has 7 digits"})
    with Session(runtime().engine) as db:
        found = db.exec(select(ServiceRequest).where(ServiceRequest.number == number)).first()
        if found is None:
            raise Refused(404, {"service_request_id": f"no request {number}"})
        agencies = _agencies(db, [found])
    return answer(fmt, "service_requests", [_shown(settings, found, reader, agencies.get(found.id))])


def _ids() -> list[str]:
    raw = _arg("service_request_id", MAX_IDS * 9)
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    if len(ids) > MAX_IDS:
        raise Refused(400, {"service_request_id": f"at most {MAX_IDS} ids at once"})
    wrong = [part[:12] for part in ids if not numbers.is_valid(part)]
    if wrong:
        raise Refused(400, {"service_request_id": f"not request ids: {', '.join(wrong[:5])} (7 digits each)"})
    return ids


def _by_service_and_status(query: Any, settings: Settings) -> Any:
    codes = [part.strip() for part in _arg("service_code").split(",") if part.strip()]
    unknown = [code[:32] for code in codes if code not in settings.service_codes]
    if unknown:
        raise Refused(400, {"service_code": f"unknown: {', '.join(unknown[:5])}; see services.xml"})
    if codes:
        query = query.where(col(ServiceRequest.service_code).in_(codes))
    wanted = {part.strip() for part in _arg("status").split(",") if part.strip()}
    if wanted - {"open", "closed"}:
        raise Refused(400, {"status": "open, closed, or both separated by a comma"})
    if len(wanted) == 1:
        statuses = OPEN if "open" in wanted else frozenset(RequestStatus) - OPEN
        query = query.where(col(ServiceRequest.status).in_(statuses))
    return query


def _within(query: Any) -> Any:
    """GeoReport's window: at most 90 days; the most recent 90 when no dates are given."""
    start, end = _moment("start_date"), _moment("end_date")
    if start and end and start > end:
        raise Refused(400, {"end_date": "before start_date"})
    if start and end and end - start > WINDOW:
        raise Refused(400, {"end_date": "start_date and end_date may be at most 90 days apart"})
    end = end or (start + WINDOW if start else runtime().clock.now())
    start = start or end - WINDOW
    return query.where(col(ServiceRequest.created_at) >= start, col(ServiceRequest.created_at) <= end)


def _moment(name: str) -> datetime | None:
    raw = _arg(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or not 2000 <= moment.year <= 2100:
        raise Refused(400, {name: "a W3C date-time with its zone, e.g. 2026-12-01T00:00:00Z"})
    return moment


def _shown(settings: Settings, found: ServiceRequest, reader: Reader, agency: str | None) -> dict[str, Any]:
    """A request as GeoReport shows it; the address, description and exact point only to who may see them.
    To anyone else the point is the PIN code's, not the home's."""
    whole = reader.sees_whole(found)
    locality = f"{pincodes.display_name(found.district)} {found.pincode}"
    point = (found.latitude, found.longitude) if whole else _pincode_point(found.pincode)
    return {
        "service_request_id": found.number,
        "status": "open" if found.status in OPEN else "closed",
        "status_notes": f"{found.status.value}: {NOTES[found.status]}",
        "service_name": settings.service_name(found.service_code),
        "service_code": found.service_code,
        "description": found.description if whole else None,
        "agency_responsible": agency or settings.helpline_name,
        "service_notice": None,
        "requested_datetime": found.created_at.isoformat(),
        "updated_datetime": found.updated_at.isoformat(),
        # the visit's booked slot begins (none booked: as soon as possible, no time to expect)
        "expected_datetime": found.slot_starts_at.isoformat() if found.slot_starts_at else None,
        "address": f"{found.address_note}, {locality}" if whole and found.address_note else locality,
        "address_id": None,
        "zipcode": found.pincode,
        "lat": point[0],
        "long": point[1],
        "media_url": None,
    }


def _pincode_point(pincode: str) -> tuple[float | None, float | None]:
    place = pincodes.lookup(pincode)
    return (place.latitude, place.longitude) if place else (None, None)


def _agencies(db: Session, found: Sequence[ServiceRequest]) -> dict[int | None, str]:
    """The agency whose worker has each job, by request id."""
    ids = [r.id for r in found if r.worker_id]
    if not ids:
        return {}
    query = (
        select(ServiceRequest.id, Provider.name)
        .join(Worker, col(Worker.id) == ServiceRequest.worker_id)
        .join(Provider, col(Provider.id) == Worker.provider_id)
        .where(col(ServiceRequest.id).in_(ids))
    )
    return dict(db.exec(query).all())
