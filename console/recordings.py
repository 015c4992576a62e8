"""The spoken address of a request, played in the console: the helpline fetches the recording from
the platform that keeps it, with the platform's credentials, and streams it to the browser, which
never gets the platform's URL or credentials. Every playing is audited, and so is every refusal.

Who may hear it: the helpline's staff (agents, supervisors, admins); a provider agency's user only
for a job assigned to one of its own workers (whose worker needs the address). Anyone else: 403."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, g
from sqlmodel import Session, col, select

from console import auth
from console.auth import STAFF, requires, runtime
from core import numbers
from storage.audit import AuditAction, record
from storage.db import session_scope
from storage.models import Recording, RecordingKind, Role, ServiceRequest, Worker
from telephony import recording_store
from telephony.port import GatewayError

log = logging.getLogger(__name__)
bp = Blueprint("recordings", __name__, url_prefix="/requests")


def spoken_address(db: Session, request_id: int | None) -> Recording | None:
    """The request's spoken address still kept (the latest, should the caller have made two)."""
    return db.exec(
        select(Recording)
        .where(Recording.request_id == request_id, col(Recording.erased_at).is_(None), Recording.url != "")
        .where(Recording.kind == RecordingKind.ADDRESS)
        .order_by(col(Recording.id).desc())
    ).first()


def may_hear(db: Session, found: ServiceRequest) -> bool:
    if g.user.role in STAFF:
        return True
    worker = db.get(Worker, found.worker_id) if found.worker_id else None
    return g.user.role is Role.PROVIDER and worker is not None and worker.provider_id == g.user.provider_id


@bp.get("/<number>/address.mp3")
@requires(*STAFF, Role.PROVIDER)
def address(number: str) -> Response:
    """The recording's audio, fetched from its platform now (never cached by the browser)."""
    if not numbers.is_valid(number):
        abort(404)
    with Session(runtime().engine) as db:
        found = db.exec(select(ServiceRequest).where(ServiceRequest.number == number)).first()
        if found is None:
            abort(404)
        if not may_hear(db, found):
            auth.audit_refusal(AuditAction.RECORDING_REFUSED)
            abort(403)
        recording = spoken_address(db, found.id)
    if recording is None:
        abort(404)
    return played(recording)


def played(recording: Recording) -> Response:
    """A recording's audio, fetched from its platform now, the playing audited (never cached by the
    browser; 502 when the platform cannot give it). Whoever calls this has checked who may hear it."""
    with session_scope(runtime().engine) as db:
        record(
            db,
            AuditAction.RECORDING_PLAYED,
            actor=f"user:{g.user.id}",
            entity="recording",
            entity_id=recording.id,
            reason="console",
        )
    try:
        store = recording_store(runtime().settings, recording.platform)
        audio, mimetype = store.recording_audio(recording.recording_id)
    except GatewayError as error:
        log.warning("recording %s could not be fetched from %s: %s", recording.id, recording.platform, error)
        abort(502)
    return Response(audio, mimetype=mimetype, headers={"Cache-Control": "no-store"})
