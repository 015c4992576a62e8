"""Twilio request signatures, checked against the public URL Twilio called."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, request
from twilio.request_validator import RequestValidator

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Twilio-Signature"
LOGGED_PATH = 120  # characters of a refused request's path worth logging


def public_url_of_request(public_url: str) -> str:
    """The URL Twilio signed: the configured public URL, this path and the query string."""
    query = request.query_string.decode("latin-1")
    return f"{public_url}{request.path}" + (f"?{query}" if query else "")


def is_signed(auth_token: str, url: str, form: Any, signature: str) -> bool:
    return bool(signature) and RequestValidator(auth_token).validate(url, form, signature)


def twilio_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse (403) a webhook request that does not carry Twilio's signature for our URL."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        settings = current_app.extensions["sewamitra"].settings
        if not settings.twilio.validate_signatures:
            return view(*args, **kwargs)
        token = settings.twilio.auth_token
        url = public_url_of_request(settings.public_url)
        if not token or not is_signed(token, url, request.form, request.headers.get(SIGNATURE_HEADER, "")):
            # The path alone, quoted and cut short: anyone can send a URL of any length, with line ends,
            # or a query holding a phone number (Twilio's GET webhooks carry From there).
            log.warning("refused unsigned or mis-signed webhook %r from %s", request.path[:LOGGED_PATH],
                        request.remote_addr)  # fmt: skip
            return Response("invalid Twilio signature\n", status=403, mimetype="text/plain")
        return view(*args, **kwargs)

    return checked
