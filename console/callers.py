"""The caller's screen: who is on the line, what they asked for before, and a request form
filled in from what they keyed on the phone."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

import redis
from flask import Blueprint, abort, flash, g, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select
from werkzeug.datastructures import MultiDict

from console import auth, present
from console.auth import STAFF, requires, runtime
from console.forms import NOTE_MAX, plain
from console.labels import N_
from console.labels import translate as t
from console.present import district_name
from core import phones, pincodes, slots
from dispatch.intake import Intake, caller_id_for, file_request, queue_follow_ups
from storage import callqueue
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import CallbackRequest, Caller, CallLog, Channel, ServiceRequest

log = logging.getLogger(__name__)
bp = Blueprint("callers", __name__, url_prefix="/callers")
TEXT_MAX = {"address_note": NOTE_MAX, "preferred_time": 80}
PAST_SHOWN = 20


@dataclass(frozen=True)
class Draft:
    """The request form as the agent sees it: prefilled, or as typed with what was wrong."""

    phone: str = ""
    service: str = ""
    pincode: str = ""
    district: str = ""
    address_note: str = ""
    preferred_time: str = ""
    slot: str = ""  # a key of core.slots; "" as soon as possible
    language: str = "hi"
    call_sid: str = ""
    form_id: str = ""


@bp.get("/call/<call>")
@requires(*STAFF)
def for_call(call: str) -> ResponseReturnValue:
    """The screen of the caller on this call: known by number, or a blank one when withheld."""
    if not callqueue.CALL_SID.match(call):
        abort(404)
    known = _call(call)
    phone = known.phone if known else _logged_phone(call)
    if phone is None:
        return redirect(url_for(".blank", call=call))
    with session_scope(runtime().engine) as db:
        caller_id = caller_id_for(db, phone, known.language if known else "hi", runtime().settings.privacy_key)
    return redirect(url_for(".show", caller_id=caller_id, call=call))


def _logged_phone(call_sid: str) -> str | None:
    """The caller's number from the call's log, once they have left the queue (or hung up)."""
    with Session(runtime().engine) as db:
        logged = db.exec(select(CallLog.from_number).where(CallLog.call_sid == call_sid[:40])).first()
    return phones.to_e164(logged) if logged and not phones.is_withheld(logged) else None


@bp.get("/new")
@requires(*STAFF)
def blank() -> ResponseReturnValue:
    """A caller we cannot look up (number withheld), or a request taken for someone else."""
    return _screen(None, _prefill(None, request.args.get("call", "")))


@bp.get("/<id:caller_id>")
@requires(*STAFF)
def show(caller_id: int) -> ResponseReturnValue:
    with Session(runtime().engine) as db:
        caller = db.get(Caller, caller_id)
    if caller is None:
        abort(404)
    return _screen(caller, _prefill(caller, request.args.get("call", "")))


def _screen(
    caller: Caller | None, draft: Draft, errors: dict[str, str] | None = None, status: int = 200
) -> ResponseReturnValue:
    past: list[ServiceRequest] = []
    callbacks: list[CallbackRequest] = []
    if caller is not None:
        with Session(runtime().engine) as db:
            past = list(
                db.exec(
                    select(ServiceRequest)
                    .where(ServiceRequest.caller_id == caller.id)
                    .order_by(col(ServiceRequest.created_at).desc())
                    .limit(PAST_SHOWN)
                ).all()
            )
            callbacks = list(
                db.exec(
                    select(CallbackRequest)
                    .where(CallbackRequest.caller_id == caller.id)
                    .order_by(col(CallbackRequest.created_at).desc())
                    .limit(5)
                ).all()
            )
    return render_template(
        "console/caller.html",
        caller=caller,
        draft=draft,
        errors=errors or {},
        past=past,
        callbacks=callbacks,
        services=runtime().settings.services,
        open_slots=_open_slots(),
    ), status


def _open_slots() -> list[tuple[str, str]]:
    """The slots open now, for the form's select: their keys and their words in the console's language."""
    settings, now = runtime().settings, runtime().clock.now()
    language = "hi" if g.get("language") == "hi" else "en"
    return [
        (s.key, slots.describe(settings, s.starts_at, s.ends_at, language, now)) for s in slots.upcoming(settings, now)
    ]


def _call(call_sid: str) -> callqueue.Call | None:
    """What the queue knows of a call: the caller's number and language, and what they keyed."""
    if not callqueue.CALL_SID.match(call_sid):
        return None
    try:
        return callqueue.call(runtime().redis, call_sid)
    except redis.RedisError:
        log.warning("could not read call %s from Redis", call_sid)
        return None


def _prefill(caller: Caller | None, call_sid: str) -> Draft:
    """The service and PIN code the caller keyed before asking for an agent, if they did."""
    known = _call(call_sid)
    place = pincodes.lookup(known.pincode) if known and known.pincode else None
    language = (known.language if known else None) or (caller.language if caller else None) or "hi"
    district = district_name(place.district) if place else ""
    return Draft(
        phone=caller.phone if caller else "",
        service=known.service if known else "",
        pincode=place.pincode if place else "",
        district=district,
        language=language,
        call_sid=call_sid if known else "",
        form_id=_form_id(),
    )


