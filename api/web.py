"""The /api/v1 blueprint: bearer-token views, small bodies, and every answer JSON, errors included."""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from api import inputs, open311, openapi, present, requests, workers
from api.auth import EVERYONE, requires, runtime
from api.errors import RETRY_AFTER_S, ApiError, unavailable
from api.schemas import OpenSlot, OpenSlots, Service, Services
from core import slots

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_BODY = 64 * 1024  # bytes: a request or a worker is a few hundred; a larger body is a mistake or an attack
MESSAGES = {
    404: "no such path; see /api/v1/openapi.json",
    405: "this path does not take this method",
    413: f"the body is larger than {MAX_BODY // 1024} KiB",
}
HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}

for _part in (requests, workers):
    bp.register_blueprint(_part.bp)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(open311.bp)


@bp.before_request
def small_bodies() -> None:
    request.max_content_length = MAX_BODY


@bp.after_request
def headers(response: Response) -> Response:
    for header, value in HEADERS.items():
        response.headers.setdefault(header, value)
    return response


@bp.get("/services")
@requires(*EVERYONE)
@inputs.only()
def services() -> ResponseReturnValue:
    """The catalogue: what a request may ask for."""
    items = [
        Service(code=s.code, name_en=s.name_en, name_hi=s.name_hi, keypad_digit=s.digit, visit_charge=s.visit_charge)
        for s in runtime().settings.services
    ]
    return present.answer(Services(items=items))


@bp.get("/slots")
@requires(*EVERYONE)
@inputs.only()
def open_slots() -> ResponseReturnValue:
    """The visit slots a request may be booked or moved to now."""
    settings, now = runtime().settings, runtime().clock.now()
    items = [
        OpenSlot(
            key=slot.key,
            starts_at=slot.starts_at,
            ends_at=slot.ends_at,
            name_en=slots.describe(settings, slot.starts_at, slot.ends_at, "en", now),
            name_hi=slots.describe(settings, slot.starts_at, slot.ends_at, "hi", now),
        )
        for slot in slots.upcoming(settings, now)
    ]
    return present.answer(OpenSlots(items=items))


@bp.get("/openapi.json")
def document() -> ResponseReturnValue:
    """The OpenAPI description of this API and of Open311, for client generators and fuzzers."""
    return jsonify(openapi.document(runtime().settings))


@bp.errorhandler(ApiError)
def api_error(error: ApiError) -> ResponseReturnValue:
    return jsonify(error.body()), error.status


@bp.errorhandler(Exception)
def unexpected(error: Exception) -> ResponseReturnValue:
    """Every failure is JSON: HTTP errors as themselves, anything else a logged 500."""
    if isinstance(error, HTTPException):
        return http_error(error)
    outage = unavailable(error)
    if outage is not None:
        log.warning("API call %s %s: %s", request.method, request.path, type(error).__name__)
        return jsonify(outage.body()), 503, {"Retry-After": str(RETRY_AFTER_S)}
    log.exception("API call %s %s failed", request.method, request.path, exc_info=error)
    return jsonify(ApiError(500, "the helpline could not answer; try again").body()), 500


def http_error(error: HTTPException) -> ResponseReturnValue:
    """An HTTP error (a path that names nothing, a method it does not take, a body too large) as JSON."""
    status = error.code or 500
    message = MESSAGES.get(status) or error.description or error.name
    return jsonify(ApiError(status, message).body()), status
