"""A visit slot booked by another system (the JSON API, Open311) or by an agent in the console, at 10:00
in Lucknow on 3 December 2026 (the app's clock frozen): the open slots are listed, a good key books
its slot, a past, closed or nonsense one is refused saying which are open, and nothing is filed then."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from core.clock import FrozenClock
from core.settings import Open311, Settings
from sewamitra.app import create_app
from storage.models import ApiRole, Role, ServiceRequest
from tests.console import Console, add_user, rows
from tests.factories import ALWAYS_OPEN, LUCKNOW_REQUEST, Api, engine_of, token, with_hours

OPEN_AT_TEN = [
    "2026-12-03/afternoon",
    "2026-12-03/evening",
    "2026-12-04/morning",
    "2026-12-04/afternoon",
    "2026-12-04/evening",
]


def ist(day: int, hour: int) -> datetime:
    return datetime(2026, 12, day, hour, tzinfo=UTC) - timedelta(hours=5, minutes=30)


@pytest.fixture
def app(helpline_settings: Settings) -> Flask:
    settings = with_hours(helpline_settings, **ALWAYS_OPEN)
    settings = settings.model_copy(update={"open311": Open311(jurisdiction_id="up.gov.in")})
    return create_app(settings, FrozenClock(ist(3, 10)))


@pytest.fixture
def portal(app: Flask) -> Api:
    return Api(app, token(app, ApiRole.PARTNER, "up-portal"))


# -- the JSON API --------------------------------------------------------------------------------------


def test_the_api_lists_the_slots_open_now(portal: Api) -> None:
    answer = portal.get("/api/v1/slots")
    assert answer.status_code == 200
    items = answer.get_json()["items"]
    assert [item["key"] for item in items] == OPEN_AT_TEN
    assert items[-1] == {
        "key": "2026-12-04/evening",
        "starts_at": "2026-12-04T16:00:00+05:30",
        "ends_at": "2026-12-04T20:00:00+05:30",
        "name_en": "tomorrow evening (16:00-20:00)",
        "name_hi": "कल शाम (16:00-20:00)",
    }
    assert Api(portal.client.application, None).get("/api/v1/slots").status_code == 401


def test_a_portal_books_tomorrow_evening_and_is_shown_its_slot(app: Flask, portal: Api) -> None:
    answer = portal.post("/api/v1/requests", {**LUCKNOW_REQUEST, "slot": "2026-12-04/evening"})
    assert answer.status_code == 201, answer.get_json()
    shown = answer.get_json()["slot"]
    assert (shown["key"], shown["starts_at"], shown["ends_at"]) == (
        "2026-12-04/evening",
        "2026-12-04T16:00:00+05:30",
        "2026-12-04T20:00:00+05:30",
    )
    [made] = rows(app, ServiceRequest)
    assert (made.slot_starts_at, made.slot_ends_at) == (ist(4, 16), ist(4, 20))
    listed = portal.get("/api/v1/requests").get_json()["items"]
    assert listed[0]["slot"]["key"] == "2026-12-04/evening"


def test_without_a_slot_the_visit_is_as_soon_as_possible(app: Flask, portal: Api) -> None:
    answer = portal.post("/api/v1/requests", LUCKNOW_REQUEST)
    assert answer.status_code == 201
    assert answer.get_json()["slot"] is None


@pytest.mark.parametrize(
    "slot",
    [
        "2026-12-03/morning",  # begun
        "2026-12-02/evening",  # yesterday
        "2026-12-05/morning",  # past the two days that can be booked
        "2026-12-04/night",  # no such period
        "2026-13-45/evening",
        "tomorrow evening",
        "x" * 40,
    ],
)
def test_a_slot_not_open_is_refused_naming_the_open_ones(app: Flask, portal: Api, slot: str) -> None:
    answer = portal.post("/api/v1/requests", {**LUCKNOW_REQUEST, "slot": slot})
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    assert error["code"] == "slot_not_open"
    assert "not a slot open for booking" in error["message"]
    assert ", ".join(OPEN_AT_TEN) in error["message"]
    assert set(error["fields"]) == {"slot"}
    assert rows(app, ServiceRequest) == []


def test_a_holiday_is_not_offered_and_not_taken(helpline_settings: Settings) -> None:
    closed = helpline_settings.slots.model_copy(update={"closed_dates": (ist(4, 12).date(),)})
    app = create_app(helpline_settings.model_copy(update={"slots": closed}), FrozenClock(ist(3, 10)))
    portal = Api(app, token(app, ApiRole.PARTNER, "up-portal"))
    assert [item["key"] for item in portal.get("/api/v1/slots").get_json()["items"]] == OPEN_AT_TEN[:2]
    assert portal.post("/api/v1/requests", {**LUCKNOW_REQUEST, "slot": "2026-12-04/evening"}).status_code == 422


def test_the_openapi_document_lists_the_slots_and_the_requests_slot(app: Flask) -> None:
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    assert "get" in document["paths"]["/api/v1/slots"]
    schemas = document["components"]["schemas"]
    assert "slot" in schemas["RequestCreate"]["properties"]
    assert set(schemas["SlotShown"]["properties"]) == {"key", "starts_at", "ends_at", "name_en", "name_hi"}


# -- Open311 ---------------------------------------------------------------------------------------------

BY_PINCODE = {
    "service_code": "electrician",
    "attribute[pincode]": "226001",
    "phone": "9876543210",
    "attribute[language]": "en",
}


def test_open311_declares_the_slot_attribute_with_the_open_slots(app: Flask) -> None:
    definition = app.test_client().get("/open311/v2/services/plumber.json").get_json()
    [slot] = [a for a in definition["attributes"] if a["code"] == "slot"]
    assert slot["datatype"] == "singlevaluelist"
    assert [value["key"] for value in slot["values"]] == OPEN_AT_TEN
    assert slot["values"][0]["name"] == "today afternoon (12:00-16:00)"


def test_open311_books_a_slot_and_refuses_a_past_one(app: Flask) -> None:
    key = token(app, ApiRole.PARTNER, "up-portal")
    client = app.test_client()
    good = client.post(
        "/open311/v2/requests.json", data={**BY_PINCODE, "api_key": key, "attribute[slot]": OPEN_AT_TEN[2]}
    )
    assert good.status_code == 200, good.get_json()
    [made] = rows(app, ServiceRequest)
    assert (made.slot_starts_at, made.slot_ends_at) == (ist(4, 8), ist(4, 12))
    [shown] = client.get(f"/open311/v2/requests/{made.number}.json").get_json()
    assert shown["expected_datetime"] == "2026-12-04T02:30:00+00:00"  # 08:00 in Lucknow

    past = client.post(
        "/open311/v2/requests.json", data={**BY_PINCODE, "api_key": key, "attribute[slot]": "2026-12-03/morning"}
    )
    assert past.status_code == 400
    [error] = past.get_json()
    assert error["field"] == "attribute[slot]"
    assert OPEN_AT_TEN[0] in error["description"]
    assert len(rows(app, ServiceRequest)) == 1


# -- the console -----------------------------------------------------------------------------------------


def agent(app: Flask, language: str = "en") -> Console:
    add_user(engine_of(app), f"asha-{language}", Role.AGENT)
    console = Console(app)
    console.sign_in(f"asha-{language}")
    console.post("/console/language", {"language": language, "back": "/console/"})
    return console


def slot_options(html: str) -> list[tuple[str, str]]:
    select = re.search(r'<select name="slot" id="slot">(.*?)</select>', html, re.S)
    assert select, html
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select.group(1))


def test_the_new_request_form_offers_the_open_slots_in_english_and_hindi(app: Flask) -> None:
    english = slot_options(agent(app).get("/console/callers/new").get_data(as_text=True))
    assert english[0] == ("", "As soon as possible")
    assert english[1:] == [
        ("2026-12-03/afternoon", "today afternoon (12:00-16:00)"),
        ("2026-12-03/evening", "today evening (16:00-20:00)"),
        ("2026-12-04/morning", "tomorrow morning (08:00-12:00)"),
        ("2026-12-04/afternoon", "tomorrow afternoon (12:00-16:00)"),
        ("2026-12-04/evening", "tomorrow evening (16:00-20:00)"),
    ]
    hindi = slot_options(agent(app, "hi").get("/console/callers/new").get_data(as_text=True))
    assert hindi[0] == ("", "जल्द से जल्द")
    assert hindi[-1] == ("2026-12-04/evening", "कल शाम (16:00-20:00)")


def test_an_agent_books_a_slot_and_the_request_page_and_list_say_it(app: Flask) -> None:
    console = agent(app)
    html = console.get("/console/callers/new").get_data(as_text=True)
    form_id = re.search(r'name="form_id" value="([^"]+)"', html)
    assert form_id
    form = {"phone": "98765 43210", "service": "plumber", "pincode": "226001", "language": "en"}
    form |= {"slot": "2026-12-04/evening", "form_id": form_id.group(1)}
    response = console.post("/console/callers/requests", form)
    assert response.status_code == 302
    [made] = rows(app, ServiceRequest)
    assert (made.slot_starts_at, made.slot_ends_at) == (ist(4, 16), ist(4, 20))
    detail = console.get(f"/console/requests/{made.number}").get_data(as_text=True)
    assert '<td colspan="3" id="visit-slot">tomorrow evening (16:00-20:00)</td>' in detail
    listed = console.get("/console/requests").get_data(as_text=True)
    assert '<td class="visit">tomorrow evening (16:00-20:00)</td>' in listed


def test_a_slot_gone_by_keeps_the_form_and_says_so(app: Flask) -> None:
    console = agent(app)
    html = console.get("/console/callers/new").get_data(as_text=True)
    form_id = re.search(r'name="form_id" value="([^"]+)"', html)
    assert form_id
    form = {"phone": "98765 43210", "service": "plumber", "pincode": "226001", "language": "en"}
    response = console.post(
        "/console/callers/requests", {**form, "slot": "2026-12-03/morning", "form_id": form_id.group(1)}
    )
    assert response.status_code == 400
    assert "That visit slot is no longer open; choose another." in response.get_data(as_text=True)
    assert rows(app, ServiceRequest) == []
