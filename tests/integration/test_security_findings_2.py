"""The second outside penetration test's findings, each shown fixed: a webhook post too large to be
Twilio's is refused before it costs anything; an outsider's wrong passwords cannot keep a console user
out of their own browser; a signed webhook of another Twilio account is refused; an Idempotency-Key
cannot file another request; Open311 refuses the fields only the helpline sets."""

from __future__ import annotations

import io
import time

import pytest
import redis
from flask import Flask
from sqlmodel import Session, func, select

from console.auth import TRUSTED_COOKIE
from core.settings import Settings
from storage.models import ApiRole, CallLog, Role, SmsLog
from tests.console import Console, add_user, engine_of
from tests.factories import ACCOUNT_SID, ALWAYS_OPEN, LUCKNOW_REQUEST, Api, requests_in, token, with_hours
from tests.hostile import FORM, post_pairs, post_raw

CITIZEN = "+919876543210"
WEBHOOKS = ("/twilio/voice", "/twilio/sms")


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


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
    assert answer.status_code == 413
    assert answer.mimetype == "text/plain"
    assert signature_refusals(caplog) == []  # its signature was never checked, its form never parsed


def test_a_webhook_body_without_a_length_is_read_no_further_than_the_limit(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    chunked = {
        "input_stream": io.BytesIO(b"Body=" + b"x" * 2_000_000),
        "content_type": FORM,
        "headers": {"Transfer-Encoding": "chunked"},
        "environ_overrides": {"wsgi.input_terminated": True},
    }
    answer = app.test_client().post("/twilio/sms", **chunked)
    assert answer.status_code == 413
    assert answer.mimetype == "text/plain"
    assert signature_refusals(caplog) == []


@pytest.mark.parametrize("path", WEBHOOKS)
def test_a_webhook_post_of_too_many_fields_is_refused_even_when_signed(
    app: Flask, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    pairs = [("CallSid", "CA" + "a" * 32), *((f"x{i}", "") for i in range(500))]
    answer = post_pairs(app.test_client(), path, pairs)
    assert answer.status_code == 400
    assert answer.mimetype == "text/plain"
    empty = post_raw(app.test_client(), path, b"&" * 20_000, signed=False)  # 20 kB of nothing but separators
    assert empty.status_code == 400
    assert empty.mimetype == "text/plain"
    assert signature_refusals(caplog) == []


def test_a_twilio_sized_signed_webhook_still_works(app: Flask) -> None:
    call = [
        ("CallSid", "CA" + "b" * 32),
        ("AccountSid", ACCOUNT_SID),
        ("From", CITIZEN),
        ("To", "+18005550100"),
        ("Caller", CITIZEN),
        ("Called", "+18005550100"),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("ApiVersion", "2010-04-01"),
        ("CallerCountry", "IN"),
        ("CallerState", ""),
        ("CallerCity", ""),
        ("CallerZip", ""),
        ("CalledCountry", "US"),
        ("CalledState", "CA"),
        ("CalledCity", ""),
        ("CalledZip", ""),
        ("FromCountry", "IN"),
        ("FromState", ""),
        ("FromCity", ""),
        ("FromZip", ""),
        ("ToCountry", "US"),
        ("ToState", "CA"),
        ("ToCity", ""),
        ("ToZip", ""),
        ("StirVerstat", "TN-Validation-Passed-A"),
        *((f"AddOns{i}", "x" * 100) for i in range(20)),
    ]
    answer = post_pairs(app.test_client(), "/twilio/voice", call)
    assert answer.status_code == 200, answer.data[:300]
    assert answer.mimetype == "text/xml", answer.data[:300]
    message = [
        ("MessageSid", "SM" + "c" * 32),
        ("AccountSid", ACCOUNT_SID),
        ("From", CITIZEN),
        ("To", "+18005550100"),
        ("Body", "नमस्ते " * 200),
        ("NumMedia", "0"),
        ("NumSegments", "3"),
    ]
    assert post_pairs(app.test_client(), "/twilio/sms", message).status_code == 200


# -- 2. sign-in throttling that outsiders cannot turn into a lockout --------------------------------


def from_address(app: Flask, address: str) -> Console:
    console = Console(app)
    console.client.environ_base["REMOTE_ADDR"] = address
    return console


def attack(app: Flask, username: str, tries: int) -> list[int]:
    """Wrong passwords for `username`, spread over six addresses; the answers."""
    attackers = [from_address(app, f"203.0.113.{n}") for n in range(6)]
    return [attackers[n % 6].sign_in(username, f"guess {n}").status_code for n in range(tries)]


def test_an_outsider_cannot_keep_a_user_out_of_their_own_browser(app: Flask) -> None:
    add_user(engine_of(app), "admin", Role.ADMIN)
    desk = from_address(app, "198.51.100.7")  # the administrator's own browser, signed in there before
    assert desk.sign_in("admin").status_code == 302
    desk.post("/console/sign-out")
    answers = attack(app, "admin", 30)
    assert answers[:20] == [401] * 20
    assert set(answers[20:]) == {429}
    assert from_address(app, "198.51.100.7").sign_in("admin").status_code == 429  # a stranger's browser waits
    assert desk.sign_in("admin").status_code == 302  # the administrator's does not
    assert desk.get("/console/", follow_redirects=True).status_code == 200


def test_a_trusted_browser_guessing_is_throttled_too(app: Flask) -> None:
    add_user(engine_of(app), "asha", Role.AGENT)
    desk = Console(app)
    assert desk.sign_in("asha").status_code == 302
    desk.post("/console/sign-out")
    answers = [desk.sign_in("asha", f"guess {n}").status_code for n in range(8)]
    assert answers == [401] * 5 + [429] * 3
    assert desk.sign_in("asha").status_code == 429


def test_a_browser_trusted_for_one_user_or_a_forged_one_is_a_stranger_for_another(app: Flask) -> None:
    add_user(engine_of(app), "asha", Role.AGENT)
    add_user(engine_of(app), "admin", Role.ADMIN)
    desk = Console(app)
    assert desk.sign_in("asha").status_code == 302
    desk.post("/console/sign-out")
    attack(app, "admin", 25)
    assert desk.sign_in("admin").status_code == 429
    trusted = desk.client.get_cookie(TRUSTED_COOKIE, path="/console")
    assert trusted is not None
    attack(app, "asha", 25)
    forged = Console(app)
    forged.client.set_cookie(
        TRUSTED_COOKIE, trusted.value[:-1] + ("0" if trusted.value[-1] != "0" else "1"), path="/console"
    )
    assert forged.sign_in("asha").status_code == 429
    assert desk.sign_in("asha").status_code == 302


# -- 3. a signed webhook of another Twilio account ---------------------------------------------------


def test_a_signed_webhook_of_another_account_is_refused_and_changes_nothing(
    app: Flask, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    theirs = "AC" + "f" * 32
    call = [("CallSid", "CA" + "d" * 32), ("From", CITIZEN), ("To", "+18005550100"), ("Direction", "inbound")]
    message = [("MessageSid", "SM" + "d" * 32), ("From", CITIZEN), ("To", "+18005550100"), ("Body", "YES")]
    for path, form in (("/twilio/voice", call), ("/twilio/sms", message)):
        answer = post_pairs(client, path, [*form, ("AccountSid", theirs)])
        assert answer.status_code == 403, (path, answer.data)
        assert answer.mimetype == "text/plain", (path, answer.data)
    assert redis_client.dbsize() == 0
    assert rows_of(app, CallLog) == rows_of(app, SmsLog) == 0
    assert any("another account" in r.getMessage() for r in caplog.records)
    # Ours, or none given (the signature alone then): answered.
    assert post_pairs(client, "/twilio/voice", [*call, ("AccountSid", ACCOUNT_SID)]).status_code == 200
    assert post_pairs(client, "/twilio/sms", message).status_code == 200
    assert rows_of(app, SmsLog) == 1


def rows_of(app: Flask, table: type) -> int:
    with Session(app.extensions["sewamitra"].engine) as session:
        return session.exec(select(func.count()).select_from(table)).one()


# -- 4. one Idempotency-Key, one request --------------------------------------------------------------


def test_the_same_idempotency_key_with_another_request_is_refused(app: Flask) -> None:
    portal = Api(app, token(app, ApiRole.PARTNER, "up-portal"))
    key = {"Idempotency-Key": "portal-form-78"}
    first = portal.post("/api/v1/requests", LUCKNOW_REQUEST, **key)
    assert first.status_code == 201
    # The same request written another way (the number spelt out, spaces round the name): the same filing.
    same = {**LUCKNOW_REQUEST, "phone": "+91 98765-43210", "name": "  Asha Verma "}
    again = portal.post("/api/v1/requests", same, **key)
    assert again.status_code == 200
    assert again.get_json()["number"] == first.get_json()["number"]
    other = portal.post("/api/v1/requests", {**LUCKNOW_REQUEST, "service": "electrician"}, **key)
    assert other.status_code == 422, other.get_json()
    error = other.get_json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert "another request" in error["message"]
    assert len(requests_in(app)) == 1
    # Open311, with that client's key: the same rule, in GeoReport's errors.
    form = {
        "service_code": "electrician",
        "attribute[pincode]": "226001",
        "phone": "9876543210",
        "api_key": token(app, ApiRole.PARTNER, "city-311"),
    }
    geo = {"Idempotency-Key": "311-form-5"}
    filed = app.test_client().post("/open311/v2/requests.json", data=form, headers=geo)
    assert filed.status_code == 200
    refiled = app.test_client().post("/open311/v2/requests.json", data=form, headers=geo)
    assert refiled.get_json() == filed.get_json()
    changed = app.test_client().post("/open311/v2/requests.json", data={**form, "phone": "9876500000"}, headers=geo)
    assert changed.status_code == 422
    [problem] = changed.get_json()
    assert problem["code"] == 422
    assert "another request" in problem["description"]
    assert len(requests_in(app)) == 2


# -- 5. Open311 refuses the fields only the helpline sets --------------------------------------------

GEO_FORM = {
    "service_code": "electrician",
    "attribute[pincode]": "226001",
    "phone": "9876543210",
    "first_name": "Ravi",
    "description": "The fan does not run.",
    "attribute[language]": "en",
}
SET_BY_THE_HELPLINE = {
    "status": "closed",
    "worker": "7",
    "service_request_id": "1234567",
    "status_notes": "done already",
    "agency_responsible": "Gomti Home Services",
    "requested_datetime": "2026-01-01T00:00:00Z",
    "attribute[status]": "closed",
    "token": "x",
    "worker_id": "7",
}


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_open311_refuses_fields_that_would_set_a_requests_state(app: Flask, fmt: str) -> None:
    api_key = token(app, ApiRole.PARTNER, "city-311")
    for name, value in SET_BY_THE_HELPLINE.items():
        answer = app.test_client().post(
            f"/open311/v2/requests.{fmt}", data={**GEO_FORM, "api_key": api_key, name: value}
        )
        assert answer.status_code == 400, (name, answer.get_data(as_text=True))
        assert name in answer.get_data(as_text=True), name  # the GeoReport error names the field
    assert requests_in(app) == []
    together = app.test_client().post(
        "/open311/v2/requests.json", data={**GEO_FORM, "api_key": api_key, **SET_BY_THE_HELPLINE}
    )
    assert {item["field"] for item in together.get_json()} == set(SET_BY_THE_HELPLINE)
    assert all(item["code"] == 400 for item in together.get_json())
    # GeoReport's own fields, and an unknown one that changes nothing, are still taken.
    standard = {
        "email": "ravi@example.in",
        "device_id": "d-1",
        "account_id": "a-1",
        "last_name": "Shankar",
        "media_url": "https://example.in/fan.jpg",
        "jurisdiction_id": "",
        "address_string": "12 Hazratganj",
        "app_version": "4.2",
    }
    filed = app.test_client().post(f"/open311/v2/requests.{fmt}", data={**GEO_FORM, "api_key": api_key, **standard})
    assert filed.status_code == 200, filed.get_data(as_text=True)
    assert len(requests_in(app)) == 1
