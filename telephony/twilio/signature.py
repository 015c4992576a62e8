"""Twilio request signatures, checked against the public URL Twilio called."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, request
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import RequestEntityTooLarge

from telephony.twilio.twiml import account

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Twilio-Signature"
LOGGED_PATH = 120  # characters of a refused request's path worth logging
# Twilio's webhooks are a few kB of a few dozen fields: anything much larger is not Twilio's, and
# parsing and signing it (hundreds of thousands of fields) would cost a second of a web process.
MAX_BODY = 64 * 1024
MAX_FIELDS = 200
FORM = "application/x-www-form-urlencoded"


def public_url_of_request(public_url: str) -> str:
    """The URL Twilio signed: the configured public URL, this path and the query string."""
    query = request.query_string.decode("latin-1")
    return f"{public_url}{request.path}" + (f"?{query}" if query else "")


def is_signed(auth_token: str, url: str, form: Any, signature: str) -> bool:
    return bool(signature) and RequestValidator(auth_token).validate(url, form, signature)


def too_large() -> Response | None:
    """A refusal (413, 400) of a body larger, or of more fields, than any of Twilio's, before its form
    is parsed or its signature computed; None for a body of Twilio's size."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _refusal(413, f"a webhook body is at most {MAX_BODY // 1024} KiB")
    request.max_content_length = MAX_BODY + 1  # a body without a length (chunked) is read no further
    request.max_form_memory_size = MAX_BODY
    request.max_form_parts = MAX_FIELDS  # a multipart body's fields are counted by its parser
    if request.mimetype != FORM:
        return None
    body = _body()
    if body is None:
        return _refusal(413, f"a webhook body is at most {MAX_BODY // 1024} KiB")
    if body.count(b"&") >= MAX_FIELDS:
        return _refusal(400, f"a webhook has at most {MAX_FIELDS} fields")
    return None


def _body() -> bytes | None:
    """The body, kept for the form to be parsed from; None when it runs past MAX_BODY."""
    try:
        body = request.get_data(cache=True)
    except RequestEntityTooLarge:
        return None
    return body if len(body) <= MAX_BODY else None


def _refusal(status: int, why: str) -> Response:
    log.warning("refused an oversized webhook %r from %s", request.path[:LOGGED_PATH], request.remote_addr)
    return Response(f"{why}\n", status=status, mimetype="text/plain")


def twilio_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse a webhook request larger than Twilio's (413, 400), that does not carry Twilio's
    signature for our URL (403), or that is signed but for another account than ours (403)."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        refused = too_large()
        if refused is not None:
            return refused
        settings = current_app.extensions["sewamitra"].settings
        if not settings.twilio.validate_signatures:
            return view(*args, **kwargs)
        token = settings.twilio.auth_token
        url = public_url_of_request(settings.public_url)
        if not token or not is_signed(token, url, request.form, request.headers.get(SIGNATURE_HEADER, "")):
            # The path alone, quoted and cut short: anyone can send a URL of any length, with line ends,
            # or a query holding a phone number (Twilio's GET webhooks carry From there).
            log.warning(
                "refused unsigned or mis-signed webhook %r from %s", request.path[:LOGGED_PATH], request.remote_addr
            )
            return Response("invalid Twilio signature\n", status=403, mimetype="text/plain")
        ours, theirs = settings.twilio.account_sid, account(request.form)
        if ours and theirs and theirs != ours:  # signed, yet for another account: a token shared or leaked
            log.warning(
                "refused a signed webhook %r for another account from %s",
                request.path[:LOGGED_PATH],
                request.remote_addr,
            )
            return Response("not this helpline's Twilio account\n", status=403, mimetype="text/plain")
        return view(*args, **kwargs)

    return checked
