"""The second outside penetration test's findings, each shown fixed: a webhook post too large to be
Twilio's is refused before it costs anything."""

from __future__ import annotations

import time

import pytest
from flask import Flask

from core.settings import Settings
from sewamitra.app import create_app
from tests.conftest import ACCOUNT_SID
from tests.hostile import post_pairs, post_raw
from tests.test_helpline_call import ALWAYS_OPEN, with_hours

CITIZEN = "+919876543210"
WEBHOOKS = ("/twilio/voice", "/twilio/sms")


@pytest.fixture
def app(helpline_settings: Settings) -> Flask:
    return create_app(with_hours(helpline_settings, **ALWAYS_OPEN))


def signature_refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "mis-signed" in r.getMessage()]


# -- 1. a webhook post too large for Twilio ---------------------------------------------------------


@pytest.mark.parametrize("path", WEBHOOKS)
def test_a_two_megabyte_webhook_post_is_refused_before_its_form_is_read(
    app: Flask, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    body = b"&".join(b"f%06d=" % i for i in range(230_000))  # 230,000 empty fields, 2 MB
    assert len(body) > 2_000_000
    started = time.perf_counter()
    answer = post_raw(app.test_client(), path, body, signed=False)
    print(f"{path}: 2 MB, 230,000 fields refused in {(time.perf_counter() - started) * 1000:.1f} ms")
    assert answer.status_code == 413 and answer.mimetype == "text/plain"
    assert signature_refusals(caplog) == []  # its signature was never checked, its form never parsed


@pytest.mark.parametrize("path", WEBHOOKS)
def test_a_webhook_post_of_too_many_fields_is_refused_even_when_signed(
    app: Flask, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    pairs = [("CallSid", "CA" + "a" * 32), *((f"x{i}", "") for i in range(500))]
    answer = post_pairs(app.test_client(), path, pairs)
    assert answer.status_code == 400 and answer.mimetype == "text/plain"
    empty = post_raw(app.test_client(), path, b"&" * 20_000, signed=False)  # 20 kB of nothing but separators
    assert empty.status_code == 400 and empty.mimetype == "text/plain"
    assert signature_refusals(caplog) == []


def test_a_twilio_sized_signed_webhook_still_works(app: Flask) -> None:
    call = [("CallSid", "CA" + "b" * 32), ("AccountSid", ACCOUNT_SID), ("From", CITIZEN), ("To", "+18005550100"),
            ("Caller", CITIZEN), ("Called", "+18005550100"), ("CallStatus", "ringing"), ("Direction", "inbound"),
            ("ApiVersion", "2010-04-01"), ("CallerCountry", "IN"), ("CallerState", ""), ("CallerCity", ""),
            ("CallerZip", ""), ("CalledCountry", "US"), ("CalledState", "CA"), ("CalledCity", ""),
            ("CalledZip", ""), ("FromCountry", "IN"), ("FromState", ""), ("FromCity", ""), ("FromZip", ""),
            ("ToCountry", "US"), ("ToState", "CA"), ("ToCity", ""), ("ToZip", ""),
            ("StirVerstat", "TN-Validation-Passed-A"),
            *((f"AddOns{i}", "x" * 100) for i in range(20))]  # fmt: skip
    answer = post_pairs(app.test_client(), "/twilio/voice", call)
    assert answer.status_code == 200 and answer.mimetype == "text/xml", answer.data[:300]
    message = [("MessageSid", "SM" + "c" * 32), ("AccountSid", ACCOUNT_SID), ("From", CITIZEN),
               ("To", "+18005550100"), ("Body", "नमस्ते " * 200), ("NumMedia", "0"), ("NumSegments", "3")]  # fmt: skip
    assert post_pairs(app.test_client(), "/twilio/sms", message).status_code == 200
