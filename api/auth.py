"""Who is calling: a bearer token names a client and its role; every view names the roles it serves."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import current_app, g, request
from sqlmodel import Session

from api.errors import ApiError
from storage import audit, tokens
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import ApiRole, ApiToken
from storage.runtime import Runtime

log = logging.getLogger(__name__)
STAFF = (ApiRole.AGENT, ApiRole.SUPERVISOR, ApiRole.ADMIN)
MANAGERS = (ApiRole.SUPERVISOR, ApiRole.ADMIN)
EVERYONE = tuple(ApiRole)


def runtime() -> Runtime:
    helpline: Runtime = current_app.extensions["sewamitra"]
    return helpline


def bearer() -> str | None:
    """The token in `Authorization: Bearer …`, if one was sent."""
    kind, _, secret = request.headers.get("Authorization", "").partition(" ")
    return secret.strip() if kind.lower() == "bearer" and secret.strip() else None


def authenticate(secret: str | None) -> ApiToken:
    """The live token, or 401: none sent, or not one we know (revoked and expired ones too)."""
    if not secret:
        raise ApiError(401, "send a token: Authorization: Bearer <token> (`sewamitra create-token` makes one)")
    with Session(runtime().engine, expire_on_commit=False) as db:
        token = tokens.authenticate(db, secret, runtime().clock.now())
    if token is None:
        raise ApiError(401, "the token is not valid (unknown, revoked or expired)")
    return token


def requires(*roles: ApiRole) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Only tokens with one of `roles` may use this view: 401 without a valid token, 403 (audited) for another role."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            g.client = authenticate(bearer())
            allow(*roles)
            return view(*args, **kwargs)

        checked.roles = roles  # type: ignore[attr-defined]  # read by the route-by-route security test
        return checked

    return decorate


def allow(*roles: ApiRole) -> None:
    if g.client.role not in roles:
        refuse("this token's role may not do this")


def refuse(message: str) -> None:
    """403, with an audit event: a client reaching past its role is worth knowing about."""
    audit_refusal()
    raise ApiError(403, message)


def client() -> ApiToken:
    token: ApiToken = g.client
    return token


def actor() -> str:
    return f"api:{client().client}"


def audit_refusal() -> None:
    try:
        with session_scope(runtime().engine) as db:
            audit.record(
                db,
                AuditAction.ACCESS_REFUSED,
                actor=actor(),
                entity="api",
                detail={
                    "path": request.path[:200],
                    "method": request.method,
                    "role": client().role.value,
                    "ip": request.remote_addr,
                },
            )
    except Exception:  # the refusal stands even when it cannot be recorded
        log.exception("could not record an API refusal")
