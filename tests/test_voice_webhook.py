"""Twilio posts a signed form to /twilio/voice; only a correctly signed one is answered."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest
from flask import Flask
from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator

from sewamitra.app import create_app
from tests.conftest import make_settings

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC_URL = "https://helpline.example.gov.in"
CALL = {
    "CallSid": "CA0123456789abcdef0123456789abcdef",
    "AccountSid": "AC0123456789abcdef0123456789abcdef",
    "From": "+919876543210",
    "To": "+18005550100",
    "CallStatus": "ringing",
    "Direction": "inbound",
    "ApiVersion": "2010-04-01",
}


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    settings = make_settings(
        tmp_path, TWILIO_AUTH_TOKEN=AUTH_TOKEN, SEWAMITRA_PUBLIC_URL=PUBLIC_URL, SEWAMITRA_SECRET_KEY="s" * 40
    )
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def signed_post(client: FlaskClient, path: str, form: dict[str, str], *, token: str = AUTH_TOKEN):
    """Post `form` to `path` exactly as Twilio would: signed over the public URL."""
    signature = RequestValidator(token).compute_signature(PUBLIC_URL + path, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def test_a_signed_incoming_call_is_greeted_in_hindi_then_english(client: FlaskClient) -> None:
    answer = signed_post(client, "/twilio/voice", CALL)
    assert answer.status_code == 200
    assert answer.mimetype == "text/xml"
    response = ElementTree.fromstring(answer.data)
    says = response.findall("Say")
    assert response.tag == "Response"
    assert [s.get("language") for s in says] == ["hi-IN", "en-IN"]
    assert says[0].get("voice") == "Polly.Aditi"
    assert "सेवामित्र" in (says[0].text or "")
    assert response[-1].tag == "Hangup"  # never left hanging in silence


def test_an_unsigned_post_is_refused(client: FlaskClient) -> None:
    assert client.post("/twilio/voice", data=CALL).status_code == 403


def test_a_post_signed_with_another_token_is_refused(client: FlaskClient) -> None:
    assert signed_post(client, "/twilio/voice", CALL, token="someone-elses-token").status_code == 403


def test_a_tampered_form_is_refused(client: FlaskClient) -> None:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + "/twilio/voice", CALL)
    tampered = {**CALL, "From": "+911111111111"}
    answer = client.post("/twilio/voice", data=tampered, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 403


def test_the_signature_is_checked_against_the_public_url_not_the_local_one(client: FlaskClient) -> None:
    local = RequestValidator(AUTH_TOKEN).compute_signature("http://localhost/twilio/voice", CALL)
    answer = client.post("/twilio/voice", data=CALL, headers={"X-Twilio-Signature": local})
    assert answer.status_code == 403


def test_the_fallback_apologises_in_valid_twiml(client: FlaskClient) -> None:
    answer = signed_post(client, "/twilio/voice/fallback", {**CALL, "ErrorCode": "11200"})
    response = ElementTree.fromstring(answer.data)
    assert answer.status_code == 200
    assert [e.tag for e in response] == ["Say", "Say", "Hangup"]


def test_with_signature_checks_off_unsigned_posts_pass(tmp_path: Path, caplog) -> None:
    settings = make_settings(tmp_path, SEWAMITRA_TWILIO__VALIDATE_SIGNATURES="false")
    app = create_app(settings)
    assert "signature checks are OFF" in caplog.text
    assert app.test_client().post("/twilio/voice", data=CALL).status_code == 200


def test_without_an_auth_token_every_webhook_is_refused(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    assert app.test_client().post("/twilio/voice", data=CALL, headers={"X-Twilio-Signature": "x"}).status_code == 403