def _form_id() -> str:
    """One id a rendered form: sent twice, it still makes one request."""
    return secrets.token_urlsafe(12)


@bp.post("/requests")
@requires(*STAFF)
def create() -> ResponseReturnValue:
    """The agent files a request for the caller: stored, confirmed by SMS, and dispatched."""
    draft, errors, place, phone = _checked(request.form)
    caller = _known_caller(phone)
    if errors or place is None:
        return _screen(caller, draft, errors, status=400)
    intake = Intake(
        service=draft.service,
        place=place,
        phone=phone,
        language=draft.language,
        channel=Channel.AGENT,
        actor=auth.actor(),
        filed_at=runtime().clock.now(),
        idempotency_key=f"console:{draft.form_id}",
        address_note=draft.address_note or None,
        preferred_time=draft.preferred_time or None,
        slot=slots.find(runtime().settings, draft.slot, runtime().clock.now()) if draft.slot else None,
        detail=(("call_sid", draft.call_sid),) if draft.call_sid else (),
    )
    filed = file_request(runtime().engine, runtime().settings, intake)
    if filed.created:
        queue_follow_ups(runtime().redis, filed)
        flash("Request created.")
    return redirect(url_for("console.requests.show", number=filed.number))


def _checked(form: MultiDict[str, str]) -> tuple[Draft, dict[str, str], pincodes.Place | None, str | None]:
    """The form as typed, what is wrong with it, the place its PIN names and the caller's phone."""
    text = {name: plain(form.get(name, ""), limit) for name, limit in TEXT_MAX.items()}
    raw_phone, service = plain(form.get("phone", ""), 20), form.get("service", "")[:32]
    pincode, language = plain(form.get("pincode", ""), 6), form.get("language", "hi")
    errors: dict[str, str] = {}
    phone = phones.to_e164(raw_phone) if raw_phone else None
    if raw_phone and phone is None:
        errors["phone"] = N_("Not a valid phone number.")
    if service not in runtime().settings.service_codes:
        errors["service"] = N_("Choose a service.")
    place = pincodes.lookup(pincode)
    if place is None:
        errors["pincode"] = N_("Not a PIN code India Post knows.")
    elif not place.in_state(runtime().settings.service_area.state):
        errors["pincode"] = t(
            "This PIN code is in %(district)s, outside the service area.", district=district_name(place.district)
        )
    if language not in {lang.code for lang in runtime().settings.languages}:
        language = "hi"
    slot = form.get("slot", "")[:40]
    if slot and slots.find(runtime().settings, slot, runtime().clock.now()) is None:
        errors["slot"] = N_("That visit slot is no longer open; choose another.")
    draft = Draft(
        phone=raw_phone,
        service=service,
        pincode=pincode,
        district=district_name(place.district) if place else "",
        language=language,
        call_sid=form.get("call_sid", "")[:40],
        form_id=form.get("form_id", "")[:40] or _form_id(),
        address_note=text["address_note"],
        preferred_time=text["preferred_time"],
        slot=slot,
    )
    return draft, errors, place if not errors else None, phone


def _known_caller(phone: str | None) -> Caller | None:
    if phone is None:
        return None
    with Session(runtime().engine) as db:
        return db.exec(select(Caller).where(Caller.phone == phone)).first()


@bp.get("/pincode/<pincode>")
@requires(*STAFF)
def pincode(pincode: str) -> ResponseReturnValue:
    """The district of a PIN code, for the form to show as the agent types."""
    place = pincodes.lookup(pincode[:6])
    if place is None:
        return jsonify(found=False), 404
    inside = place.in_state(runtime().settings.service_area.state)
    return jsonify(found=True, district=district_name(place.district), in_service_area=inside)


@bp.post("/<id:caller_id>/callback")
@requires(*STAFF)
def schedule_callback(caller_id: int) -> ResponseReturnValue:
    """An agent promises to ring the caller back at a time."""
    due = present.local_moment(request.form.get("due", ""))
    note = plain(request.form.get("note", ""), NOTE_MAX) or None
    with session_scope(runtime().engine) as db:
        caller = db.get(Caller, caller_id)
        if caller is None:
            abort(404)
        if due is None:
            flash("Give the callback a date and time, from now to 30 days ahead.")
            return redirect(url_for(".show", caller_id=caller_id))
        promise_callback(db, caller, due, note, caller.language or "hi")
    flash("Callback scheduled.")
    return redirect(url_for(".show", caller_id=caller_id))


def promise_callback(
    db: Session, caller: Caller, due: datetime, note: str | None, language: str, request_id: int | None = None
) -> None:
    """An agent's promise to ring the citizen back at `due` (about a request, perhaps), on the live queue."""
    callback = CallbackRequest(
        phone=caller.phone,
        caller_id=caller.id,
        language=language,
        reason="agent_scheduled",
        note=note,
        due_at=due,
        request_id=request_id,
    )
    db.add(callback)
    db.flush()
    auth.audit(
        db,
        AuditAction.CALLBACK_SCHEDULED,
        "callback_request",
        callback.id,
        reason=note,
        due_at=due.isoformat(),
        request_id=request_id,
    )
