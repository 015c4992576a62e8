"""Provider agencies, for supervisors: each agency's pool of workers at a glance, and its users."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import Blueprint, abort, render_template
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select

from console.auth import MANAGERS, requires, runtime
from dispatch import quality
from storage.models import Provider, User, VerificationStatus, Worker

bp = Blueprint("providers", __name__, url_prefix="/providers")


@dataclass
class PoolCounts:
    """An agency's pool at a glance: how many workers, and how far each is in being vetted."""

    workers: int = 0
    verified: int = 0
    pending: int = 0
    rejected: int = 0
    active: int = 0

    def add(self, status: VerificationStatus, active: bool, count: int) -> None:
        self.workers += count
        setattr(self, status.value, getattr(self, status.value) + count)
        self.active += count if active else 0


@bp.get("")
@requires(*MANAGERS)
def index() -> ResponseReturnValue:
    with Session(runtime().engine) as db:
        agencies = list(db.exec(select(Provider).order_by(col(Provider.name))).all())
        counts = _pool_counts(db)
    return render_template(
        "console/providers/index.html", providers=agencies, counts=counts, unaffiliated=counts.get(None, PoolCounts())
    )


@bp.get("/<id:provider_id>")
@requires(*MANAGERS)
def show(provider_id: int) -> ResponseReturnValue:
    with Session(runtime().engine) as db:
        agency = db.get(Provider, provider_id)
        if agency is None:
            abort(404)
        counts = _pool_counts(db, provider_id).get(provider_id, PoolCounts())
        users = list(db.exec(select(User).where(col(User.provider_id) == provider_id).order_by(col(User.username))))
        by_district = _districts_of(db, provider_id)
        reworks = quality.agency_reworks(db, provider_id)
    return render_template(
        "console/providers/show.html",
        provider=agency,
        counts=counts,
        users=users,
        by_district=by_district,
        reworks=reworks,
    )


def _pool_counts(db: Session, provider_id: int | None = None) -> dict[int | None, PoolCounts]:
    """Per agency (None: the state's own register), its workers counted by verification and activity."""
    columns = (col(Worker.provider_id), col(Worker.police_verification), col(Worker.active))
    query = select(*columns, sa.func.count(col(Worker.id))).group_by(*columns)
    if provider_id is not None:
        query = query.where(col(Worker.provider_id) == provider_id)
    counts: dict[int | None, PoolCounts] = {}
    for agency, status, active, count in db.exec(query).all():
        counts.setdefault(agency, PoolCounts()).add(VerificationStatus(status), bool(active), int(count))
    return counts


def _districts_of(db: Session, provider_id: int) -> list[tuple[str, int]]:
    query = (
        select(Worker.district, sa.func.count(col(Worker.id)))
        .where(col(Worker.provider_id) == provider_id)
        .group_by(col(Worker.district))
        .order_by(col(Worker.district))
    )
    return [(district, count) for district, count in db.exec(query).all()]
