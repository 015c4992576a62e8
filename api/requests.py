"""/api/v1/requests: list with filters, one with its offers and timeline, file one, cancel or move one.

A partner sees and cancels the requests it filed; an agency sees its workers' jobs; staff see all.
A request outside what a token may see is answered 404, as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select

from api import filing, inputs, present
from api.auth import EVERYONE, STAFF, actor, client, refuse, requires, runtime
from api.errors import ApiError, invalid
from api.schemas import Cancellation, RequestCreate, RequestPage, Reschedule
from core import numbers, slots
from dispatch import changes
from storage.db import session_scope
from storage.models import ApiRole, Caller, Channel, RequestStatus, ServiceRequest, Worker

bp = Blueprint("requests", __name__, url_prefix="/requests")
FILERS = (ApiRole.PARTNER, *STAFF)


FILTERS = ("status", "service", "district", "phone", "created_from", "created_to", "page", "per_page")


@bp.get("")
@requires(*EVERYONE)
@inputs.only(*FILTERS)
def index() -> ResponseReturnValue:
    query = _filtered(_visible(select(ServiceRequest)))
    with Session(runtime().engine) as db:
        newest = (col(ServiceRequest.created_at).desc(), col(ServiceRequest.id).desc())
        found, page, per_page, total = inputs.paged(db, query, *newest)
        items = present.requests(db, runtime().settings, found, client())
    return present.answer(RequestPage(items=items, page=page, per_page=per_page, total=total))


def _visible(query: Any) -> Any:
    """Only what this token may see."""
    token = client()
    if token.role is ApiRole.PARTNER:
        return query.where(ServiceRequest.filed_by == actor())
    if token.role is ApiRole.PROVIDER:
        return query.join(Worker, col(Worker.id) == ServiceRequest.worker_id).where(
            Worker.provider_id == token.provider_id
        )
    return query


def _filtered(query: Any) -> Any:
    settings = runtime().settings
    statuses = inputs.choices("status", [s.value for s in RequestStatus])
    services = inputs.choices("service", settings.service_codes)
    district, phone = inputs.district(settings.service_area.state), _phone()
    since, until = inputs.day_or_moment("created_from"), inputs.day_or_moment("created_to", end=True)
    if statuses:
        query = query.where(col(ServiceRequest.status).in_([RequestStatus(s) for s in statuses]))
    if services:
        query = query.where(col(ServiceRequest.service_code).in_(services))
    if district:
        query = query.where(ServiceRequest.district == district)
    if phone:
        query = query.where(col(ServiceRequest.caller_id).in_(select(Caller.id).where(Caller.phone == phone)))
    if since:
        query = query.where(col(ServiceRequest.created_at) >= since)
    if until:
        query = query.where(col(ServiceRequest.created_at) <= until)
    return query


def _phone() -> str | None:
    raw = inputs.one("phone")
    if raw is None:
        return None
    if client().role is ApiRole.PROVIDER:  # it sees numbers masked: trying each hidden digit would unmask one
        refuse("an agency's token cannot look up requests by the citizen's phone number")
    phone = filing.indian_phone(raw)
    if phone is None:
        raise invalid({"phone": "not a valid Indian phone number"})
    return phone


@bp.get("/<number>")
@requires(*EVERYONE)
@inputs.only()
def show(number: str) -> ResponseReturnValue:
    with Session(runtime().engine) as db:
        return present.answer(present.request_detail(db, runtime().settings, _one(db, number), client()))


def _one(db: Session, number: str) -> ServiceRequest:
    """The request with this number, if this token may see it; else 404."""
    if not numbers.is_valid(number):
        raise ApiError(404, "no such request: a request number has 7 digits")
    found = db.exec(_visible(select(ServiceRequest)).where(ServiceRequest.number == number)).first()
    if found is None:
        raise ApiError(404, f"no request {number}")
    return found


@bp.post("")
@requires(*FILERS)
@inputs.only()
def create() -> ResponseReturnValue:
    """File a request: stored, texted to the citizen and dispatched like one made on the phone."""
    key = inputs.idempotency_key()
    asked = inputs.json_body(RequestCreate)
    settings = runtime().settings
    where = filing.Location(asked.pincode, asked.latitude, asked.longitude, asked.address)
    place = filing.locate(where, settings)
    problems = filing.check_contact(asked.phone, settings, asked.service)
    problems |= filing.reordering(
        {
            "name": asked.name,
            "address": asked.address,
            "description": asked.description,
            "preferred_time": asked.preferred_time,
        }
    )
    spoken = [lang.code for lang in settings.languages]
    if asked.language not in spoken:  # the document lists every language the product has; this helpline may not
        problems["language"] = f"one of {', '.join(spoken)}"
    if isinstance(place, dict) or problems:
        raise invalid({**problems, **(place if isinstance(place, dict) else {})})
    slot = filing.choose_slot(asked.slot, settings, runtime().clock.now())
    if isinstance(slot, str):
        raise ApiError(422, f"slot: {slot}", {"slot": slot}, code="slot_not_open")
    phone = filing.indian_phone(asked.phone)
    assert phone is not None
    made = filing.Filing(
        service=asked.service,
        place=place,
        phone=phone,
        language=asked.language,
        name=filing.tidy(asked.name, 120),
        address=filing.tidy(asked.address, 500),
        description=filing.tidy_lines(asked.description, 4000),
        preferred_time=filing.tidy(asked.preferred_time, 80),
        slot=slot,
    )
    filed = filing.file(runtime(), made, channel=Channel.API, client=client().client, key=key)
    with Session(runtime().engine) as db:
        request = db.get(ServiceRequest, filed.id)
        assert request is not None  # committed, and a request is never deleted
        shown = present.request_detail(db, settings, request, client())
    return present.answer(shown, 201 if filed.created else 200)


@bp.post("/<number>/cancel")
@requires(*FILERS)
@inputs.only()
def cancel(number: str) -> ResponseReturnValue:
    """Cancel a request that is not finished; the workers offered it, or on their way, are told."""
    asked = inputs.json_body(Cancellation)
    rules = runtime().settings.changes
    reason, note = rules.reason(asked.reason_key), filing.tidy(asked.reason, 500)
    if asked.reason_key is not None and reason is None:
        raise invalid({"reason_key": f"one of {', '.join(r.key for r in rules.reasons)}"})
    if reason is None and note is None:
        raise invalid({"reason": "say why the request is cancelled"})
    why = changes.Why(reason, note or "")
    return _change(number, lambda db, found: changes.cancel(db, found.id or 0, why, actor(), _now(), via="api"))


@bp.post("/<number>/reschedule")
@requires(*FILERS)
@inputs.only()
def reschedule(number: str) -> ResponseReturnValue:
    """Move the visit to another open slot; a worker who has the job keeps it and is told the new time."""
    settings = runtime().settings
    slot = slots.find(settings, inputs.json_body(Reschedule).slot, _now())
    if slot is None:
        raise invalid({"slot": "not an open slot: see GET /api/v1/slots"})
    return _change(
        number, lambda db, found: changes.reschedule(db, settings, found.id or 0, slot, actor(), _now(), via="api")
    )


def _now() -> datetime:
    return runtime().clock.now()


def _change(number: str, change: Callable[[Session, ServiceRequest], changes.Changed]) -> ResponseReturnValue:
    """A cancel or a move; after the commit, the workers it concerns are told; the request as it is now."""
    with session_scope(runtime().engine) as db:
        changed = change(db, _one(db, number))
    if not changed.ok:
        raise ApiError(409, changed.error or "the request cannot be changed")
    changes.tell(runtime().redis, changed)
    with Session(runtime().engine) as db:
        return present.answer(present.request_detail(db, runtime().settings, _one(db, number), client()))
