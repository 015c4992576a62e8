"""CSRF tokens: one random token a session, sent back with every form or fetch that changes
anything (a hidden field, or the X-CSRF-Token header)."""

from __future__ import annotations

import hmac
import secrets

from flask import request, session

SESSION_KEY = "csrf"
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


def token() -> str:
    if SESSION_KEY not in session:
        session[SESSION_KEY] = secrets.token_urlsafe(32)
    value: str = session[SESSION_KEY]
    return value


def is_valid() -> bool:
    expected = session.get(SESSION_KEY)
    given = request.form.get(FIELD) or request.headers.get(HEADER) or ""
    return bool(expected) and hmac.compare_digest(str(expected).encode(), given.encode())
