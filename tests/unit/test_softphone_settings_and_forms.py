"""The softphone's pure parts: which settings make agents answer in the browser, secrets kept out of
config.yaml, and the platforms' requests for a browser's call read, hostile ones included."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.exceptions import ConfigError
from core.settings import load_settings
from telephony import browser_ready
from telephony.browser import ClientLeg, identity_of, user_of
from telephony.plivo.browser import client_leg as plivo_leg
from telephony.twilio.browser import client_leg as twilio_leg
from tests.factories import ROOT
from tests.unit.test_settings import write_config

KEY = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_API_KEY_SID": "SK" + "1" * 32, "TWILIO_API_KEY_SECRET": "s" * 32}
CALLER = "CA" + "2" * 32


def test_agents_answer_in_the_browser_only_with_the_api_key_and_the_twiml_app() -> None:
    assert not browser_ready(load_settings(ROOT / "config.yaml", KEY))  # no TwiML App
    app = {"SEWAMITRA_TWILIO__TWIML_APP_SID": "AP" + "3" * 32}
    assert browser_ready(load_settings(ROOT / "config.yaml", KEY | app))
    assert not browser_ready(load_settings(ROOT / "config.yaml", {**KEY, "TWILIO_API_KEY_SECRET": ""} | app))


def test_on_plivo_the_browser_needs_the_application_of_the_agents_endpoints() -> None:
    plivo = {"SEWAMITRA_TELEPHONY__PLATFORM": "plivo", "PLIVO_AUTH_ID": "MA" + "A" * 18, "PLIVO_AUTH_TOKEN": "t"}
    assert not browser_ready(load_settings(ROOT / "config.yaml", plivo))
    assert browser_ready(load_settings(ROOT / "config.yaml", plivo | {"SEWAMITRA_PLIVO__BROWSER_APP_ID": "1234567"}))


def test_the_api_keys_secret_written_into_the_file_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"twilio": {"api_key_secret": "leaked"}})
    with pytest.raises(ConfigError, match=r"twilio\.api_key_secret is a secret .* TWILIO_API_KEY_SECRET"):
        load_settings(path, {})


def test_a_twiml_app_sid_that_is_not_one_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"twilio": {"twiml_app_sid": "https://evil.example/"}})
    with pytest.raises(ConfigError, match="twiml_app_sid"):
        load_settings(path, {})


def test_an_agents_identity_names_them_and_nothing_else_does() -> None:
    assert identity_of(42) == "agent-42"
    assert user_of("agent-42") == 42
    for other in ("agent-0", "agent-042", "agent-", "agent-1x", "Agent-1", "agent-1\n", "agent-1234567890", "42"):
        assert user_of(other) is None, other


def test_twilios_request_for_a_browsers_call_is_read() -> None:
    form = {"CallSid": "CA" + "9" * 32, "From": "client:agent-7", "To": "", "call": CALLER}
    assert twilio_leg(form) == ClientLeg(7, CALLER, "CA" + "9" * 32)
    assert twilio_leg({**form, "From": "+919876543210"}).user_id is None  # a phone, not a browser
    assert twilio_leg({**form, "From": "client:agent-7x"}).user_id is None
    assert twilio_leg({"From": "client:agent-7"}) == ClientLeg(7, "", "")
    assert len(twilio_leg({**form, "call": "C" * 10_000}).caller_call_id) == 64


def test_plivos_request_for_a_browsers_call_is_read() -> None:
    form = {"CallUUID": "3f1c", "From": "sip:agent-7@phone.plivo.com", "X-PH-Call": CALLER}
    assert plivo_leg(form) == ClientLeg(7, CALLER, "3f1c")
    assert plivo_leg({**form, "From": "919876543210"}).user_id is None
    assert plivo_leg({**form, "From": "sip:agent-7;evil@phone.plivo.com"}).user_id is None
    assert plivo_leg({**form, "From": "sip:someone@phone.plivo.com"}).user_id is None
