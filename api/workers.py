"""/api/v1/workers: the pool, one worker, onboarding one, and their availability.

An agency's token sees and changes its own workers only; a worker outside that is a 404. A new
worker goes through the CSV importer's rules and waits for police verification, whoever adds them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select

from api import inputs, present
from api.auth import MANAGERS, STAFF, actor, client, requires, runtime
from api.errors import ApiError, invalid
from api.schemas import Availability, WorkerCreate, WorkerPage
from core.ids import MAX_ID
from core.settings import Settings
from directory.importer import WorkerRow, by_column, parse_row
from directory.onboarding import onboard
from dispatch import enqueue
from dispatch.availability import Via, set_availability
from storage.db import session_scope
from storage.models import (
    ApiRole,
    Provider,
    VerificationStatus,
    Worker,
    WorkerSkill,
)

bp = Blueprint("workers", __name__, url_prefix="/workers")
READERS = (*STAFF, ApiRole.PROVIDER)
ONBOARDERS = (*MANAGERS, ApiRole.PROVIDER)


def _visible(query: Any) -> Any:
    token = client()
    if token.role is ApiRole.PROVIDER:
        return query.where(Worker.provider_id == token.provider_id)
    return query


FILTERS = ("skill", "police_verification", "available", "active", "district", "provider_id", "page", "per_page")


@bp.get("")
@requires(*READERS)
@inputs.only(*FILTERS)
def index() -> ResponseReturnValue:
    query = _filtered(_visible(select(Worker)))
    with Session(runtime().engine) as db:
        found, page, per_page, total = inputs.paged(db, query, col(Worker.id))
        items = present.workers(db, found)
    return present.answer(WorkerPage(items=items, page=page, per_page=per_page, total=total))


def _filtered(query: Any) -> Any:
    skills = inputs.choices("skill", runtime().settings.service_codes)
    verification = inputs.choices("police_verification", [v.value for v in VerificationStatus])
    available, active = inputs.flag("available"), inputs.flag("active")
    district = inputs.district(runtime().settings.service_area.state)
    agency = inputs.whole_number("provider_id", 0, 1, MAX_ID)
    if skills:
        has_skill = sa.exists().where(
            col(WorkerSkill.worker_id) == col(Worker.id), col(WorkerSkill.service_code).in_(skills)
        )
        query = query.where(has_skill)
    if verification:
        query = query.where(col(Worker.police_verification).in_([VerificationStatus(v) for v in verification]))
    if available is not None:
        query = query.where(Worker.available == available)
    if active is not None:
        query = query.where(Worker.active == active)
    if district:
        query = query.where(Worker.district == district)
    if agency:
        query = query.where(Worker.provider_id == agency)
    return query


@bp.get("/<id:worker_id>")
@requires(*READERS)
@inputs.only()
def show(worker_id: int) -> ResponseReturnValue:
    with Session(runtime().engine) as db:
        return present.answer(present.workers(db, [_one(db, worker_id)])[0])


def _one(db: Session, worker_id: int, *, for_change: bool = False) -> Worker:
    query = _visible(select(Worker)).where(Worker.id == worker_id)
    found = db.exec(query.with_for_update() if for_change else query).first()
    if found is None:
        raise ApiError(404, f"no worker {worker_id}")
    return found


@bp.post("")
@requires(*ONBOARDERS)
@inputs.only()
def create() -> ResponseReturnValue:
    """Onboard a worker: the importer's checks, then pending police verification (an API never vouches)."""
    asked = inputs.json_body(WorkerCreate)
    settings = runtime().settings
    try:
        with session_scope(runtime().engine) as db:
            agency, problems = _agency(db, asked.provider_id)
            row = _checked_row(asked, settings, problems)
            _refuse_registered(db, row.phone)
            worker_id = onboard(db, row, agency.id if agency else None, actor=actor())
    except sa.exc.IntegrityError:  # the same phone, added by someone else a moment ago
        raise ApiError(409, "a worker with this phone was just added", {"phone": "already registered"}) from None
    enqueue.reindex_worker(runtime().redis, worker_id)
    with Session(runtime().engine) as db:
        return present.answer(present.workers(db, [_one(db, worker_id)])[0]), 201


def _agency(db: Session, provider_id: int | None) -> tuple[Provider | None, dict[str, str]]:
    """An agency's token adds to its own agency; staff name one (or none: the state's own register)."""
    token = client()
    if token.role is ApiRole.PROVIDER:
        if provider_id not in (None, token.provider_id):
            return None, {"provider_id": "an agency's token adds workers to its own agency only"}
        provider_id = token.provider_id
    if provider_id is None:
        return None, {}
    agency = db.get(Provider, provider_id)
    if agency is None or not agency.active:
        return None, {"provider_id": "no active provider agency has this id"}
    return agency, {}


def _checked_row(asked: WorkerCreate, settings: Settings, problems: dict[str, str]) -> WorkerRow:
    """The worker as a row of the import file, through the same rules; with `problems` found before, a 400."""
    cells = {
        "name": asked.name,
        "phone": asked.phone,
        "skills": ";".join(asked.skills),
        "pincode": asked.pincode,
        "police_verified": "no",
        "available": "yes",
        "language": asked.language,
        "service_radius_km": "" if asked.service_radius_km is None else str(asked.service_radius_km),
        "voice_preferred": "yes" if asked.voice_preferred else "no",
        "certification": asked.certification or "",
        "certification_grade": asked.certification_grade or "",
        "origin": asked.origin,
    }
    parsed = parse_row(1, cells, settings, runtime().clock.now().date())
    if isinstance(parsed, list):
        problems = {**problems, **{column or "body": "; ".join(found) for column, found in by_column(parsed).items()}}
    if problems:
        raise invalid(problems)
    assert isinstance(parsed, WorkerRow)
    return parsed


def _refuse_registered(db: Session, phone: str) -> None:
    if db.exec(select(Worker.id).where(Worker.phone == phone)).first() is not None:
        raise ApiError(409, "a worker with this phone is already registered", {"phone": "already registered"})


@bp.put("/<id:worker_id>/availability")
@requires(*READERS)
@inputs.only()
def availability(worker_id: int) -> ResponseReturnValue:
    """Mark a worker available for offers, or busy; the dispatch index catches up."""
    wanted = inputs.json_body(Availability).available
    with session_scope(runtime().engine) as db:
        _one(db, worker_id, for_change=True)  # an agency's token reaches its own workers only
        set_availability(db, worker_id, wanted, actor=actor(), channel=Via.API, now=runtime().clock.now())
    enqueue.reindex_worker(runtime().redis, worker_id)
    with Session(runtime().engine) as db:
        return present.answer(present.workers(db, [_one(db, worker_id)])[0])
