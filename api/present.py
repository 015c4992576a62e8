"""Requests and workers as the API shows them, to each role only what it may see.

Staff see everything. A partner sees the requests it filed, with the citizen's number (it sent it),
of the workers only the name of the one on the job, and of the timeline the moves between states.
An agency sees its own workers' jobs and offers, citizens' numbers masked, and no notes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Response
from pydantic import BaseModel
from sqlmodel import Session, col, select

from api import schemas
from api.auth import STAFF, runtime
from core import phones, slots
from core.settings import Settings
from storage.models import (
    ApiRole,
    ApiToken,
    AuditEvent,
    Caller,
    Offer,
    Provider,
    ServiceRequest,
    Worker,
    WorkerSkill,
)


def answer(shown: BaseModel, status: int = 200) -> Response:
    """The model as the JSON body (times in ISO 8601, UTC)."""
    return Response(shown.model_dump_json(), status=status, mimetype="application/json")


def requests(
    db: Session, settings: Settings, found: Sequence[ServiceRequest], token: ApiToken
) -> list[schemas.Request]:
    """Several requests, their citizens and workers loaded in two queries, not two a request."""
    caller_ids = {r.caller_id for r in found if r.caller_id}
    worker_ids = {r.worker_id for r in found if r.worker_id}
    callers = {c.id: c.phone for c in db.exec(select(Caller).where(col(Caller.id).in_(caller_ids))).all()}
    workers = {w.id: w for w in db.exec(select(Worker).where(col(Worker.id).in_(worker_ids))).all()}
    return [request(settings, r, callers.get(r.caller_id), workers.get(r.worker_id), token) for r in found]


def request(
    settings: Settings, found: ServiceRequest, citizen_phone: str | None, worker: Worker | None, token: ApiToken
) -> schemas.Request:
    if token.role is ApiRole.PROVIDER and citizen_phone:
        citizen_phone = phones.mask(citizen_phone)
    return schemas.Request(
        number=found.number,
        status=found.status.value,
        service=found.service_code,
        service_name=settings.service_name(found.service_code),
        channel=found.channel.value,
        language=found.language,
        pincode=found.pincode,
        district=found.district,
        latitude=found.latitude,
        longitude=found.longitude,
        address=found.address_note,
        description=found.description,
        preferred_time=found.preferred_time,
        slot=booked_slot(settings, found),
        citizen=schemas.Citizen(phone=citizen_phone, name=found.contact_name),
        worker=_worker_on_job(worker, token),
        rating=found.rating,
        created_at=found.created_at,
        updated_at=found.updated_at,
        assigned_at=found.assigned_at,
        completed_at=found.completed_at,
    )


def slot(settings: Settings, shown: slots.Slot, now: datetime) -> schemas.SlotShown:
    """A slot as the API shows it: its key, its bounds in the call centre's zone, its words."""
    return _slot_shown(settings, shown.key, shown.starts_at, shown.ends_at, now)


def booked_slot(settings: Settings, found: ServiceRequest) -> schemas.SlotShown | None:
    """The request's slot, its words as of now ("tomorrow evening"), or None: as soon as possible."""
    if found.slot_starts_at is None or found.slot_ends_at is None:
        return None
    key = slots.key_of(settings, found.slot_starts_at, found.slot_ends_at)
    return _slot_shown(settings, key, found.slot_starts_at, found.slot_ends_at, runtime().clock.now())


def _slot_shown(settings: Settings, key: str, starts: datetime, ends: datetime, now: datetime) -> schemas.SlotShown:
    zone = ZoneInfo(settings.call_centre.timezone)
    return schemas.SlotShown(
        key=key,
        starts_at=starts.astimezone(zone),
        ends_at=ends.astimezone(zone),
        name_en=slots.describe(settings, starts, ends, "en", now),
        name_hi=slots.describe(settings, starts, ends, "hi", now),
    )


def _worker_on_job(worker: Worker | None, token: ApiToken) -> schemas.WorkerOnJob | None:
    if worker is None:
        return None
    if token.role is ApiRole.PARTNER:
        return schemas.WorkerOnJob(id=None, name=worker.name, phone=None)
    return schemas.WorkerOnJob(id=worker.id, name=worker.name, phone=worker.phone)


