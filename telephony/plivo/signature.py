"""Plivo request signatures (V3: `X-Plivo-Signature-V3` over the URL, the POST parameters and
`X-Plivo-Signature-V3-Nonce`), checked with the SDK's own `validate_v3_signature` against the public
URL Plivo called (plivo.com/docs/voice/xml/request/validation), and each nonce accepted once."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import redis
from flask import Response, current_app

from telephony.webhooks import LOGGED_PATH, public_url_of_request, this_request, too_large

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Plivo-Signature-V3"
NONCE_HEADER = "X-Plivo-Signature-V3-Nonce"
MAX_NONCE = 100  # characters: Plivo's nonces are a few dozen digits
NONCE_KEY = "sewamitra:plivo-nonce:"
# A V3 signature carries no time: a nonce is remembered this long, and a request that repeats one
# inside it is a replay. A retry Plivo signs anew gets through, and finds each step idempotent.
NONCE_TTL_S = 7 * 24 * 3600


def is_signed(auth_token: str, url: str, form: Any, nonce: str, signature: str) -> bool:
    """Whether `signature` is Plivo's for this POST, by the SDK's V3 check (imported here: the SDK
    weighs some 25 MB, which a helpline on another platform does not load)."""
    from plivo.utils.signature_v3 import validate_v3_signature

    if not (signature and nonce) or len(nonce) > MAX_NONCE:
        return False
    params = {name: form.getlist(name) if len(form.getlist(name)) > 1 else form[name] for name in form}
    try:
        return bool(validate_v3_signature("POST", url, nonce, auth_token, signature, params))
    except (ValueError, TypeError, UnicodeError):  # the SDK's argument checks on hostile headers
        return False


def first_use(connection: redis.Redis, nonce: str) -> bool:
    """Remember the nonce; False when it was seen before (a replay). When Redis cannot answer, the
    request is let through: the signature was good, and every step is idempotent by its own key,
    while refusing would hang up on callers for as long as Redis is out."""
    try:
        return bool(connection.set(NONCE_KEY + nonce, b"1", nx=True, ex=NONCE_TTL_S))
    except redis.RedisError:
        log.warning("Redis unreachable: a Plivo nonce could not be checked for replay")
        return True


def plivo_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse a webhook request larger than Plivo's (413, 400), one without Plivo's V3 signature for our
    URL (403), or one whose nonce was already used (403, a replay)."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        req = this_request()
        refused = too_large(req)
        if refused is not None:
            return refused
        runtime = current_app.extensions["sewamitra"]
        settings = runtime.settings
        if not settings.plivo.validate_signatures:
            return view(*args, **kwargs)
        token = settings.plivo.auth_token
        url = public_url_of_request(req, settings.public_url)
        nonce = req.headers.get(NONCE_HEADER, "")
        if not token or not is_signed(token, url, req.form, nonce, req.headers.get(SIGNATURE_HEADER, "")):
            log.warning("refused unsigned or mis-signed webhook %r from %s", req.path[:LOGGED_PATH], req.remote_addr)
            return Response("invalid Plivo signature\n", status=403, mimetype="text/plain")
        if not first_use(runtime.redis, nonce):
            log.warning("refused a replayed webhook %r from %s", req.path[:LOGGED_PATH], req.remote_addr)
            return Response("this Plivo request was already received\n", status=403, mimetype="text/plain")
        return view(*args, **kwargs)

    return checked
