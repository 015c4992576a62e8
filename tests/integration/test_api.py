"""The JSON API as other systems use it, against the real app, a real database of each kind, the
real Redis and the Twilio sandbox: a state portal files a request and follows it as it is texted
and offered to a worker; agencies and the call centre's systems manage workers; every malformed
field, missing token and role out of bounds is answered for what it is, and nothing half-written."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from rq.cron import CronScheduler
from sqlmodel import Session, col, select
from werkzeug.test import TestResponse

from api.inputs import KEY_MAX
from core.clock import FrozenClock
from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import jobs
from dispatch.jobs import HEARTBEAT_KEY
from sewamitra.app import create_app
from storage import tokens
from storage.db import session_scope
from storage.models import (
    ApiRole,
    ApiToken,
    AuditEvent,
    Offer,
    RequestStatus,
    ServiceRequest,
    SmsLog,
    VerificationStatus,
    Worker,
    utcnow,
)
from tests.factories import (
    AGENCY,
    CITIZEN,
    LUCKNOW_REQUEST,
    Api,
    add_worker,
    engine_of,
    requests_in,
    token,
    work_queued_jobs,
)


@pytest.fixture
def portal(app: Flask) -> Api:
    return Api(app, token(app, ApiRole.PARTNER, "up-portal"))


@pytest.fixture
def desk(app: Flask) -> Api:
    return Api(app, token(app, ApiRole.AGENT, "call-centre"))


@pytest.fixture
def agency(app: Flask) -> Api:
    return Api(app, token(app, ApiRole.PROVIDER, "gomti-app", provider=AGENCY))


def error_fields(response: TestResponse) -> dict[str, str]:
    body = response.get_json()
    assert body["error"]["status"] == response.status_code, body
    return dict(body["error"].get("fields", {}))


# -- a state portal files a request and follows it -----------------------------------------------------


def test_a_portal_files_a_request_the_citizen_is_texted_and_the_nearest_worker_offered_it(
    app: Flask, portal: Api, sandbox: TwilioSandbox, jobs_run: None
) -> None:
    near = add_worker(engine_of(app), "Ramesh Kumar", "+919415000001", km_north=1)
    add_worker(engine_of(app), "Suresh Yadav", "+919415000002", km_north=6)
    jobs.rebuild_index()

    response = portal.post("/api/v1/requests", LUCKNOW_REQUEST)
    assert response.status_code == 201, response.get_json()
    filed = response.get_json()
    assert filed["status"] == "new"
    assert filed["district"] == "LUCKNOW"
    assert filed["channel"] == "api"
    assert filed["citizen"] == {"phone": CITIZEN, "name": "Asha Verma"}
    assert filed["description"] == "The kitchen tap leaks.\nSecond floor."
    assert filed["language"] == "en"
    [stored] = requests_in(app)
    assert stored.number == filed["number"]
    assert stored.filed_by == "api:up-portal"

    work_queued_jobs(app)
    texts = {m["to"]: m["body"] for m in sandbox.messages}
    assert filed["number"] in texts[CITIZEN]  # the citizen's confirmation, with the number to follow it by
    assert filed["number"] in texts["+919415000001"]  # the offer, to the nearest verified plumber

    followed = portal.get(f"/api/v1/requests/{filed['number']}").get_json()
    assert followed["status"] == "offered"
    [offer] = followed["offers"]
    assert offer["status"] == "pending"
    assert offer["worker_id"] is None
    assert offer["worker_name"] is None
    assert [(e["from_status"], e["to_status"]) for e in followed["timeline"]] == [(None, "new"), ("new", "offered")]
    assert all(e["actor"] is None and e["reason"] is None for e in followed["timeline"])
    with Session(engine_of(app)) as session:
        assert session.exec(select(Offer.worker_id)).all() == [near]


def test_the_same_idempotency_key_files_one_request(app: Flask, portal: Api) -> None:
    first = portal.post("/api/v1/requests", LUCKNOW_REQUEST, **{"Idempotency-Key": "portal-form-77"})
    again = portal.post("/api/v1/requests", LUCKNOW_REQUEST, **{"Idempotency-Key": "portal-form-77"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["number"] == again.get_json()["number"]
    assert len(requests_in(app)) == 1
    with Session(engine_of(app)) as session:
        assert len(session.exec(select(SmsLog).where(SmsLog.template == "request_created")).all()) == 1
    # A client with a long name and long keys that share their beginning: still two keys, two requests.
    long_named = Api(app, token(app, ApiRole.PARTNER, "uttar-pradesh-jan-sunwai-samadhan-portal-integration"))
    for key in ("form-" + "x" * (KEY_MAX - 10) + suffix for suffix in ("-0001", "-0002")):
        assert long_named.post("/api/v1/requests", LUCKNOW_REQUEST, **{"Idempotency-Key": key}).status_code == 201
    assert len(requests_in(app)) == 3


def test_a_point_or_an_address_with_its_pin_code_places_the_request(app: Flask, portal: Api) -> None:
    by_point = {"service": "electrician", "phone": "+919811122233", "latitude": 27.1767, "longitude": 78.0081}
    response = portal.post("/api/v1/requests", by_point)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["district"] == "AGRA"
    assert (response.get_json()["latitude"], response.get_json()["longitude"]) == (27.1767, 78.0081)

    with_its_point = {**LUCKNOW_REQUEST, "latitude": 26.8506, "longitude": 80.9462}  # Hazratganj, in 226001
    response = portal.post("/api/v1/requests", with_its_point)
    assert response.status_code == 201, response.get_json()
    assert (response.get_json()["latitude"], response.get_json()["longitude"]) == (26.8506, 80.9462)

    by_address = {"service": "carpenter", "phone": "+919811122233", "address": "House 4, Civil Lines, Prayagraj 211001"}
    response = portal.post("/api/v1/requests", by_address)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["pincode"] == "211001"


BAD_BODIES = [
    ({**LUCKNOW_REQUEST, "service": "astrologer"}, "service"),
    ({**LUCKNOW_REQUEST, "phone": "12345678"}, "phone"),
    ({**LUCKNOW_REQUEST, "phone": "+14155550123"}, "phone"),  # a worker cannot ring a US number
    ({**LUCKNOW_REQUEST, "pincode": "026001"}, "pincode"),
    ({**LUCKNOW_REQUEST, "pincode": "999999"}, "pincode"),  # India Post has no such PIN code
    ({**LUCKNOW_REQUEST, "pincode": "110001"}, "pincode"),  # New Delhi: outside Uttar Pradesh
    ({**LUCKNOW_REQUEST, "pincode": 226001}, "pincode"),  # a number, not a string
    ({k: v for k, v in LUCKNOW_REQUEST.items() if k != "service"}, "service"),
    ({"service": "plumber", "phone": CITIZEN}, "pincode"),  # nowhere
    ({"service": "plumber", "phone": CITIZEN, "latitude": 26.85}, "longitude"),
    ({"service": "plumber", "phone": CITIZEN, "latitude": 91.0, "longitude": 80.9}, "latitude"),
    ({"service": "plumber", "phone": CITIZEN, "latitude": 19.07, "longitude": 72.87}, "latitude"),  # Mumbai
    ({"service": "plumber", "phone": CITIZEN, "address": "12 Hazratganj, Lucknow"}, "address"),  # no PIN code
    ({**LUCKNOW_REQUEST, "latitude": 80.9462, "longitude": 26.8506}, "latitude"),  # swapped: far from 226001
    ({**LUCKNOW_REQUEST, "latitude": 27.1767, "longitude": 78.0081}, "latitude"),  # Agra's point, Lucknow's PIN
    ({**LUCKNOW_REQUEST, "language": "fr"}, "language"),
    ({**LUCKNOW_REQUEST, "description": "x" * 4001}, "description"),
    ({**LUCKNOW_REQUEST, "priority": "urgent"}, "priority"),  # not a field of the API
    ({**LUCKNOW_REQUEST, "name": ["Asha"]}, "name"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES, ids=[field for _, field in BAD_BODIES])
def test_a_malformed_field_is_a_400_that_names_it_and_nothing_is_stored(
    app: Flask, portal: Api, body: dict, field: str
) -> None:
    response = portal.post("/api/v1/requests", body)
    assert response.status_code == 400, response.get_json()
    assert field in error_fields(response), response.get_json()
    assert requests_in(app) == []


def test_a_language_this_helpline_does_not_speak_is_refused(helpline_settings: Settings) -> None:
    hindi_only = helpline_settings.model_copy(update={"languages": helpline_settings.languages[:1]})
    app = create_app(hindi_only)
    response = Api(app, token(app, ApiRole.PARTNER)).post("/api/v1/requests", LUCKNOW_REQUEST)  # in English
    assert response.status_code == 400, response.get_json()
    assert "language" in error_fields(response), response.get_json()
    assert requests_in(app) == []


def test_bodies_that_are_not_a_json_object_are_refused_for_what_they_are(app: Flask, portal: Api) -> None:
    send = portal.client.post
    auth = portal.headers
    assert send("/api/v1/requests", data="{broken", content_type="application/json", headers=auth).status_code == 400
    assert send("/api/v1/requests", data=b"\xff\xfe", content_type="application/json", headers=auth).status_code == 400
    assert send("/api/v1/requests", json=["plumber"], headers=auth).status_code == 400
    repeated = '{"service": "plumber", "service": "painter", "phone": "+919876543210", "pincode": "226001"}'
    response = send("/api/v1/requests", data=repeated, content_type="application/json", headers=auth)
    assert response.status_code == 400
    assert error_fields(response) == {"service": "given more than once"}
    response = send("/api/v1/requests", data="service=plumber", headers=auth)
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media_type"
    huge = json.dumps({**LUCKNOW_REQUEST, "description": "x" * 70_000})
    response = send("/api/v1/requests", data=huge, content_type="application/json", headers=auth)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_large"
    response = send("/api/v1/requests", json=LUCKNOW_REQUEST, headers={**auth, "Idempotency-Key": "x" * 65})
    assert response.status_code == 400
    assert "Idempotency-Key" in error_fields(response)
    assert requests_in(app) == []


# -- who may see and do what ------------------------------------------------------------------------


def test_no_token_a_wrong_one_a_revoked_one_or_an_expired_one_is_401(app: Flask) -> None:
    secret = token(app, ApiRole.ADMIN, "desk")
    assert Api(app, None).get("/api/v1/services").status_code == 401
    assert Api(app, "sm_" + "A" * 43).get("/api/v1/services").status_code == 401
    assert Api(app, "not-even-a-token").get("/api/v1/services").status_code == 401
    assert Api(app, secret).get("/api/v1/services").status_code == 200
    with session_scope(engine_of(app)) as session:
        tokens.revoke(session, secret[:10])
    assert Api(app, secret).get("/api/v1/services").status_code == 401
    expired = token(app, ApiRole.ADMIN, "old-desk")
    with session_scope(engine_of(app)) as session:
        session.execute(
            sa.update(ApiToken)
            .where(col(ApiToken.client) == "old-desk")
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    response = Api(app, expired).get("/api/v1/services")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def api_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, a URL for it) of every /api/v1 route that takes a token."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or rule.endpoint == "api.document":
            continue
        url = rule.rule.replace("<number>", "1234567").replace("<id:worker_id>", "1")
        found += [(rule.endpoint, method, url) for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]
    return found


@pytest.mark.parametrize("role", list(ApiRole))
def test_every_route_refuses_the_roles_it_does_not_name_and_records_it(app: Flask, role: ApiRole) -> None:
    caller = Api(app, token(app, role, provider=AGENCY if role is ApiRole.PROVIDER else None))
    routes = api_routes(app)
    assert len(routes) >= 9
    refused = 0
    for endpoint, method, url in routes:
        roles = vars(app.view_functions[endpoint])["roles"]  # what api.auth.requires set on the view
        response = caller.client.open(url, method=method, json={}, headers=caller.headers)
        if role in roles:
            assert response.status_code != 403, (endpoint, method)
        else:
            assert response.status_code == 403, (endpoint, method, response.status_code)
            assert response.get_json()["error"]["code"] == "forbidden"
            refused += 1
        unsigned = app.test_client().open(url, method=method, json={})
        assert unsigned.status_code == 401, (endpoint, method, unsigned.status_code)
    with Session(engine_of(app)) as session:
        refusals = session.exec(select(AuditEvent).where(AuditEvent.action == "access.refused")).all()
    assert len(refusals) == refused
    assert role in (ApiRole.ADMIN, ApiRole.SUPERVISOR) or refused > 0


def test_a_partner_sees_and_cancels_only_what_it_filed(app: Flask, portal: Api) -> None:
    other = Api(app, token(app, ApiRole.PARTNER, "city-app"))
    mine = portal.post("/api/v1/requests", LUCKNOW_REQUEST).get_json()["number"]
    theirs = other.post("/api/v1/requests", {**LUCKNOW_REQUEST, "phone": "+919811122233"}).get_json()["number"]
    assert [r["number"] for r in portal.get("/api/v1/requests").get_json()["items"]] == [mine]
    assert portal.get(f"/api/v1/requests/{theirs}").status_code == 404
    assert portal.post(f"/api/v1/requests/{theirs}/cancel", {"reason": "not mine"}).status_code == 404
    response = portal.post(f"/api/v1/requests/{mine}/cancel", {"reason": "the citizen fixed it herself"})
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"
    again = portal.post(f"/api/v1/requests/{mine}/cancel", {"reason": "twice"})
    assert again.status_code == 409
    assert "cancelled" in again.get_json()["error"]["message"]
    assert portal.get("/api/v1/workers").status_code == 403


def test_cancelling_a_job_in_hand_tells_the_worker_not_to_go(
    app: Flask, desk: Api, portal: Api, sandbox: TwilioSandbox, jobs_run: None
) -> None:
    ramesh = add_worker(engine_of(app), "Ramesh Kumar", "+919415000001", km_north=1)
    jobs.rebuild_index()
    number = portal.post("/api/v1/requests", LUCKNOW_REQUEST).get_json()["number"]
    work_queued_jobs(app)
    with session_scope(engine_of(app)) as session:
        [offer] = session.exec(select(Offer)).all()
    from dispatch import offers

    assert offers.reply(engine_of(app), offer.id or 0, True, utcnow(), f"worker:{ramesh}") is offers.Answer.ACCEPTED
    assert desk.get(f"/api/v1/requests/{number}").get_json()["worker"]["name"] == "Ramesh Kumar"
    sandbox.clear()
    response = desk.post(f"/api/v1/requests/{number}/cancel", {"reason": "duplicate of a phone booking"})
    assert response.status_code == 200
    work_queued_jobs(app)
    [told] = [m for m in sandbox.messages if m["to"] == "+919415000001"]
    assert number in told["body"]
    timeline = desk.get(f"/api/v1/requests/{number}").get_json()["timeline"]
    assert timeline[-1]["actor"] == "api:call-centre"
    assert timeline[-1]["reason"] == "duplicate of a phone booking"


def test_an_agency_sees_its_workers_jobs_with_the_citizens_number_masked(
    app: Flask, agency: Api, desk: Api, portal: Api
) -> None:
    number = portal.post("/api/v1/requests", LUCKNOW_REQUEST).get_json()["number"]
    assert agency.get(f"/api/v1/requests/{number}").status_code == 404  # not its job (yet)
    mine = agency.post(
        "/api/v1/workers", {"name": "Kamla Devi", "phone": "+919415000009", "skills": ["plumber"], "pincode": "226001"}
    ).get_json()["id"]
    with session_scope(engine_of(app)) as session:
        worker = session.get(Worker, mine)
        assert worker is not None
        worker.police_verification = VerificationStatus.VERIFIED
        session.add(worker)
        request = session.exec(select(ServiceRequest)).one()
    from dispatch import lifecycle

    with session_scope(engine_of(app)) as session:
        assert lifecycle.assign(session, request.id or 0, mine, "user:1", utcnow()).ok
    seen = agency.get(f"/api/v1/requests/{number}").get_json()
    assert seen["worker"]["name"] == "Kamla Devi"
    assert seen["citizen"]["phone"] == "+91 98xxxxx210"
    assert [r["number"] for r in agency.get("/api/v1/requests").get_json()["items"]] == [number]
    # Nor can it unmask the number by trying each hidden digit as a filter: refused, and recorded.
    tried = agency.get("/api/v1/requests", phone="+919876543210")
    assert tried.status_code == 403, tried.get_json()
    assert tried.get_json()["error"]["code"] == "forbidden", tried.get_json()
    with Session(engine_of(app)) as session:
        assert session.exec(select(AuditEvent).where(AuditEvent.action == "access.refused")).all()


# -- lists and their filters ----------------------------------------------------------------------------


def test_requests_are_found_by_phone_status_service_district_and_day(app: Flask, desk: Api, portal: Api) -> None:
    plumber = portal.post("/api/v1/requests", LUCKNOW_REQUEST).get_json()["number"]
    painter = portal.post(
        "/api/v1/requests", {"service": "painter", "phone": "+919811122233", "pincode": "282001"}
    ).get_json()["number"]

    def numbers(**query: Any) -> list[str]:
        response = desk.get("/api/v1/requests", **query)
        assert response.status_code == 200, response.get_json()
        return [r["number"] for r in response.get_json()["items"]]

    assert numbers() == [painter, plumber]
    assert numbers(phone="098765 43210") == [plumber]
    assert numbers(service="painter") == [painter]
    assert numbers(service="painter,plumber") == [painter, plumber]
    assert numbers(district="agra") == [painter]
    assert numbers(status="offered,assigned") == []
    today = datetime.now(UTC).date()
    assert numbers(created_from=today.isoformat()) == [painter, plumber]
    assert numbers(created_to=(today - timedelta(days=1)).isoformat()) == []
    assert numbers(per_page=1, page=2) == [plumber]
    assert desk.get("/api/v1/requests", per_page=1).get_json()["total"] == 2

    for name, value in [
        ("status", "open"),
        ("service", "astrologer"),
        ("district", "Gotham"),
        ("phone", "12"),
        ("created_from", "yesterday"),
        ("created_to", "2026-12-02T10:00:00"),
        ("page", "0"),
        ("per_page", "1000"),
        ("page", "-1"),
    ]:
        response = desk.get("/api/v1/requests", **{name: value})
        assert response.status_code == 400, (name, value)
        assert name in error_fields(response), (name, value)
    response = desk.client.get("/api/v1/requests?page=1&page=2", headers=desk.headers)
    assert response.status_code == 400
    assert error_fields(response) == {"page": "given more than once"}


def test_unknown_records_paths_and_methods_are_json_404_and_405(desk: Api) -> None:
    for path in (
        "/api/v1/requests/1234567",
        "/api/v1/requests/12",
        "/api/v1/workers/99999",
        "/api/v1/workers/99999999999",
        "/api/v1/nothing-here",
    ):
        response = desk.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"]["code"] == "not_found", path
    response = desk.client.delete("/api/v1/services", headers=desk.headers)
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"


# -- workers ------------------------------------------------------------------------------------------


KAMLA = {
    "name": "Kamla Devi",
    "phone": "94150 00009",
    "skills": ["plumber", "electrician"],
    "pincode": "226001",
    "language": "hi",
    "voice_preferred": True,
    "certification": "RPL under PMKVY",
}


def test_an_agency_onboards_a_worker_who_waits_for_police_verification(app: Flask, agency: Api) -> None:
    response = agency.post("/api/v1/workers", KAMLA)
    assert response.status_code == 201, response.get_json()
    added = response.get_json()
    assert added["police_verification"] == "pending"
    assert added["provider"]["name"] == AGENCY
    assert added["skills"] == ["electrician", "plumber"]
    assert added["phone"] == "+919415000009"
    assert agency.get(f"/api/v1/workers/{added['id']}").get_json() == added
    again = agency.post("/api/v1/workers", KAMLA)
    assert again.status_code == 409
    assert error_fields(again) == {"phone": "already registered"}
    with Session(engine_of(app)) as session:
        assert session.exec(select(AuditEvent.actor).where(AuditEvent.action == "worker.created")).all() == [
            "api:gomti-app"
        ]


def test_worker_fields_are_checked_by_the_importers_rules(app: Flask, agency: Api, desk: Api) -> None:
    cases = [
        ({**KAMLA, "phone": "12345"}, "phone"),
        ({**KAMLA, "skills": ["astrology"]}, "skills"),
        ({**KAMLA, "skills": []}, "skills"),
        ({**KAMLA, "pincode": "110001"}, "pincode"),
        ({**KAMLA, "name": "=HYPERLINK(1)"}, "name"),
        ({**KAMLA, "service_radius_km": 500}, "service_radius_km"),
        ({**KAMLA, "police_verification": "verified"}, "police_verification"),  # an API never vouches
        ({**KAMLA, "provider_id": 424242}, "provider_id"),  # not its agency
        ({**KAMLA, "voice_preferred": "yes"}, "voice_preferred"),
    ]
    for body, field in cases:
        response = agency.post("/api/v1/workers", body)
        assert response.status_code == 400, (field, response.get_json())
        assert field in error_fields(response), (field, response.get_json())
    supervisor = Api(app, token(app, ApiRole.SUPERVISOR, "state-hr"))
    response = supervisor.post("/api/v1/workers", {**KAMLA, "provider_id": 424242})
    assert response.status_code == 400
    assert error_fields(response) == {"provider_id": "no active provider agency has this id"}
    assert desk.post("/api/v1/workers", KAMLA).status_code == 403  # agents do not onboard
    with Session(engine_of(app)) as session:
        assert session.exec(select(Worker)).all() == []


def test_availability_changes_are_audited_and_an_agency_reaches_only_its_own(
    app: Flask, agency: Api, desk: Api, jobs_run: None
) -> None:
    own = agency.post("/api/v1/workers", KAMLA).get_json()["id"]
    elsewhere = add_worker(engine_of(app), "Ramesh Kumar", "+919415000001", km_north=1)
    jobs.rebuild_index()
    indexed = app.extensions["sewamitra"].redis.zrange("sewamitra:geo:plumber", 0, -1)
    assert indexed == [str(elsewhere).encode()]  # verified and available; Kamla waits for the police
    assert agency.get(f"/api/v1/workers/{elsewhere}").status_code == 404
    assert agency.put(f"/api/v1/workers/{elsewhere}/availability", {"available": False}).status_code == 404
    assert [w["id"] for w in agency.get("/api/v1/workers").get_json()["items"]] == [own]
    assert {w["id"] for w in desk.get("/api/v1/workers").get_json()["items"]} == {own, elsewhere}

    response = desk.put(f"/api/v1/workers/{elsewhere}/availability", {"available": False})
    assert response.status_code == 200
    assert response.get_json()["available"] is False
    assert desk.put(f"/api/v1/workers/{elsewhere}/availability", {"available": "no"}).status_code == 400
    assert [w["id"] for w in desk.get("/api/v1/workers", available="false").get_json()["items"]] == [elsewhere]
    assert [w["id"] for w in desk.get("/api/v1/workers", police_verification="pending").get_json()["items"]] == [own]
    assert desk.get("/api/v1/workers", skill="astrology").status_code == 400
    with Session(engine_of(app)) as session:
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "worker.availability")).all()
    assert (event.actor, event.from_status, event.to_status) == ("api:call-centre", "available", "busy")
    work_queued_jobs(app)  # the reindex job: a busy worker is not in the dispatch index
    assert app.extensions["sewamitra"].redis.zrange("sewamitra:geo:plumber", 0, -1) == []


# -- health -------------------------------------------------------------------------------------------


def test_health_reports_the_database_redis_workers_and_queue_depth(app: Flask, portal: Api) -> None:
    portal.post("/api/v1/requests", LUCKNOW_REQUEST)
    health = app.test_client().get("/healthz").get_json()
    assert health["status"] == "ok"
    assert health["database"] == "ok"
    assert health["redis"] == "ok"
    assert health["queues"] == {"dispatch": 1, "default": 1}  # the dispatch, and the confirmation SMS
    assert health["failed_jobs"] == 0
    assert health["rq_workers"] == 0


def test_health_counts_the_schedulers_as_rq_does(app: Flask) -> None:
    """/healthz counts them without importing rq.cron (croniter and dateutil, in every web worker)."""
    connection = app.extensions["sewamitra"].redis
    running, gone, silent = (CronScheduler(connection=connection, name=name) for name in ("running", "gone", "silent"))
    for scheduler in (running, gone, silent):
        scheduler.register_birth()
    connection.delete(gone.key)  # its record expired while its registry entry lingers
    connection.zadd("rq:cron_schedulers", {"silent": time.time() - 3600})  # no heartbeat for an hour

    assert app.test_client().get("/healthz").get_json()["schedulers"] == 1
    assert [scheduler.name for scheduler in CronScheduler.all(connection)] == ["running"]


def test_health_says_how_long_ago_the_jobs_last_ran_by_the_apps_clock(helpline_settings: Settings) -> None:
    clock = FrozenClock(datetime(2030, 1, 1, 5, 30, tzinfo=UTC))
    app = create_app(helpline_settings, clock)
    app.extensions["sewamitra"].redis.set(HEARTBEAT_KEY, (clock.now() - timedelta(seconds=42)).isoformat())
    assert app.test_client().get("/healthz").get_json()["jobs_last_ran_s_ago"] == 42.0


def test_the_openapi_document_describes_every_route(app: Flask) -> None:
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api/", "/open311/")) or rule.rule == "/healthz":
            path = (
                rule.rule.replace("<number>", "{number}")
                .replace("<id:worker_id>", "{worker_id}")
                .replace("<code>", "{service_code}")
                .replace("<any(json, xml):fmt>", "{format}")
            )
            path = path.replace("requests/{number}.{format}", "requests/{service_request_id}.{format}")
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
                assert (path, method) in documented, (path, method)


def test_sends_of_one_request_racing_each_other_file_it_once(app: Flask) -> None:
    """A client retrying before its first try answered (the same Idempotency-Key) files one request."""
    import threading

    secret, answers = token(app, ApiRole.PARTNER, "up-portal"), []

    def send() -> None:
        sent = Api(app, secret).post("/api/v1/requests", LUCKNOW_REQUEST, **{"Idempotency-Key": "race"})
        answers.append(sent.status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200, 200, 200, 201]
    [stored] = requests_in(app)
    assert stored.status is RequestStatus.NEW


def test_with_the_database_unreachable_calls_are_told_to_retry_not_given_a_500(helpline_settings: Settings) -> None:
    down = helpline_settings.model_copy(update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:9/none"})
    client = create_app(down).test_client()
    response = client.get("/api/v1/requests", headers={"Authorization": "Bearer sm_" + "A" * 43})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["error"]["code"] == "unavailable"
    response = client.get("/open311/v2/requests.xml")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert b"<errors><error><code>503</code>" in response.get_data()
    assert client.get("/healthz").status_code == 503
