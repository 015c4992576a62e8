"""The privacy notice at /privacy: anyone may read it, in Hindi or English, and its figures are the
ones config.yaml gives the retention job."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from core.settings import Settings
from sewamitra.app import create_app


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    retention = helpline_settings.privacy.retention.model_copy(
        update={"citizens": 400, "sms_bodies": 123, "call_notes": 61}
    )
    privacy = helpline_settings.privacy.model_copy(
        update={"retention": retention, "grievance_email": "dpo@up.example.gov.in", "erasure_notice_hours": 36}
    )
    return helpline_settings.model_copy(update={"privacy": privacy})


def test_a_citizen_reads_the_notice_in_hindi_without_signing_in(client: FlaskClient, app_settings: Settings) -> None:
    page = client.get("/privacy")

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert '<html lang="hi">' in text
    assert "निजता सूचना" in text
    assert "आख़िरी संपर्क के 400 दिन बाद तक" in text
    assert "<td>123 दिन</td>" in text
    assert "एजेंटों और सुपरवाइज़रों के नोट</th><td>कॉल के 61 दिन बाद तक" in text  # staff's notes about a call
    assert f"<strong>{app_settings.helpline_public_number}</strong>" in text  # the number the SMS give
    assert "dpo@up.example.gov.in" in text
    assert "मिटवाना" in text  # how to ask for erasure
    assert "मुख्य सूची में 5 दबाएँ" in text  # ... by the phone menu
    assert "मिटाए जाने से 36 घंटे पहले आपके मोबाइल पर SMS" in text  # the notice before an erasure (DPDP Rules)
    assert "/privacy?lang=en" in text


def test_the_notice_in_english_gives_the_same_figures(client: FlaskClient) -> None:
    text = client.get("/privacy?lang=en").get_data(as_text=True)

    assert '<html lang="en">' in text
    assert "400 days after your last contact" in text
    assert "<td>123 days</td>" in text
    assert "Notes by agents and supervisors about your calls</th><td>61 days after the call" in text
    assert "<td>365 days</td>" in text  # records of calls, as config.yaml ships
    assert "to have it erased" in text
    assert "press 5 at the main menu" in text
    assert "an SMS to your mobile tells you,\n36 hours ahead, from when" in text
    assert "Data\nProtection Board of India" in text


@pytest.mark.parametrize("asked", ["fr", "", "../../etc/passwd", "hi\x00", "EN" * 500])
def test_any_other_language_asked_gets_the_hindi_notice(client: FlaskClient, asked: str) -> None:
    page = client.get("/privacy", query_string={"lang": asked})

    assert page.status_code == 200
    assert '<html lang="hi">' in page.get_data(as_text=True)


def test_with_the_notice_before_an_erasure_turned_off_the_page_promises_none(app_settings: Settings) -> None:
    off = app_settings.model_copy(
        update={"privacy": app_settings.privacy.model_copy(update={"erasure_notice_hours": 0})}
    )
    app = create_app(off)
    try:
        for language in ("hi", "en"):
            text = app.test_client().get(f"/privacy?lang={language}").get_data(as_text=True)
            assert 'id="rights-by-phone"' in text  # the whole page
            assert 'id="erasure-notice"' not in text
    finally:
        app.extensions["sewamitra"].engine.dispose()
