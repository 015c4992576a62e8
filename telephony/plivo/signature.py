"""Plivo request signatures (V3: `X-Plivo-Signature-V3` over the URL, the POST parameters and
`X-Plivo-Signature-V3-Nonce`), checked with the SDK's own `validate_v3_signature` against the public
URL Plivo called (plivo.com/docs/voice/xml/request/validation), and each nonce accepted once: before
the view runs, or where the view checks replays itself, before anything it commits."""

from __future__ import annotations

import base64
import functools
import hmac
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse, urlunparse

import redis
from flask import Response
from werkzeug.datastructures import MultiDict

from telephony.webhooks import (
    LOGGED_PATH,
    ReplayCheck,
    leave_replay_check,
    marking,
    public_url_of_request,
    replays_checked_by,
    this_app,
    this_request,
    too_large,
)

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Plivo-Signature-V3"
NONCE_HEADER = "X-Plivo-Signature-V3-Nonce"
MAX_NONCE = 100  # characters: Plivo's nonces are a few dozen digits
NONCE_KEY = "sewamitra:plivo-nonce:"
# A V3 signature carries no time: a nonce is remembered this long, and a request that repeats one
# inside it is a replay. A retry Plivo signs anew gets through, and finds each step idempotent.
NONCE_TTL_S = 7 * 24 * 3600
# The SDK's check of the URL it is given (`plivo.utils.validators.is_url`, matched at the start), one
# repetition of its `(…)+`: the same URLs pass, without reading a long query character by character.
_URL = re.compile(r"http[s]?://(?:[a-zA-Z]|[0-9]|[$-_@.&+]|[!*\(\),]|(?:%[0-9a-fA-F][0-9a-fA-F]))|None")


def is_signed(auth_token: str, url: str, form: MultiDict[str, str], nonce: str, signature: str) -> bool:
    """Whether `signature` (a list of signatures, comma-separated) holds Plivo's V3 signature of this
    POST, as the SDK's `validate_v3_signature` checks it: computed by `signature_of` for a URL of
    ASCII, as every URL of the helpline is; any other by the SDK itself (imported only then: it
    weighs some 25 MB, which a helpline on another platform does not load)."""
    if not (signature and nonce) or len(nonce) > MAX_NONCE or not _URL.match(url):
        return False  # the SDK refuses such a URL (its `is_url`)
    if url.isascii():
        try:
            ours = signature_of(auth_token, url, form, nonce).encode()
        except UnicodeError:  # a query field not ASCII once unquoted, a lone surrogate: the SDK refuses both
            return False
        # Each compared in constant time, as Twilio's is (the SDK's `in` stops at the first differing byte).
        return any(hmac.compare_digest(ours, theirs.encode()) for theirs in signature.split(","))
    from plivo.exceptions import ValidationError
    from plivo.utils.signature_v3 import validate_v3_signature

    params = {name: form.getlist(name) if len(form.getlist(name)) > 1 else form[name] for name in form}
    try:
        return bool(validate_v3_signature("POST", url, nonce, auth_token, signature, params))
    except (ValidationError, ValueError, TypeError, UnicodeError):  # the SDK's argument checks on hostile headers
        return False


def signature_of(auth_token: str, url: str, form: MultiDict[str, str], nonce: str) -> str:
    """Plivo's V3 signature of a POST to `url` (of ASCII) with `form` and `nonce`: base64 of the
    HMAC-SHA256, under the auth token, of the URL without its query, its query's fields in order
    (read as the SDK reads them), the form's fields in order, each name and value, and the nonce
    (plivo.com/docs/voice/xml/request/validation). The SDK's `validate_v3_signature`, which
    `tests/unit/test_plivo_signature.py` holds it to, takes some 140 µs over a webhook's form at a
    turn token's URL (checking its arguments, parsing the URL as bytes, formatting each field,
    reading the whole URL against its pattern); this, about a sixth."""
    parsed = urlparse(url)
    signed = [urlunparse((parsed.scheme, parsed.netloc, parsed.path, "", "", ""))]
    # Read as bytes, as the SDK reads it: a field that is not ASCII once unquoted is refused (UnicodeError).
    query = parse_qs(parsed.query.encode(), keep_blank_values=True)
    fields = sorted((name.decode(), sorted(values)) for name, values in query.items())
    asked = "&".join(f"{name}={value.decode()}" for name, values in fields for value in values)
    if form or asked:
        signed += ("?", asked)
    if form and asked:
        signed.append(".")
    for name, values in sorted(form.lists()):
        for value in sorted(values):
            signed += (name, value)
    signed += (".", nonce)
    digest = hmac.digest(auth_token.encode(), "".join(signed).encode(), "sha256")
    return base64.b64encode(digest).decode()


def first_use(commands: Callable[..., Any], nonce: str) -> bool:
    """Remember the nonce; False when it was seen before (a replay). Every request of Plivo's pays
    this command, so it is sent by `commands` (the runtime's: on the thread's own connection, without
    redis-py's client). When Redis cannot answer, the request is let through: the signature was good,
    and every step is idempotent by its own key, while refusing would hang up on callers for as long
    as Redis is out."""
    try:
        return commands(*marking((NONCE_KEY + nonce, NONCE_TTL_S))) is not None
    except redis.RedisError:
        log.warning("Redis unreachable: a Plivo nonce could not be checked for replay")
        return True


def plivo_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse a webhook request larger than Plivo's (413, 400), one without Plivo's V3 signature for our
    URL (403), or one whose nonce was already used (403, a replay): here, or where the view checks
    replays itself, when it asks (`telephony.webhooks.replay_refusal`) or sets the nonce's key in a
    script of its own (`replay_mark`)."""
    by_view = replays_checked_by(view)

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        req = this_request()
        refused = too_large(req)
        if refused is not None:
            return refused
        runtime = this_app().extensions["sewamitra"]
        settings = runtime.settings
        if not settings.plivo.validate_signatures:
            return view(*args, **kwargs)
        token = settings.plivo.auth_token
        url = public_url_of_request(req, settings.public_url)
        nonce = req.headers.get(NONCE_HEADER, "")
        if not token or not is_signed(token, url, req.form, nonce, req.headers.get(SIGNATURE_HEADER, "")):
            log.warning("refused unsigned or mis-signed webhook %r from %s", req.path[:LOGGED_PATH], req.remote_addr)
            return Response("invalid Plivo signature\n", status=403, mimetype="text/plain")
        if not by_view:
            return view(*args, **kwargs) if first_use(runtime.commands, nonce) else _replayed()
        first = functools.partial(first_use, runtime.commands, nonce)
        leave_replay_check(ReplayCheck(NONCE_KEY + nonce, NONCE_TTL_S, first, _replayed))
        return view(*args, **kwargs)

    return checked


def _replayed() -> Response:
    req = this_request()
    log.warning("refused a replayed webhook %r from %s", req.path[:LOGGED_PATH], req.remote_addr)
    return Response("this Plivo request was already received\n", status=403, mimetype="text/plain")