def request_detail(db: Session, settings: Settings, found: ServiceRequest, token: ApiToken) -> schemas.RequestDetail:
    shown = requests(db, settings, [found], token)[0]
    return schemas.RequestDetail(**dict(shown), offers=offers(db, found, token), timeline=timeline(db, found, token))


def offers(db: Session, found: ServiceRequest, token: ApiToken) -> list[schemas.OfferMade]:
    rows = db.exec(
        select(Offer, Worker)
        .join(Worker, col(Worker.id) == Offer.worker_id)
        .where(Offer.request_id == found.id)
        .order_by(col(Offer.id))
    ).all()
    if token.role is ApiRole.PROVIDER:
        rows = [(offer, worker) for offer, worker in rows if worker.provider_id == token.provider_id]
    named = token.role is not ApiRole.PARTNER
    return [
        schemas.OfferMade(
            id=offer.id or 0,
            worker_id=worker.id if named else None,
            worker_name=worker.name if named else None,
            status=offer.status.value,
            channel=offer.channel.value,
            round=offer.dispatch_round,
            created_at=offer.created_at,
            expires_at=offer.expires_at,
            answered_at=offer.answered_at,
        )
        for offer, worker in rows
    ]


def timeline(db: Session, found: ServiceRequest, token: ApiToken) -> list[schemas.Event]:
    """The request's audit trail, oldest first: for staff whole; for others its moves between states."""
    events = db.exec(
        select(AuditEvent)
        .where(AuditEvent.entity == "service_request", AuditEvent.entity_id == found.id)
        .order_by(col(AuditEvent.at), col(AuditEvent.id))
    ).all()
    staff = token.role in STAFF
    return [
        schemas.Event(
            at=e.at,
            action=e.action,
            from_status=e.from_status,
            to_status=e.to_status,
            actor=e.actor if staff else None,
            reason=e.reason if staff else None,
        )
        for e in events
        if staff or _a_move(e)
    ]


SEEN_BY_ALL = ("request.created", "request.rescheduled")  # not moves of state, but what every follower needs


def _a_move(event: AuditEvent) -> bool:
    """A change of the request's state (its creation and a new visit slot included), not an offer, a
    note or a refusal."""
    moved = event.from_status is not None and event.from_status != event.to_status
    return event.action.startswith("request.") and (moved or event.action in SEEN_BY_ALL)


def workers(db: Session, found: Sequence[Worker]) -> list[schemas.WorkerShown]:
    """Several workers, their skills and agencies loaded in two queries."""
    ids = [w.id for w in found]
    skills: dict[int, list[str]] = {}
    for worker_id, code in db.exec(
        select(WorkerSkill.worker_id, WorkerSkill.service_code).where(col(WorkerSkill.worker_id).in_(ids))
    ).all():
        skills.setdefault(worker_id, []).append(code)
    agency_ids = {w.provider_id for w in found if w.provider_id}
    agencies = {p.id: p for p in db.exec(select(Provider).where(col(Provider.id).in_(agency_ids))).all()}
    return [worker(w, skills.get(w.id or 0, []), agencies.get(w.provider_id)) for w in found]


def worker(shown: Worker, skills: Iterable[str], provider: Provider | None) -> schemas.WorkerShown:
    return schemas.WorkerShown(
        id=shown.id or 0,
        name=shown.name,
        phone=shown.phone,
        skills=sorted(skills),
        pincode=shown.pincode,
        district=shown.district,
        latitude=shown.latitude,
        longitude=shown.longitude,
        service_radius_km=shown.service_radius_km,
        language=shown.language,
        voice_preferred=shown.voice_preferred,
        police_verification=shown.police_verification.value,
        police_verified_on=shown.police_verified_on,
        available=shown.available,
        active=shown.active,
        rating=shown.rating,
        rating_count=shown.rating_count,
        provider=schemas.Agency(id=provider.id or 0, name=provider.name) if provider else None,
        created_at=shown.created_at,
        updated_at=shown.updated_at,
    )
