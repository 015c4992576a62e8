"""Twilio request signatures, checked against the public URL Twilio called."""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Callable
from typing import Any

from flask import Response, current_app
from twilio.request_validator import RequestValidator

from telephony.twilio.twiml import account
from telephony.webhooks import LOGGED_PATH, MAX_BODY, public_url_of_request, this_request, too_large

__all__ = ["MAX_BODY", "SIGNATURE_HEADER", "is_signed", "public_url_of_request", "too_large", "twilio_signed"]

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Twilio-Signature"


def is_signed(auth_token: str, url: str, form: Any, signature: str) -> bool:
    """Whether `signature` is Twilio's for `url` and `form`: computed once over the URL as called
    (what Twilio signs); only when that differs, the validator's other spellings of it (the URL
    with and without its port), which parse the URL and sign twice."""
    if not signature:
        return False
    validator = RequestValidator(auth_token)
    if hmac.compare_digest(validator.compute_signature(url, form).encode(), signature.encode()):
        return True
    return bool(validator.validate(url, form, signature))


def twilio_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse a webhook request larger than Twilio's (413, 400), that does not carry Twilio's
    signature for our URL (403), or that is signed but for another account than ours (403)."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        req = this_request()
        refused = too_large(req)
        if refused is not None:
            return refused
        settings = current_app.extensions["sewamitra"].settings
        if not settings.twilio.validate_signatures:
            return view(*args, **kwargs)
        token = settings.twilio.auth_token
        url = public_url_of_request(req, settings.public_url)
        form = req.form
        if not token or not is_signed(token, url, form, req.headers.get(SIGNATURE_HEADER, "")):
            # The path alone, quoted and cut short: anyone can send a URL of any length, with line ends,
            # or a query holding a phone number (Twilio's GET webhooks carry From there).
            log.warning("refused unsigned or mis-signed webhook %r from %s", req.path[:LOGGED_PATH], req.remote_addr)
            return Response("invalid Twilio signature\n", status=403, mimetype="text/plain")
        ours, theirs = settings.twilio.account_sid, account(form)
        if ours and theirs and theirs != ours:  # signed, yet for another account: a token shared or leaked
            log.warning(
                "refused a signed webhook %r for another account from %s", req.path[:LOGGED_PATH], req.remote_addr
            )
            return Response("not this helpline's Twilio account\n", status=403, mimetype="text/plain")
        return view(*args, **kwargs)

    return checked
