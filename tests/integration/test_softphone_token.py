"""The softphone's token: the helpline mints the platform's token for a signed-in agent's browser
(Twilio: an Access Token with a Voice grant, signed with the API key; Plivo: asked of Plivo's JWT
API, here the sandbox), `agent-<user id>`, short-lived, audited; nobody else gets one.

Each token is decoded and verified with the platform SDK's own library and the secret it is signed
with: twilio-python's `AccessToken.from_jwt`, and PyJWT (the JWT library the plivo SDK signs with)."""

from __future__ import annotations

import jwt
import pytest
from flask import Flask
from sqlmodel import Session, col, select
from twilio.jwt.access_token import AccessToken

from core.settings import Settings
from devtools.plivo_sandbox import PlivoSandbox
from sewamitra.app import create_app
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import AuditEvent, Provider, Role
from telephony.browser import TOKEN_TTL_S
from tests.console import Console, add_user, signed_in
from tests.factories import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PLIVO_AUTH_ID,
    PLIVO_BROWSER_APP_ID,
    TWILIO_API_KEY_SECRET,
    TWILIO_API_KEY_SID,
    TWIML_APP_SID,
    engine_of,
    with_browser_phones,
)


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_browser_phones(helpline_settings)


def user_of(app: Flask, console: Console) -> int:
    with console.client.session_transaction() as session:
        return int(session["uid"])


def audit_events(app: Flask, action: AuditAction) -> list[AuditEvent]:
    with Session(engine_of(app)) as db:
        return list(db.exec(select(AuditEvent).where(AuditEvent.action == action.value).order_by(col(AuditEvent.id))))


def test_an_agents_browser_gets_a_twilio_token_to_call_the_twiml_app_as_themselves(app: Flask) -> None:
    asha = signed_in(app, "asha", Role.AGENT)
    agent_id = user_of(app, asha)

    answer = asha.post("/console/agent/token")

    assert answer.status_code == 200
    given = answer.get_json()
    assert given["platform"] == "twilio"
    assert given["identity"] == f"agent-{agent_id}"
    token = AccessToken.from_jwt(given["token"], TWILIO_API_KEY_SECRET)  # verified with the API key's secret
    assert token.payload["iss"] == TWILIO_API_KEY_SID
    assert token.payload["sub"] == ACCOUNT_SID
    assert token.payload["grants"] == {
        "identity": f"agent-{agent_id}",
        "voice": {"outgoing": {"application_sid": TWIML_APP_SID}},  # calls out only: no browser is rung
    }
    assert token.payload["exp"] - token.payload["nbf"] == TOKEN_TTL_S == 600
    assert given["expires_at"] == token.payload["exp"]
    with pytest.raises(Exception, match="Signature"):
        AccessToken.from_jwt(given["token"], "another secret of the right length, not ours")
    [event] = audit_events(app, AuditAction.SOFTPHONE_TOKEN)
    assert (event.actor, event.entity_id) == (f"user:{agent_id}", agent_id)


@pytest.mark.parametrize("telephony_platform", ["plivo"])
def test_an_agents_browser_gets_a_plivo_token_asked_of_plivos_jwt_api(
    app: Flask, sandbox: PlivoSandbox, telephony_platform: str
) -> None:
    ravi = signed_in(app, "ravi", Role.SUPERVISOR)
    agent_id = user_of(app, ravi)

    answer = ravi.post("/console/agent/token")

    assert answer.status_code == 200
    given = answer.get_json()
    assert (given["platform"], given["identity"]) == ("plivo", f"agent-{agent_id}")
    [asked] = sandbox.tokens
    assert asked["params"]["iss"] == PLIVO_AUTH_ID
    assert asked["params"]["per"] == {"voice": {"outgoing_allow": True}}
    claims = jwt.decode(given["token"], AUTH_TOKEN, algorithms=["HS256"])  # as the sandbox signed it
    assert claims["sub"] == f"agent-{agent_id}"
    assert claims["app"] == PLIVO_BROWSER_APP_ID
    assert claims["per"] == {"voice": {"outgoing_allow": True}}
    assert claims["exp"] - claims["nbf"] == TOKEN_TTL_S
    [event] = audit_events(app, AuditAction.SOFTPHONE_TOKEN)
    assert event.actor == f"user:{agent_id}"


def test_a_provider_gets_no_token_and_the_refusal_is_audited(app: Flask) -> None:
    with session_scope(engine_of(app)) as db:
        db.add(Provider(name="Gomti Services", district="LUCKNOW"))
    add_user(engine_of(app), "agency", Role.PROVIDER, provider="Gomti Services")
    agency = Console(app)
    agency.sign_in("agency")

    answer = agency.post("/console/agent/token")

    assert answer.status_code == 403
    assert not answer.is_json  # the console's refusal page, no token
    assert [e.detail["path"] for e in audit_events(app, AuditAction.ACCESS_REFUSED)] == ["/console/agent/token"]
    assert audit_events(app, AuditAction.SOFTPHONE_TOKEN) == []


def test_nobody_signed_out_gets_a_token(app: Flask) -> None:
    stranger = Console(app)

    answer = stranger.post("/console/agent/token")

    assert answer.status_code in (302, 403)  # to the sign-in page, or refused as a forged form
    assert not answer.is_json
    assert audit_events(app, AuditAction.SOFTPHONE_TOKEN) == []


def test_a_token_is_not_given_to_a_page_without_the_sessions_csrf_token(app: Flask) -> None:
    asha = signed_in(app, "asha", Role.AGENT)

    answer = asha.client.post("/console/agent/token")  # not from a console page: no X-CSRF-Token

    assert answer.status_code == 403
    assert audit_events(app, AuditAction.SOFTPHONE_TOKEN) == []
    assert [e.action for e in audit_events(app, AuditAction.CSRF_REFUSED)] == ["csrf.refused"]


def test_without_the_platforms_browser_credentials_agents_answer_on_their_desk_phone(
    helpline_settings: Settings,
) -> None:
    plain = create_app(helpline_settings)  # no API key, no TwiML App
    try:
        add_user(engine_of(plain), "asha", Role.AGENT, phone="+919811110001")
        asha = Console(plain)
        asha.sign_in("asha")
        page = asha.get("/console/queue").get_data(as_text=True)
        answer = asha.post("/console/agent/token")
    finally:
        plain.extensions["sewamitra"].engine.dispose()

    assert answer.status_code == 409
    assert "answer-in" not in page  # no choice to make: the desk phone
    assert 'id="softphone"' not in page  # no SDK loaded, no panel
    assert "vendor/twilio-voice-sdk" not in page
