"""A citizen's requests about their own data (DPDP Act 2023 s.11-12), from the caller's screen: an
agent files an access request (what is held, shown at once) or an erasure request, as the caller can
themself by the phone menu (both through `dispatch.privacy_requests`); a supervisor approves an
erasure (it runs across every table and Redis: `dispatch.retention`) or refuses it."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, func, select

from console.auth import MANAGERS, STAFF, actor, requires, runtime
from console.labels import N_
from dispatch import privacy_requests, retention
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
from telephony import telephony

bp = Blueprint("data_requests", __name__, url_prefix="/data-requests")
FILED = N_("Erasure request filed: a supervisor approves it.")
ALREADY_FILED = N_("An erasure request of this caller is already waiting for a supervisor.")
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
        filed = privacy_requests.file(db, caller_id, kind, filed_by=g.user.id, actor=actor(), now=runtime().clock.now())
    if kind is PrivacyRequestKind.ERASURE:
        flash(FILED if filed.new else ALREADY_FILED)
    return redirect(url_for(".show", request_id=filed.id))


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
    """A supervisor approves an erasure: the caller is erased everywhere, then told by SMS; the audit
    event holds counts."""
    _erasure(request_id)
    helpline = runtime()
    try:
        privacy_requests.approve_erasure(
            helpline.engine,
            helpline.redis,
            helpline.settings,
            telephony(helpline.settings),
            request_id,
            decided_by=g.user.id,
            actor=actor(),
            now=helpline.clock.now(),
        )
        flash(ERASED)
    except retention.StillServing:
        flash(STILL_OPEN)
    except privacy_requests.NotPending:
        flash(DECIDED)
    return redirect(url_for(".show", request_id=request_id))


@bp.post("/<id:request_id>/reject")
@requires(*MANAGERS)
def reject(request_id: int) -> ResponseReturnValue:
    """A supervisor refuses an erasure: the caller is told by SMS, and can call to hear why."""
    _erasure(request_id)
    helpline, who = runtime(), {"decided_by": g.user.id, "actor": actor()}
    try:
        privacy_requests.refuse_erasure(
            helpline.engine, helpline.redis, helpline.settings, request_id, now=helpline.clock.now(), **who
        )
        flash(REJECTED)
    except privacy_requests.NotPending:
        flash(DECIDED)
    return redirect(url_for(".show", request_id=request_id))


def _erasure(request_id: int) -> None:
    """404 unless there is such an erasure request."""
    with Session(runtime().engine) as db:
        filed = db.get(PrivacyRequest, request_id)
    if filed is None or filed.kind is not PrivacyRequestKind.ERASURE:
        abort(404)
