"""What a gunicorn worker serves (`sewamitra.app.Helpline`): every path answered as `create_app`'s one
app answers it, the console's and API's part built only when a request first asks for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from twilio.request_validator import RequestValidator
from werkzeug.test import Client, TestResponse

from core.settings import Settings
from devtools.plivo_simulator import plivo_headers
from sewamitra.app import Helpline
from tests.factories import ACCOUNT_SID, AUTH_TOKEN, PLIVO_AUTH_ID, PUBLIC_URL, call_form

pytestmark = pytest.mark.both_platforms
SECRETS = {
    "twilio": {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN},
    "plivo": {"PLIVO_AUTH_ID": PLIVO_AUTH_ID, "PLIVO_AUTH_TOKEN": AUTH_TOKEN},
}

# Paths of every part, and none: the answers must be the same, byte for byte where no token or
# session makes them differ.
ASKED = [
    ("GET", "/healthz"),
    ("POST", "/healthz"),  # 405, with Allow
    ("GET", "/privacy?lang=en"),
    ("GET", "/console/sign-in"),
    ("GET", "/console/"),  # to the sign-in page
    ("GET", "/console/nowhere"),
    ("GET", "/api/v1/slots"),  # no token: 401 in JSON
    ("GET", "/api/v1/nowhere"),
    ("GET", "/open311/v2/discovery.json"),
    ("GET", "/open311/v2/nowhere.json"),
    ("GET", "/nowhere"),
    ("GET", "/"),
    ("GET", "/{platform}/voice/nowhere"),
    ("GET", "/{platform}/voice"),  # a webhook asked with the wrong method
    ("POST", "/{platform}/voice"),  # unsigned: 403
    ("GET", "/static/nothing.css"),
]
COMPARED_HEADERS = ("Content-Type", "Location", "Allow", "Content-Security-Policy", "Cache-Control", "X-Frame-Options")


def signed(platform: str, path: str, form: dict[str, str]) -> dict[str, str]:
    if platform == "plivo":
        return plivo_headers(AUTH_TOKEN, PUBLIC_URL + path, form)
    return {"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + path, form)}


def ask(client: Client, method: str, path: str) -> TestResponse:
    return client.open(path, method=method)


def same_answer(ours: TestResponse, theirs: TestResponse) -> None:
    assert ours.status_code == theirs.status_code
    assert {h: ours.headers.get(h) for h in COMPARED_HEADERS} == {h: theirs.headers.get(h) for h in COMPARED_HEADERS}
    if ours.mimetype != "text/html":  # a page carries its session's CSRF token
        assert ours.get_data() == theirs.get_data()


def test_every_part_answers_as_the_one_app_does(app: Flask, app_settings: Settings, telephony_platform: str) -> None:
    helpline = Helpline(app_settings)
    ours, theirs = Client(helpline), app.test_client()
    try:
        for method, path in ASKED:
            path = path.format(platform=telephony_platform)
            same_answer(ask(ours, method, path), ask(theirs, method, path))
        voice = f"/{telephony_platform}/voice"
        form = call_form(telephony_platform, "7")
        first = ours.post(voice, data=form, headers=signed(telephony_platform, voice, form))
        assert first.status_code == 200
        assert (
            first.get_data()
            == theirs.post(voice, data=form, headers=signed(telephony_platform, voice, form)).get_data()
        )
    finally:
        helpline.webhooks.extensions["sewamitra"].engine.dispose()


def test_a_call_and_the_health_check_leave_the_back_office_unbuilt(
    app_settings: Settings, telephony_platform: str
) -> None:
    built: list[bool] = []
    helpline = Helpline(app_settings, built=lambda: built.append(True))
    client = Client(helpline)
    try:
        voice = f"/{telephony_platform}/voice"
        form = call_form(telephony_platform, "8")
        assert client.post(voice, data=form, headers=signed(telephony_platform, voice, form)).status_code == 200
        assert client.get("/healthz").status_code == 200
        assert client.get(f"/{telephony_platform}/voice/nowhere").status_code == 404
        assert not helpline.back_office_built
        assert built == []

        assert client.get("/console/sign-in").status_code == 200
        assert client.get("/api/v1/slots").status_code == 401
        assert helpline.back_office_built
        assert built == [True]
        runtime = helpline.back_office().extensions["sewamitra"]
        assert runtime is helpline.webhooks.extensions["sewamitra"]  # one set of connections
    finally:
        helpline.webhooks.extensions["sewamitra"].engine.dispose()


# What the worker's process imports, in a process of its own (this one has imported everything).
IMPORTS = """
import sys
from werkzeug.test import Client
from core.settings import load_settings
from sewamitra.app import Helpline

client = Client(Helpline(load_settings()))
# croniter: rq.cron's, the scheduler's alone; plivo (with lxml) and twilio: the SDKs, the REST clients'
watched = ("console", "api", "flask_babel", "croniter", "plivo", "lxml", "twilio")
parts = lambda: sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in watched})
print(client.get("/{platform}/voice/nowhere").status_code, parts())
print(client.get("/privacy").status_code, parts())
"""


def test_a_worker_serving_calls_never_imports_the_console_the_api_or_plivos_sdk(
    app_settings: Settings, telephony_platform: str, tmp_path: Path
) -> None:
    environ = {
        **os.environ,
        "SEWAMITRA_CONFIG": str(Path(__file__).parents[2] / "config.yaml"),
        "SEWAMITRA_DATA_DIR": str(tmp_path / "var"),
        "SEWAMITRA_DATABASE_URL": app_settings.sqlalchemy_url,
        "SEWAMITRA_TELEPHONY__PLATFORM": telephony_platform,
        "SEWAMITRA_PUBLIC_URL": PUBLIC_URL,
        "SEWAMITRA_SECRET_KEY": "s" * 40,
        **SECRETS[telephony_platform],
    }
    script = IMPORTS.replace("{platform}", telephony_platform)
    done = subprocess.run([sys.executable, "-c", script], env=environ, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    # Twilio's TwiML is written with its SDK's builders; Plivo XML is written as text, and neither the
    # plivo package (its REST client, lxml) nor Twilio's is loaded to answer Plivo's webhooks.
    sdk = ["twilio"] if telephony_platform == "twilio" else []
    assert done.stdout.splitlines() == [f"404 {sdk}", f"200 {['api', 'console', 'flask_babel', *sdk]}"]
