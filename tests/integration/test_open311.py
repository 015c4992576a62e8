"""Open311 GeoReport v2 as a city 311 system or a state portal uses it, in XML and JSON, against
the real app, a real database of each kind, the real Redis and the Twilio sandbox: the catalogue,
filing by PIN code, by point or by address, the request dispatched like a phone booking and read
out when the citizen rings; following requests by id, service, status and a 90-day window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, col, select
from werkzeug.test import TestResponse

from core import pincodes
from core.settings import Open311, Settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import jobs
from storage.db import session_scope
from storage.models import ApiRole, AuditEvent, Channel, Offer, ServiceRequest
from tests.factories import (
    AGENCY,
    ALWAYS_OPEN,
    ENGLISH_DIGITS,
    add_worker,
    call,
    engine_of,
    requests_in,
    spoken_digits,
    token,
    with_hours,
    work_queued_jobs,
)

CITIZEN = "+919876543210"
BY_PINCODE = {
    "service_code": "electrician",
    "attribute[pincode]": "226001",
    "phone": "9876543210",
    "first_name": "Ravi",
    "last_name": "Shankar",
    "description": "The fan does not run.",
    "address_string": "12 Hazratganj",
    "attribute[language]": "en",
}


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    """The helpline, open round the clock, serving the jurisdiction up.gov.in."""
    settings = with_hours(helpline_settings, **ALWAYS_OPEN)
    return settings.model_copy(update={"open311": Open311(jurisdiction_id="up.gov.in")})


@pytest.fixture
def api_key(app: Flask) -> str:
    return token(app, ApiRole.PARTNER, "up-portal")


def file(app: Flask, form: dict[str, str], fmt: str = "json", **headers: str) -> TestResponse:
    return app.test_client().post(f"/open311/v2/requests.{fmt}", data=form, headers=headers)


def xml(response: TestResponse) -> ElementTree.Element:
    assert response.content_type == "text/xml; charset=utf-8"
    assert response.get_data().startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return ElementTree.fromstring(response.get_data())


def georeport_errors(response: TestResponse) -> dict[str, str]:
    """{field: description} of a GeoReport error list, in either format."""
    if response.content_type.startswith("text/xml"):
        return {e.findtext("field") or "": e.findtext("description") or "" for e in xml(response).iter("error")}
    body = response.get_json()
    assert all(item["code"] == response.status_code for item in body), body
    return {item["field"] or "": item["description"] for item in body}


# -- the catalogue ------------------------------------------------------------------------------------


def test_the_service_list_in_xml_and_json(app: Flask, settings: Settings) -> None:
    client = app.test_client()
    services = xml(client.get("/open311/v2/services.xml"))
    assert services.tag == "services"
    codes = [s.findtext("service_code") for s in services.iter("service")]
    assert codes == [s.code for s in settings.services]
    first = services.find("service")
    assert first is not None
    assert first.findtext("metadata") == "true"
    assert first.findtext("type") == "realtime"
    listed = client.get("/open311/v2/services.json").get_json()
    assert [s["service_code"] for s in listed] == codes
    assert listed[0]["service_name"] == "Plumber"


def test_a_service_definition_describes_the_pin_code_attribute(app: Flask) -> None:
    client = app.test_client()
    definition = client.get("/open311/v2/services/plumber.json").get_json()
    assert definition["service_code"] == "plumber"
    assert [a["code"] for a in definition["attributes"]] == ["pincode", "language", "preferred_time", "slot"]
    code = xml(client.get("/open311/v2/services/plumber.xml")).find("attributes/attribute/code")
    assert code is not None
    assert code.text == "pincode"
    missing = client.get("/open311/v2/services/astrologer.xml")
    assert missing.status_code == 404
    assert "service_code" in georeport_errors(missing)
    assert client.get("/open311/v2/services.yaml").status_code == 404


@pytest.fixture
def settings(app: Flask) -> Settings:
    return app.extensions["sewamitra"].settings


# -- filing ------------------------------------------------------------------------------------------


def test_a_request_filed_by_pin_code_is_texted_and_offered_to_the_nearest_worker(
    app: Flask, api_key: str, sandbox: TwilioSandbox, jobs_run: None
) -> None:
    electrician = add_worker(engine_of(app), "Ramesh Kumar", "+919415000001", km_north=1, skills=("electrician",))
    add_worker(engine_of(app), "Suresh Yadav", "+919415000002", km_north=1, skills=("plumber",))
    jobs.rebuild_index()

    response = file(app, {**BY_PINCODE, "api_key": api_key}, "xml")
    assert response.status_code == 200, response.get_data(as_text=True)
    receipt = xml(response)
    assert receipt.tag == "service_requests"
    number = receipt.findtext("request/service_request_id")
    assert "Lucknow" in (receipt.findtext("request/service_notice") or "")
    [stored] = requests_in(app)
    assert (stored.number, stored.channel, stored.filed_by) == (number, Channel.OPEN311, "api:up-portal")
    assert (stored.contact_name, stored.address_note, stored.language) == ("Ravi Shankar", "12 Hazratganj", "en")

    work_queued_jobs(app)
    assert any(m["to"] == CITIZEN and number in m["body"] for m in sandbox.messages)
    assert any(m["to"] == "+919415000001" and number in m["body"] for m in sandbox.messages)
    with Session(engine_of(app)) as session:
        assert session.exec(select(Offer.worker_id)).all() == [electrician]
    followed = app.test_client().get(f"/open311/v2/requests/{number}.json").get_json()
    assert followed[0]["status"] == "open"
    assert followed[0]["status_notes"].startswith("offered: ")


def test_a_request_filed_by_point_or_by_address_is_placed_at_its_pin_code(app: Flask, api_key: str) -> None:
    by_point = {"service_code": "plumber", "lat": "27.1767", "long": "78.0081", "phone": CITIZEN, "api_key": api_key}
    response = file(app, by_point)
    assert response.status_code == 200, response.get_json()
    by_address = {"service_code": "plumber", "address_string": "4 Civil Lines, Prayagraj 211 001", "phone": CITIZEN}
    response = file(app, by_address, Authorization=f"Bearer {api_key}")
    assert response.status_code == 200, response.get_json()
    agra, prayagraj = requests_in(app)
    assert (agra.district, agra.latitude, agra.longitude) == ("AGRA", 27.1767, 78.0081)
    assert (prayagraj.pincode, prayagraj.district) == ("211001", "PRAYAGRAJ")


def test_the_citizen_hears_the_request_read_out_when_they_ring(app: Flask, api_key: str) -> None:
    number = file(app, {**BY_PINCODE, "api_key": api_key}).get_json()[0]["service_request_id"]
    transcript = call(app, "2")  # greeted in English (the language the request was filed in); 2: track
    assert transcript.said("You have 1 open requests.")
    assert transcript.said(f"Request number {spoken_digits(number, ENGLISH_DIGITS)}, Electrician:")


REFUSED = [
    ({**BY_PINCODE}, 401, "api_key"),
    ({**BY_PINCODE, "api_key": "sm_" + "x" * 43}, 401, "api_key"),
    ({**BY_PINCODE, "service_code": ""}, 400, "service_code"),
    ({**BY_PINCODE, "service_code": "astrologer"}, 404, "service_code"),
    ({**BY_PINCODE, "attribute[pincode]": "110001"}, 400, "attribute[pincode]"),
    ({**BY_PINCODE, "attribute[pincode]": "", "address_string": "", "lat": "north"}, 400, "lat"),
    ({**BY_PINCODE, "attribute[pincode]": "", "address_string": "", "lat": "26.8"}, 400, "long"),
    ({**BY_PINCODE, "attribute[pincode]": "", "address_string": "", "lat": "nan", "long": "80.9"}, 400, "lat"),
    ({**BY_PINCODE, "attribute[pincode]": "", "address_string": "Hazratganj, Lucknow"}, 400, "address_string"),
    ({**BY_PINCODE, "phone": ""}, 400, "phone"),
    ({**BY_PINCODE, "attribute[language]": "fr"}, 400, "attribute[language]"),
    ({**BY_PINCODE, "description": "x" * 4001}, 400, "description"),
    ({**BY_PINCODE, "jurisdiction_id": "delhi.gov.in"}, 404, "jurisdiction_id"),
]


@pytest.mark.parametrize(("form", "status", "field"), REFUSED, ids=[f"{s}-{f}" for _, s, f in REFUSED])
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_refused_request_names_the_field_and_stores_nothing(
    app: Flask, api_key: str, form: dict[str, str], status: int, field: str, fmt: str
) -> None:
    keyed = form if field == "api_key" else {"api_key": api_key, **form}
    response = file(app, keyed, fmt)
    assert response.status_code == status, response.get_data(as_text=True)
    assert field in georeport_errors(response)
    assert requests_in(app) == []


def test_a_field_given_twice_a_json_body_or_an_agencys_token_is_refused(app: Flask, api_key: str) -> None:
    client = app.test_client()
    twice = client.post(
        "/open311/v2/requests.json",
        data=f"api_key={api_key}&service_code=plumber&service_code=painter"
        "&attribute%5Bpincode%5D=226001&phone=9876543210",
        content_type="application/x-www-form-urlencoded",
    )
    assert twice.status_code == 400
    assert georeport_errors(twice) == {"service_code": "given more than once"}
    as_json = client.post("/open311/v2/requests.json", json={**BY_PINCODE, "api_key": api_key})
    assert as_json.status_code == 400
    agency = token(app, ApiRole.PROVIDER, "gomti", provider=AGENCY)
    refused = file(app, {**BY_PINCODE, "api_key": agency})
    assert refused.status_code == 403
    assert "api_key" in georeport_errors(refused)
    assert requests_in(app) == []
    with Session(engine_of(app)) as session:
        [audited] = session.exec(select(AuditEvent).where(AuditEvent.action == "access.refused")).all()
    assert (audited.actor, audited.detail["path"]) == ("api:gomti", "/open311/v2/requests.json")


# -- following requests ---------------------------------------------------------------------------------


def test_anyone_reads_the_status_and_locality_but_only_the_filer_the_address_and_description(
    app: Flask, api_key: str
) -> None:
    number = file(app, {**BY_PINCODE, "api_key": api_key}).get_json()[0]["service_request_id"]
    [public] = app.test_client().get(f"/open311/v2/requests/{number}.json").get_json()
    gpo = pincodes.lookup("226001")
    assert gpo is not None
    assert public["address"] == "Lucknow 226001"
    assert public["description"] is None
    assert public["zipcode"] == "226001"
    assert (public["lat"], public["long"]) == (gpo.latitude, gpo.longitude)
    assert public["agency_responsible"] == app.extensions["sewamitra"].settings.helpline_name
    filer = {"Authorization": f"Bearer {api_key}"}
    [whole] = app.test_client().get(f"/open311/v2/requests/{number}.json", headers=filer).get_json()
    assert whole["address"] == "12 Hazratganj, Lucknow 226001"
    assert whole["description"] == "The fan does not run."
    stranger = {"Authorization": f"Bearer {token(app, ApiRole.PARTNER, 'city-app')}"}
    [other] = app.test_client().get(f"/open311/v2/requests/{number}.json", headers=stranger).get_json()
    assert other == public
    assert app.test_client().get("/open311/v2/requests/1234567.xml").status_code == 404
    assert app.test_client().get("/open311/v2/requests/12.json").status_code == 404


def test_requests_are_found_by_ids_service_status_and_a_window_of_90_days(app: Flask, api_key: str) -> None:
    electrician = file(app, {**BY_PINCODE, "api_key": api_key}).get_json()[0]["service_request_id"]
    plumber = file(app, {**BY_PINCODE, "service_code": "plumber", "api_key": api_key}).get_json()[0][
        "service_request_id"
    ]
    old = file(app, {**BY_PINCODE, "service_code": "painter", "api_key": api_key}).get_json()[0]["service_request_id"]
    long_ago = datetime.now(UTC) - timedelta(days=100)
    with session_scope(engine_of(app)) as session:
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.number) == old)
            .values(created_at=long_ago, status="completed")
        )
    client = app.test_client()

    def ids(**query: Any) -> list[str]:
        response = client.get("/open311/v2/requests.xml", query_string=query)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [r.findtext("service_request_id") or "" for r in xml(response).iter("request")]

    assert ids() == [plumber, electrician]  # the last 90 days, newest first
    assert ids(service_code="electrician") == [electrician]
    assert ids(status="closed") == []
    assert ids(status="open,closed") == [plumber, electrician]
    assert ids(service_request_id=f"{old},{electrician}") == [electrician, old]  # ids override the window
    start = (long_ago - timedelta(days=1)).isoformat()
    assert ids(start_date=start, end_date=(long_ago + timedelta(days=1)).isoformat()) == [old]
    assert ids(start_date=start, status="closed") == [old]
    for query, field in [
        ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}, "end_date"),
        ({"start_date": "2026-06-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, "end_date"),
        ({"start_date": "2026-06-01"}, "start_date"),
        ({"end_date": "yesterday"}, "end_date"),
        ({"status": "pending"}, "status"),
        ({"service_code": "astrologer"}, "service_code"),
        ({"service_request_id": "12,abc"}, "service_request_id"),
    ]:
        response = client.get("/open311/v2/requests.json", query_string=query)
        assert response.status_code == 400, (query, response.get_json())
        assert field in georeport_errors(response), (query, response.get_json())


def test_status_notes_carry_the_helplines_own_state(app: Flask, api_key: str) -> None:
    number = file(app, {**BY_PINCODE, "api_key": api_key}).get_json()[0]["service_request_id"]
    expected = {
        "new": "open",
        "offered": "open",
        "assigned": "open",
        "escalated": "open",
        "completed": "closed",
        "closed": "closed",
        "cancelled": "closed",
    }
    for ours, theirs in expected.items():
        with session_scope(engine_of(app)) as session:
            session.execute(sa.update(ServiceRequest).where(col(ServiceRequest.number) == number).values(status=ours))
        [shown] = app.test_client().get(f"/open311/v2/requests/{number}.json").get_json()
        assert shown["status"] == theirs
        assert shown["status_notes"].split(":")[0] == ours


def test_discovery_names_the_endpoint_and_its_formats(app: Flask) -> None:
    found = xml(app.test_client().get("/open311/v2/discovery.xml"))
    assert found.findtext("endpoints/endpoint/specification") == "http://wiki.open311.org/GeoReport_v2"
    assert [f.text for f in found.iter("format")] == ["text/xml", "application/json"]


def test_an_agent_reads_what_the_citizen_wrote_on_the_request_page(app: Flask, api_key: str) -> None:
    from storage.models import Role
    from tests.console import Console, add_user

    number = file(app, {**BY_PINCODE, "api_key": api_key}).get_json()[0]["service_request_id"]
    add_user(engine_of(app), "asha", Role.AGENT)
    agent = Console(app)
    agent.sign_in("asha")
    page = agent.get(f"/console/requests/{number}").get_data(as_text=True)
    assert "The fan does not run." in page
    assert "Ravi Shankar" in page
    assert "api:up-portal" in page
