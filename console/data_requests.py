"""A citizen's requests about their own data (DPDP Act 2023 s.11-12), from the caller's screen: an
agent files an access request (what is held, shown at once) or an erasure request, which a
supervisor approves; the erasure runs across every table and Redis (`dispatch.retention`)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, func, select

from console.auth import MANAGERS, STAFF, actor, requires, runtime
from console.labels import N_
from dispatch import retention
from storage.audit import AuditAction, record
from storage.db import session_scope
from storage.models import (
    CallbackRequest,
    Caller,
    CallLog,
    PrivacyRequest,
    PrivacyRequestKind,
    PrivacyRequestStatus,
    ServiceRequest,
    SmsLog,
)

bp = Blueprint("data_requests", __name__, url_prefix="/data-requests")
ENTITY = "privacy_request"
FILED = N_("Erasure request filed: a supervisor approves it.")
ERASED = N_("The caller's data is erased.")
REJECTED = N_("The erasure request is rejected.")
STILL_OPEN = N_("The caller has a request still open: close or cancel it before erasing.")
DECIDED = N_("This request was decided before.")
SHOWN = 50


@dataclass(frozen=True)
class Held:
    """What the helpline holds about one caller, as the access request shows it."""

    caller: Caller
    requests: list[ServiceRequest]
    calls: int
    sms: int
    callbacks: int


@bp.post("/callers/<id:caller_id>")
@requires(*STAFF)
def file(caller_id: int) -> ResponseReturnValue:
    """An agent files the caller's request: access is answered at once, erasure waits for approval."""
    try:
        kind = PrivacyRequestKind(request.form.get("kind", ""))
    except ValueError:
        abort(400)
    with session_scope(runtime().engine) as db:
        if db.get(Caller, caller_id) is None:
            abort(404)
        done = kind is PrivacyRequestKind.ACCESS
        filed = PrivacyRequest(
            kind=kind,
            caller_id=caller_id,
            filed_by=g.user.id,
            filed_at=runtime().clock.now(),
            status=PrivacyRequestStatus.DONE if done else PrivacyRequestStatus.PENDING,
            decided_by=g.user.id if done else None,
            decided_at=runtime().clock.now() if done else None,
        )
        db.add(filed)
        db.flush()
        action = AuditAction.PRIVACY_ACCESS_GIVEN if done else AuditAction.PRIVACY_ERASURE_FILED
        record(db, action, actor=actor(), entity=ENTITY, entity_id=filed.id, detail={"caller_id": caller_id})
        filed_id = filed.id
    if not done:
        flash(FILED)
    return redirect(url_for(".show", request_id=filed_id))


@bp.get("/")
@requires(*MANAGERS)
def index() -> ResponseReturnValue:
    """Erasures waiting for approval, then the latest requests."""
    with Session(runtime().engine) as db:
        pending = db.exec(
            select(PrivacyRequest)
            .where(PrivacyRequest.status == PrivacyRequestStatus.PENDING)
            .order_by(col(PrivacyRequest.filed_at))
        ).all()
        latest = db.exec(
            select(PrivacyRequest)
            .where(PrivacyRequest.status != PrivacyRequestStatus.PENDING)
            .order_by(col(PrivacyRequest.id).desc())
            .limit(SHOWN)
        ).all()
    return render_template("console/data_requests.html", pending=pending, latest=latest)


@bp.get("/<id:request_id>")
@requires(*STAFF)
def show(request_id: int) -> ResponseReturnValue:
    with Session(runtime().engine) as db:
        filed = db.get(PrivacyRequest, request_id)
        if filed is None:
            abort(404)
        held = _held(db, filed.caller_id)
    return render_template("console/data_request.html", filed=filed, held=held)


def _held(db: Session, caller_id: int) -> Held:
    caller = db.get(Caller, caller_id)
    assert caller is not None  # a privacy request's caller is kept (under a hash, once erased)
    requests = db.exec(
        select(ServiceRequest).where(ServiceRequest.caller_id == caller_id).order_by(col(ServiceRequest.id).desc())
    ).all()
    calls = db.exec(select(func.count()).select_from(CallLog).where(CallLog.from_number == caller.phone)).one()
    sms = db.exec(
        select(func.count())
        .select_from(SmsLog)
        .where((col(SmsLog.to_number) == caller.phone) | (col(SmsLog.from_number) == caller.phone))
    ).one()
    callbacks = db.exec(
        select(func.count()).select_from(CallbackRequest).where(CallbackRequest.caller_id == caller_id)
    ).one()
    return Held(caller, list(requests), calls, sms, callbacks)


@bp.post("/<id:request_id>/approve")
@requires(*MANAGERS)
def approve(request_id: int) -> ResponseReturnValue:
    """A supervisor approves an erasure: the caller is erased everywhere; the audit event holds counts."""
    filed = _pending_erasure(request_id)
    if filed is None:
        return redirect(url_for(".show", request_id=request_id))
    try:
        counts = retention.erase_caller(
            runtime().engine, runtime().redis, runtime().settings, filed.caller_id, runtime().clock.now()
        )
    except retention.StillServing:
        flash(STILL_OPEN)
        return redirect(url_for(".show", request_id=request_id))
    _decide(request_id, PrivacyRequestStatus.DONE, AuditAction.PRIVACY_ERASED, counts.as_detail())
    flash(ERASED)
    return redirect(url_for(".show", request_id=request_id))


@bp.post("/<id:request_id>/reject")
@requires(*MANAGERS)
def reject(request_id: int) -> ResponseReturnValue:
    if _pending_erasure(request_id) is not None:
        _decide(request_id, PrivacyRequestStatus.REJECTED, AuditAction.PRIVACY_ERASURE_REJECTED, {})
        flash(REJECTED)
    return redirect(url_for(".show", request_id=request_id))


def _pending_erasure(request_id: int) -> PrivacyRequest | None:
    with Session(runtime().engine) as db:
        filed = db.get(PrivacyRequest, request_id)
    if filed is None or filed.kind is not PrivacyRequestKind.ERASURE:
        abort(404)
    if filed.status is not PrivacyRequestStatus.PENDING:
        flash(DECIDED)
        return None
    return filed


def _decide(request_id: int, status: PrivacyRequestStatus, action: AuditAction, counts: dict[str, int]) -> None:
    """The decision, once (compare-and-set on pending), with its audit event: counts, never whose data."""
    with session_scope(runtime().engine) as db:
        filed = db.get(PrivacyRequest, request_id, with_for_update=True)
        if filed is None or filed.status is not PrivacyRequestStatus.PENDING:
            return
        filed.status, filed.decided_by, filed.decided_at = status, g.user.id, runtime().clock.now()
        db.add(filed)
        record(db, action, actor=actor(), entity=ENTITY, entity_id=request_id, to_status=status.value, detail=counts)
