"""Twilio's side of the browser leg: the agent's Access Token with a Voice grant for the TwiML App
(twilio-python's `AccessToken`, signed with an API key:
https://www.twilio.com/docs/iam/access-tokens), and the TwiML App's Voice URL request, which comes
`From=client:<identity>` with the `params` the SDK's `device.connect({params})` named as form fields
(https://www.twilio.com/docs/voice/sdks/javascript/twiliodevice#deviceconnectconnectoptions)."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant

from core.settings import Settings
from telephony.browser import BrowserToken, ClientLeg, user_of

CLIENT = "client:"
CALLER_PARAM = "call"  # device.connect({params: {call: <the caller's CallSid>}})


def access_token(settings: Settings, identity: str, now: int, ttl_s: int) -> BrowserToken:
    """A token that lets `identity` call the TwiML App (outgoing only: nobody rings a browser)."""
    twilio = settings.twilio
    assert twilio.account_sid, "twilio.browser_ready first"
    assert twilio.api_key_sid
    assert twilio.api_key_secret
    assert twilio.twiml_app_sid
    token = AccessToken(
        twilio.account_sid,
        twilio.api_key_sid,
        twilio.api_key_secret,
        identity=identity,
        nbf=now,
        valid_until=now + ttl_s,
    )
    token.add_grant(VoiceGrant(outgoing_application_sid=twilio.twiml_app_sid))
    return BrowserToken("twilio", token.to_jwt(), identity, now + ttl_s)


def client_leg(form: Mapping[str, str]) -> ClientLeg:
    """The Voice URL's request for a call a browser placed."""
    caller = form.get("From", "")
    user_id = user_of(caller[len(CLIENT) :]) if caller.startswith(CLIENT) else None
    return ClientLeg(user_id, form.get(CALLER_PARAM, "")[:64], form.get("CallSid", "")[:64])
