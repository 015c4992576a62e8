"""Plivo's side of the browser leg. The agent's JWT access token is asked of Plivo's REST API
(POST /v1/Account/{auth_id}/JWT/Token/, the SDK's `client.token.create`): Plivo's Browser SDK
documentation says tokens signed locally are refused by its SIP servers, so the SDK's own
`plivo.utils.jwt.AccessToken` is not used (https://www.plivo.com/docs/voice/sdk/browser/jwt-authentication).
A call the browser places (`client.call(destination, extraHeaders)`) reaches the application's
answer URL `From=sip:<identity>@phone.plivo.com`, each `X-PH-` header as a parameter of its own
name (https://www.plivo.com/docs/voice/sdk/browser/reference)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import requests
from plivo import exceptions

from core.settings import Settings
from telephony.browser import BrowserToken, ClientLeg, user_of
from telephony.http import Unreachable
from telephony.plivo.rest import DEFAULT_TIMEOUT, plivo_client
from telephony.port import GatewayError

SIP_USER = re.compile(r"^sip:([^@;]{1,64})@")
CALLER_HEADER = "X-PH-Call"  # client.call("helpline", {"X-PH-Call": <the caller's CallUUID>})


def access_token(settings: Settings, identity: str, now: int, ttl_s: int) -> BrowserToken:
    """A token that lets `identity` place calls answered by the browser application."""
    plivo = settings.plivo
    assert plivo.auth_id, "plivo.browser_ready first"
    assert plivo.auth_token
    assert plivo.browser_app_id
    client = plivo_client(plivo.auth_id, plivo.auth_token, api_base_url=plivo.api_base_url, timeout=DEFAULT_TIMEOUT)
    try:
        made = client.token.create(
            plivo.auth_id,
            sub=identity,
            nbf=str(now),
            exp=str(now + ttl_s),
            outgoing_allow=True,
            app=plivo.browser_app_id,
        )
        token = str(made["token"])
    except (exceptions.PlivoRestError, requests.RequestException, Unreachable, KeyError, AttributeError) as error:
        raise GatewayError(f"Plivo gave no browser token: {error}", retryable=True) from error
    return BrowserToken("plivo", token, identity, now + ttl_s)


def client_leg(form: Mapping[str, str]) -> ClientLeg:
    """The answer URL's request for a call a browser placed."""
    found = SIP_USER.match(form.get("From", ""))
    user_id = user_of(found.group(1)) if found else None
    return ClientLeg(user_id, form.get(CALLER_HEADER, "")[:64], form.get("CallUUID", "")[:64])
