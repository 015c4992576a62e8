"""Which requests a console user may see and act on: an agency's staff the jobs of its own workers
and those handed to it; a district officer the requests of their districts; everyone else every
request. One place, for the list, the request page and every action on it; a request outside
someone's scope is 403 and an audit event, as `auth.requires` does for a page above their role."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, g
from sqlmodel import Session, col, select

from console import auth
from core import numbers
from storage.audit import AuditAction
from storage.models import Role, ServiceRequest, UserDistrict, Worker


def visible() -> sa.ColumnElement[bool]:
    """The requests the signed-in user may see, as SQL."""
    if g.user.role is Role.PROVIDER:
        return agencys(g.user.provider_id)
    if g.user.role is Role.DISTRICT_OFFICER:
        districts = select(UserDistrict.district).where(UserDistrict.user_id == g.user.id)
        return col(ServiceRequest.district).in_(districts)
    return sa.true()


def my_districts(db: Session) -> tuple[str, ...] | None:
    """The districts a district officer answers for; None for everyone else (every district)."""
    if g.user.role is not Role.DISTRICT_OFFICER:
        return None
    mine = select(UserDistrict.district).where(UserDistrict.user_id == g.user.id).order_by(UserDistrict.district)
    return tuple(db.exec(mine).all())


def agencys(provider_id: int | None) -> sa.ColumnElement[bool]:
    """An agency's requests: the jobs of its own workers, and those an agent handed to it that no
    other worker has taken (the helpline may still give a handed request to someone else)."""
    own_worker = sa.exists().where(
        col(Worker.id) == col(ServiceRequest.worker_id), col(Worker.provider_id) == provider_id
    )
    handed = sa.and_(col(ServiceRequest.handed_to_provider_id) == provider_id, col(ServiceRequest.worker_id).is_(None))
    return sa.or_(handed, own_worker)


def handed_to_me(found: ServiceRequest) -> bool:
    """The request was handed to the signed-in user's agency, and no worker has it yet."""
    return (
        g.user.role is Role.PROVIDER
        and found.handed_to_provider_id is not None
        and found.handed_to_provider_id == g.user.provider_id
        and found.worker_id is None
    )


def request_in_scope(db: Session, number: str) -> ServiceRequest:
    """The request, if this user may see it: 404 when there is none, 403 (audited) when it is not theirs."""
    if not numbers.is_valid(number):
        abort(404)
    found = db.exec(select(ServiceRequest).where(ServiceRequest.number == number)).first()
    if found is None:
        abort(404)
    if not _mine(db, found):
        auth.audit_refusal(AuditAction.ACCESS_REFUSED)
        abort(403)
    return found


def _mine(db: Session, found: ServiceRequest) -> bool:
    if g.user.role is Role.PROVIDER and not handed_to_me(found):
        worker = db.get(Worker, found.worker_id) if found.worker_id else None
        return worker is not None and worker.provider_id == g.user.provider_id
    if g.user.role is Role.DISTRICT_OFFICER:
        theirs = select(UserDistrict.district).where(
            UserDistrict.user_id == g.user.id, UserDistrict.district == found.district
        )
        return db.exec(theirs).first() is not None
    return True
