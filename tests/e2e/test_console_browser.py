"""The console in a real browser: Chromium (Debian's, else Playwright's own), driven by Playwright,
against the app served over HTTP on PostgreSQL, the real Redis and the Twilio sandbox. People sign in,
take a caller and file their request, watch the live queue refresh itself, filter, go round the
pages in English and Hindi; an agency is kept to its own workers and a forged form is refused.
Screenshots of the main pages (1366x768 window, the whole page) go to var/screenshots/ to be looked
at.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect
from sqlmodel import Session, col, select

from callcentre import desk
from devtools.twilio_sandbox import TwilioSandbox
from storage.db import session_scope
from storage.models import (
    CallbackRequest,
    Caller,
    Offer,
    OfferStatus,
    RequestStatus,
    Role,
    ServiceRequest,
    User,
    Worker,
)
from tests.browser import (
    CALL_SID,
    DESK_PHONE,
    NUMBER_IN_URL,
    PHONE,
    WIDER_THAN_THE_WINDOW,
    Live,
    audit_actions,
    belongs_to,
    caller_waits,
    done_by,
    filed_in,
    go_to,
    number_on,
    shoot,
    sign_in,
    twilio_posts,
)
from tests.console import PASSWORD, add_user
from tests.factories import (
    CITIZEN,
    add_worker,
)

# One worker of a split run (pytest-xdist) takes the module: its tests share one Chromium.
pytestmark = pytest.mark.xdist_group("console_browser")


# -- the agent's state bar -----------------------------------------------------------------------------


def test_the_agents_state_bar_pauses_with_a_reason_times_the_state_and_says_why_taking_is_disabled(
    live: Live, page: Page
) -> None:
    add_user(live.engine, "asha", Role.AGENT, phone=DESK_PHONE)
    sign_in(page, "asha")
    bar = page.get_by_role("region", name="Your state")
    take = bar.get_by_role("button", name="Take next caller")
    expect(bar.locator("#agent-state")).to_have_text("Not ready")  # signed in, not yet ready
    expect(take).to_be_disabled()
    expect(bar.locator("#take-why")).to_have_text("Paused: Not ready")

    bar.get_by_label("Pause reason").select_option("lunch")
    bar.get_by_role("button", name="Pause", exact=True).click()
    expect(bar.locator("#agent-state")).to_have_text("Paused")
    expect(bar.locator("#agent-reason")).to_have_text("Lunch")
    expect(bar.locator("#take-why")).to_have_text("Paused: Lunch")
    expect(take).to_be_disabled()
    timer = bar.locator("#agent-timer")
    expect(timer).to_have_text(re.compile(r"^\d+:\d\d$"))
    expect(timer).not_to_have_text(timer.inner_text())  # it ticks, by itself
    shoot(page, "30-agent-paused-lunch")

    bar.get_by_role("button", name="Ready", exact=True).focus()  # keyboard: focus, then Enter
    page.keyboard.press("Enter")
    expect(bar.locator("#agent-state")).to_have_text("Ready")
    expect(take).to_be_enabled()

    caller_waits(live)  # a caller asks for an agent: the bar's next fetch rings it, Accept in focus
    offer = bar.locator("#offer")
    expect(offer).to_contain_text("A caller is ringing for you")
    expect(bar.get_by_role("button", name="Accept")).to_be_focused()
    shoot(page, "31-agent-offered-a-caller")

    bar.get_by_role("button", name="Accept").click()
    expect(page).to_have_url(re.compile(r"/console/callers/\d+\?call=" + CALL_SID))
    expect(bar.locator("#agent-state")).to_have_text("On a call")
    expect(take).to_be_disabled()
    expect(bar.locator("#take-why")).to_have_text("You are on a call")
    shoot(page, "32-agent-on-a-call")
    changes = [a for a in audit_actions(live.engine) if a.startswith("agent.")]
    assert changes == ["agent.state_changed"] * 2 + ["agent.offered", "agent.state_changed"]


def test_the_live_queue_shows_how_far_past_the_sla_a_request_is_without_scrolling_the_card(
    live: Live, page: Page
) -> None:
    add_user(live.engine, "asha", Role.AGENT, phone=DESK_PHONE)
    late = filed_in(live.engine, "226001", RequestStatus.OFFERED)
    with session_scope(live.engine) as db:
        db.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.number) == late)
            .values(created_at=datetime.now(UTC) - timedelta(hours=3))
        )

    sign_in(page, "asha")
    overdue = page.locator("#past-sla td.overdue").first
    expect(overdue).to_contain_text("2 h")
    card, cell = page.locator("section.card", has=page.locator("#past-sla")).bounding_box(), overdue.bounding_box()
    assert card is not None
    assert cell is not None
    assert cell["x"] + cell["width"] <= card["x"] + card["width"], (cell, card)  # seen at 1366 px, not scrolled to


# -- signing in ---------------------------------------------------------------------------------------


def test_a_wrong_password_is_refused_then_the_right_one_opens_the_live_queue(live: Live, page: Page) -> None:
    add_user(live.engine, "asha", Role.AGENT, phone=DESK_PHONE)
    page.goto("/console/")
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
    shoot(page, "01-sign-in")

    sign_in(page, "asha", "not the password")
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    expect(page.get_by_label("User name")).to_have_value("asha")
    expect(page.get_by_label("Password")).to_have_value("")
    shoot(page, "02-sign-in-wrong-password")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live.url}/console/queue")
    expect(page.get_by_role("heading", name="Live queue")).to_be_visible()
    expect(page.get_by_text("Asha · agent")).to_be_visible()
    signing_in = [action for action in audit_actions(live.engine) if action.startswith("user.sign")]
    assert signing_in == ["user.sign_in_failed", "user.signed_in"]


# -- an agent and a caller ----------------------------------------------------------------------------


def test_an_agent_takes_the_next_caller_and_files_a_plumber_request(live: Live, page: Page) -> None:
    add_user(live.engine, "asha", Role.AGENT, phone=DESK_PHONE)
    escalated = filed_in(live.engine, "208001", RequestStatus.ESCALATED)
    offered = filed_in(live.engine, "226001", RequestStatus.OFFERED)
    _offer_running_out(live.engine, offered)
    with session_scope(live.engine) as db:
        db.add(CallbackRequest(phone="+919812345678", reason="left_queue", language="hi", note="call after 6 pm"))
    caller_waits(live)

    sign_in(page, "asha")
    expect(page.locator("#waiting")).to_contain_text(CITIZEN)
    expect(page.locator("#escalated")).to_contain_text(escalated)
    expect(page.locator("#expiring")).to_contain_text("Ramesh")
    expect(page.locator("#callbacks")).to_contain_text("call after 6 pm")
    shoot(page, "03-live-queue")

    page.get_by_role("button", name="Ready", exact=True).click()  # an agent signs in not ready
    page.get_by_role("button", name="Take next caller").click()
    expect(page).to_have_url(re.compile(r"/console/callers/\d+\?call=" + CALL_SID))
    expect(page.get_by_text("Your desk phone is ringing")).to_be_visible()
    expect(page.get_by_label("Phone")).to_have_value(CITIZEN)

    page.get_by_label("Service").select_option("plumber")
    pin = page.get_by_label("PIN code")
    pin.press_sequentially("22600")
    expect(page.get_by_label("District")).to_have_value("")
    pin.press_sequentially("1")
    expect(page.get_by_label("District")).to_have_value("Lucknow")
    page.get_by_label("Address note").fill("12 Hazratganj, behind the Hanuman temple")
    page.get_by_label("Preferred time").fill("after 5 pm")
    shoot(page, "04-caller-screen")

    page.get_by_role("button", name="Create request").click()
    expect(page).to_have_url(NUMBER_IN_URL)
    expect(page.get_by_text("Request created.")).to_be_visible()
    number = number_on(page)
    with Session(live.engine) as db:
        made = db.exec(select(ServiceRequest).where(ServiceRequest.number == number)).one()
        caller = db.get(Caller, made.caller_id)
    assert (made.service_code, made.district, made.channel.value, made.status) == (
        "plumber",
        "LUCKNOW",
        "agent",
        RequestStatus.NEW,
    )
    assert made.address_note == "12 Hazratganj, behind the Hanuman temple"
    assert made.preferred_time == "after 5 pm"
    assert caller is not None
    assert caller.phone == CITIZEN

    page.locator("textarea[name=note]").fill("citizen asks for a woman worker")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#timeline")).to_contain_text("citizen asks for a woman worker")
    expect(page.locator("#timeline li")).to_contain_text(["created", "SMS outbound", "citizen asks for a woman worker"])
    shoot(page, "05-request-detail")


def _offer_running_out(engine: sa.Engine, number: str) -> None:
    """Ramesh was offered the job a while ago; a minute is left for him to answer."""
    worker_id = add_worker(engine, "Ramesh", "+919800000001", km_north=1)
    with session_scope(engine) as db:
        request_id = db.exec(select(ServiceRequest.id).where(ServiceRequest.number == number)).one()
        assert request_id is not None
        db.add(
            Offer(
                request_id=request_id,
                worker_id=worker_id,
                status=OfferStatus.PENDING,
                expires_at=datetime.now(UTC) + timedelta(minutes=1),
            )
        )


def test_a_request_filed_at_another_desk_appears_on_the_open_live_queue_without_a_reload(
    live: Live, windows: Callable[[], Page]
) -> None:
    add_user(live.engine, "asha", Role.AGENT, phone=DESK_PHONE)
    add_user(live.engine, "ravi", Role.AGENT, phone="+919811113333")
    watching = windows()
    sign_in(watching, "asha")
    expect(watching.get_by_role("heading", name="Being dispatched")).to_contain_text("0")
    watching.evaluate("window.neverReloaded = true")

    other_desk = windows()
    sign_in(other_desk, "ravi")
    go_to(other_desk, "Requests")
    other_desk.get_by_role("link", name="New request").click()
    other_desk.get_by_label("Phone").fill("98765 43210")
    other_desk.get_by_label("Service").select_option("electrician")
    other_desk.get_by_label("PIN code").press_sequentially("226001")
    other_desk.get_by_role("button", name="Create request").click()
    expect(other_desk).to_have_url(NUMBER_IN_URL)
    number = number_on(other_desk)

    expect(watching.locator("#dispatching")).to_contain_text(number, timeout=10_000)  # the board ticks every 3 s
    expect(watching.get_by_role("heading", name="Being dispatched")).to_contain_text("1")
    assert watching.evaluate("window.neverReloaded") is True
    shoot(watching, "06-live-queue-refreshed")


# -- a supervisor -------------------------------------------------------------------------------------


def test_a_supervisor_filters_the_requests_by_district(live: Live, page: Page) -> None:
    add_user(live.engine, "vikram", Role.SUPERVISOR)
    in_lucknow = [filed_in(live.engine, "226001"), filed_in(live.engine, "226001", RequestStatus.ESCALATED)]
    in_kanpur = filed_in(live.engine, "208001")
    in_varanasi = filed_in(live.engine, "221001", RequestStatus.CANCELLED)

    sign_in(page, "vikram")
    go_to(page, "Requests")
    expect(page.locator("#request-list tr")).to_have_count(1 + 4)
    page.get_by_label("District").select_option(label="Kanpur Nagar")
    page.get_by_role("button", name="Filter").click()

    expect(page).to_have_url(re.compile(r"district=KANPUR\+NAGAR"))
    listed = page.locator("#request-list")
    expect(listed.locator("tr")).to_have_count(1 + 1)
    expect(listed).to_contain_text(in_kanpur)
    for elsewhere in [*in_lucknow, in_varanasi]:
        expect(listed).not_to_contain_text(elsewhere)
    expect(page.get_by_label("District")).to_have_value("KANPUR NAGAR")
    shoot(page, "07-requests-filtered")


def test_a_supervisor_goes_round_the_console_in_english_and_then_in_hindi(live: Live, page: Page) -> None:
    add_user(live.engine, "vikram", Role.SUPERVISOR)
    add_user(live.engine, "gomti", Role.PROVIDER, provider="Gomti Services")
    ramesh = add_worker(live.engine, "Ramesh Kumar", "+919800000001", km_north=1, skills=("plumber", "electrician"))
    sunita = add_worker(live.engine, "Sunita Devi", "+919800000002", km_north=2, verified=False)
    belongs_to(live.engine, sunita, "Gomti Services")
    rated_low = done_by(live.engine, ramesh, rating=2)
    filed_in(live.engine, "208001", RequestStatus.ESCALATED)
    filed_in(live.engine, "221001")
    caller_waits(live)

    sign_in(page, "vikram")
    expect(page).to_have_url(re.compile(r"/console/dashboard"))
    expect(page.get_by_role("heading", name=re.compile("Dashboard"))).to_be_visible()
    shoot(page, "08-dashboard")

    go_to(page, "Workers")
    expect(page.get_by_role("link", name="Ramesh Kumar")).to_be_visible()
    expect(page.get_by_role("link", name="Sunita Devi")).to_be_visible()
    shoot(page, "09-workers")

    page.get_by_role("link", name="Sunita Devi").click()
    page.get_by_label("Reference number").fill("UP/LKO/2026/0412")
    page.get_by_label("Date").fill(datetime.now(ZoneInfo("Asia/Kolkata")).date().isoformat())
    page.get_by_role("button", name="Record verification").click()
    expect(page.get_by_text("Police verification recorded.")).to_be_visible()
    expect(page.get_by_text("worker.verified")).to_be_visible()
    with Session(live.engine) as db:
        verified = db.get(Worker, sunita)
    assert verified is not None
    assert verified.police_reference == "UP/LKO/2026/0412"
    shoot(page, "10-worker")

    go_to(page, "Worklist")
    expect(page.locator("#worklist")).to_contain_text(rated_low)
    shoot(page, "11-worklist")

    page.get_by_role("button", name="हिन्दी").click()
    expect(page).to_have_url(re.compile(r"/console/worklist"))
    expect(page.get_by_role("heading", name=re.compile("कॉल-बैक सूची"))).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "hi")
    shoot(page, "12-worklist-hindi")
    go_to(page, "लाइव कतार")
    expect(page.locator("#waiting")).to_contain_text(CITIZEN)
    shoot(page, "13-live-queue-hindi")
    go_to(page, "डैशबोर्ड")
    shoot(page, "14-dashboard-hindi")


def test_a_supervisor_reads_one_districts_dashboard_on_a_phone(live: Live, page: Page) -> None:
    """A 390 px wide phone: the dashboard with the district filter fits, with no sideways scrolling."""
    add_user(live.engine, "vikram", Role.SUPERVISOR)
    ramesh = add_worker(live.engine, "Ramesh Kumar", "+919800000001", km_north=1)
    done_by(live.engine, ramesh, rating=1)
    filed_in(live.engine, "226001")
    filed_in(live.engine, "208001", RequestStatus.ESCALATED)
    caller_waits(live)
    page.set_viewport_size(PHONE)

    sign_in(page, "vikram")
    expect(page).to_have_url(re.compile(r"/console/dashboard"))
    page.get_by_label("District", exact=True).select_option(label="Lucknow")
    page.get_by_role("button", name="Show").click()

    expect(page).to_have_url(re.compile(r"district=LUCKNOW"))
    expect(page.get_by_label("District", exact=True)).to_have_value("LUCKNOW")
    expect(page.locator("#live-waiting")).to_have_text("1")
    expect(page.locator("#ranking")).to_contain_text("Lucknow")
    expect(page.locator("#ranking")).not_to_contain_text("Kanpur Nagar")
    expect(page.get_by_role("img", name="By hour")).to_be_visible()
    shoot(page, "15-dashboard-district-phone")
    page_width, window_width, sticking_out = page.evaluate(WIDER_THAN_THE_WINDOW)
    assert page_width <= window_width == PHONE["width"], f"sideways scroll, from {sticking_out}"


def test_a_requests_facts_fit_a_phone(live: Live, page: Page) -> None:
    """A 390 px wide phone: the request's facts stack, each label beside its value, none cut off."""
    add_user(live.engine, "vikram", Role.SUPERVISOR)
    ramesh = add_worker(live.engine, "Ramesh Kumar", "+919800000001", km_north=1)
    number = done_by(live.engine, ramesh, rating=4)
    page.set_viewport_size(PHONE)

    sign_in(page, "vikram")
    page.goto(f"{live.url}/console/requests/{number}")
    facts = page.locator("table.facts")
    expect(facts).to_contain_text("Assigned")
    shoot(page, "17-request-phone")
    table_right, card_right = facts.evaluate(
        "(t) => [t.getBoundingClientRect().right, t.closest('.card').getBoundingClientRect().right]"
    )
    assert table_right <= card_right + 0.5, "the facts run past the card"
    assert facts.evaluate("(t) => t.scrollWidth <= t.clientWidth + 1")


def test_an_agency_reads_its_own_report_and_exports_it(live: Live, page: Page) -> None:
    add_user(live.engine, "gomti", Role.PROVIDER, provider="Gomti Services")
    ramesh = add_worker(live.engine, "Ramesh Kumar", "+919800000001", km_north=1)
    belongs_to(live.engine, ramesh, "Gomti Services")
    unhappy = done_by(live.engine, ramesh, rating=1)

    sign_in(page, "gomti")
    go_to(page, "Agency report")
    expect(page.get_by_role("heading", name=re.compile("Gomti Services · Agency report"))).to_be_visible()
    # The report opens on today in the call centre's zone; a job asked three hours ago may be
    # yesterday's there (just after midnight in India): the agency picks the day it was asked.
    page.get_by_label("From").fill(_asked_day(live, unhappy))
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("row", name=re.compile("Ramesh Kumar"))).to_contain_text("120 min")
    expect(page.get_by_role("link", name=unhappy)).to_be_visible()
    shoot(page, "16-agency-report")
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Export CSV").click()
    exported = downloading.value.path().read_bytes()
    assert exported.startswith(b"\xef\xbb\xbfworker_id,worker,jobs,")
    assert b"Ramesh Kumar" in exported


def _asked_day(live: Live, number: str) -> str:
    """The local day (ISO) in the call centre's zone on which the request `number` was asked."""
    zone = ZoneInfo(live.app.extensions["sewamitra"].settings.call_centre.timezone)
    with Session(live.engine) as db:
        asked = db.exec(select(ServiceRequest.created_at).where(col(ServiceRequest.number) == number)).one()
    return asked.astimezone(zone).date().isoformat()


def test_an_agent_ticks_another_worker_beside_its_label_and_books_the_rework(live: Live, page: Page) -> None:
    add_user(live.engine, "asha", Role.AGENT, phone=DESK_PHONE)
    ramesh = add_worker(live.engine, "Ramesh Kumar", "+919800000001", km_north=1)
    job = done_by(live.engine, ramesh, rating=4)

    sign_in(page, "asha")
    page.goto(f"/console/requests/{job}")
    other = page.get_by_label("Another worker than last time")
    box, label = other.bounding_box(), page.locator("label", has=other).bounding_box()
    assert box is not None
    assert label is not None
    assert box["width"] < 40, box  # a tick box, not a field as wide as the card
    assert box["y"] < label["y"] + 30, (box, label)  # on the label's first line
    other.check()
    page.get_by_role("button", name="Book a rework visit").click()
    expect(page.get_by_text(re.compile(r"Rework visit \d{7} booked\."))).to_be_visible()
    with Session(live.engine) as db:
        rework = db.exec(select(ServiceRequest).where(col(ServiceRequest.avoid_worker_id) == ramesh)).one()
    assert rework.rework_of_id is not None


# -- what the console refuses -------------------------------------------------------------------------


def test_an_agency_cannot_open_another_agencys_worker(live: Live, page: Page) -> None:
    add_user(live.engine, "gomti", Role.PROVIDER, provider="Gomti Services")
    add_user(live.engine, "saryu", Role.PROVIDER, provider="Saryu Services")
    ours = add_worker(live.engine, "Ramesh Kumar", "+919800000001", km_north=1)
    theirs = add_worker(live.engine, "Sunita Devi", "+919800000002", km_north=2)
    belongs_to(live.engine, ours, "Gomti Services")
    belongs_to(live.engine, theirs, "Saryu Services")

    sign_in(page, "gomti")
    expect(page).to_have_url(f"{live.url}/console/workers")
    expect(page.get_by_role("link", name="Ramesh Kumar")).to_be_visible()
    expect(page.get_by_text("Sunita Devi")).to_have_count(0)

    refused = page.goto(f"/console/workers/{theirs}")
    assert refused is not None
    assert refused.status == 403
    expect(page.get_by_role("heading", name="403 · Forbidden")).to_be_visible()
    expect(page.get_by_text("Sunita Devi")).to_have_count(0)
    expect(page.get_by_text("+919800000002")).to_have_count(0)
    shoot(page, "15-forbidden")
    assert "access.refused" in audit_actions(live.engine)

    shown = page.goto(f"/console/workers/{ours}")
    assert shown is not None
    assert shown.status == 200
    expect(page.get_by_role("heading", name=re.compile("Ramesh Kumar"))).to_be_visible()


def test_an_agent_widens_an_escalated_request_then_an_agency_takes_another(
    live: Live, windows: Callable[[], Page]
) -> None:
    add_user(live.engine, "asha", Role.AGENT)
    add_user(live.engine, "gomti", Role.PROVIDER, provider="Gomti Services")
    add_worker(live.engine, "Sunita Devi", "+919800000002", km_north=15)
    theirs = add_worker(live.engine, "Ramesh Kumar", "+919800000001", km_north=60)
    belongs_to(live.engine, theirs, "Gomti Services")
    far, other = (
        filed_in(live.engine, "226001", RequestStatus.ESCALATED),
        filed_in(live.engine, "226001", RequestStatus.ESCALATED),
    )

    agent = windows()
    sign_in(agent, "asha")
    agent.goto(f"/console/requests?q={far}")  # the number the citizen reads out opens the request
    expect(agent).to_have_url(f"{live.url}/console/requests/{far}")
    expect(agent.locator("#nobody")).to_have_text("No eligible worker within 10 km.")
    expect(agent.locator("#beyond")).to_contain_text("Sunita Devi, 15.0 km away")
    expect(agent.locator("#redispatch")).to_be_disabled()
    agent.get_by_label("Radius").select_option("20")
    agent.locator("#check-radius").click()
    expect(agent.locator("#reach ol")).to_contain_text("Sunita Devi")
    shoot(agent, "16-workbench")
    agent.locator("#redispatch").click()
    expect(agent.locator(".flash")).to_have_text("Dispatching again.")
    with Session(live.engine) as db:
        widened = db.exec(select(ServiceRequest).where(ServiceRequest.number == far)).one()
    assert (widened.status, widened.round_radius_km) == (RequestStatus.NEW, 20.0)

    agent.goto(f"/console/requests/{other}")
    agent.locator("#hand select").select_option(label="Gomti Services")
    agent.locator("#hand button").click()
    expect(agent.locator(".flash")).to_have_text("Handed to the agency.")

    agency = windows()
    sign_in(agency, "gomti")
    go_to(agency, "Requests")
    agency.get_by_role("link", name=other).click()
    agency.locator("#assign select").select_option(str(theirs))
    agency.locator("#assign button").click()
    expect(agency.locator("#status")).to_have_text("assigned")
    shoot(agency, "17-agency-assigned")
    assert "request.handed" in audit_actions(live.engine)


def test_a_forged_post_is_refused_and_changes_nothing(live: Live, page: Page) -> None:
    add_user(live.engine, "asha", Role.AGENT, phone=DESK_PHONE)
    number = filed_in(live.engine, "226001")
    sign_in(page, "asha")
    page.goto(f"/console/requests/{number}")
    expect(page.locator("#status")).to_have_text("new")

    script_status = page.evaluate(
        """async (number) => {
             const sent = await fetch(`/console/requests/${number}/note`,
                                      {method: "POST", body: new URLSearchParams({note: "forged by a script"})});
             return sent.status;
           }""",
        number,
    )
    assert script_status == 403

    note_form = page.locator("form[action$='/note']")
    note_form.locator("input[name=csrf_token]").evaluate("field => field.remove()")
    note_form.locator("textarea[name=note]").fill("forged without the token")
    with page.expect_response(lambda answer: answer.url.endswith("/note")) as answered:
        note_form.get_by_role("button", name="Save").click()
    assert answered.value.status == 403
    expect(page.get_by_text("This form has expired or did not come from the console.")).to_be_visible()
    shoot(page, "16-forged-form-refused")

    assert "request.note" not in audit_actions(live.engine)
    assert audit_actions(live.engine).count("csrf.refused") == 2
    page.goto(f"/console/requests/{number}")
    expect(page.locator("#timeline")).not_to_contain_text("forged")
    expect(page.get_by_text("Asha · agent")).to_be_visible()  # still signed in: only the forgeries failed


# -- user administration ------------------------------------------------------------------------------


def test_an_admin_adds_an_agent_who_chooses_a_password_at_the_first_sign_in_then_works(
    live: Live, windows: Callable[[], Page]
) -> None:
    add_user(live.engine, "meera", Role.ADMIN)
    add_user(live.engine, "vikram", Role.SUPERVISOR)
    admin = windows()
    sign_in(admin, "meera")
    go_to(admin, "Users")
    admin.get_by_role("link", name="Add a user").click()
    admin.get_by_label("User name").fill("asha")
    admin.get_by_label("Name", exact=True).fill("Asha Verma")
    admin.get_by_label("Role").select_option("agent")
    admin.get_by_label("Desk phone").fill(DESK_PHONE)
    admin.get_by_role("button", name="Add a user").click()
    expect(admin.get_by_text("The user is added.")).to_be_visible()
    first_password = admin.locator("#issued-password").inner_text()
    assert len(first_password) >= 10

    go_to(admin, "Users")
    expect(admin.get_by_role("row", name=re.compile("asha"))).to_contain_text("Must change password")
    shoot(admin, "17-users")
    admin.get_by_role("button", name="हिन्दी").click()
    expect(admin.get_by_role("heading", name="उपयोगकर्ता")).to_be_visible()
    expect(admin.get_by_role("row", name=re.compile("asha"))).to_contain_text("पासवर्ड बदलना ज़रूरी")
    shoot(admin, "18-users-hindi")
    english = [word for word in _words(admin.locator("main thead").inner_text()) if re.fullmatch(r"[A-Za-z]+", word)]
    assert english == [], english  # every column heading in Hindi
    admin.get_by_role("link", name="asha", exact=True).click()
    expect(admin.get_by_role("button", name="उपयोगकर्ता को अक्षम करें")).to_be_visible()
    shoot(admin, "19-user-hindi")
    labels = admin.locator("main label, main button, main h2").all_inner_texts()
    english = [word for text in labels for word in _words(text) if re.fullmatch(r"[A-Za-z]+", word)]
    assert set(english) <= {"English"}, english  # the language names itself; every label is in Hindi

    desk = windows()
    sign_in(desk, "asha", first_password)
    expect(desk).to_have_url(f"{live.url}/console/password")
    expect(desk.get_by_text("Your password was given to you")).to_be_visible()
    expect(desk.locator("header nav")).to_have_count(0)  # nowhere else to go yet
    desk.goto("/console/requests")
    expect(desk).to_have_url(f"{live.url}/console/password")
    shoot(desk, "20-change-password")
    desk.get_by_label("Current password").fill(first_password)
    desk.get_by_label("New password", exact=True).fill("asha chose this one")
    desk.get_by_label("New password again").fill("asha chose this one")
    desk.get_by_role("button", name="Change the password").click()
    expect(desk).to_have_url(f"{live.url}/console/queue")
    expect(desk.get_by_text("Your password is changed.")).to_be_visible()
    go_to(desk, "Requests")
    expect(desk).to_have_url(re.compile(r"/console/requests"))

    supervisor = windows()
    sign_in(supervisor, "vikram")
    expect(supervisor.locator("header nav").get_by_role("link", name="Users")).to_have_count(0)
    with supervisor.expect_response(lambda answer: answer.url.endswith("/console/users")) as answered:
        supervisor.goto("/console/users")
    assert answered.value.status == 403
    actions = audit_actions(live.engine)
    assert actions.index("user.created") < actions.index("user.password_changed")


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def test_the_agent_holds_her_caller_from_the_callers_screen_once_they_talk(
    live: Live, page: Page, sandbox: TwilioSandbox
) -> None:
    """The card comes alive by itself when the caller joins (no reload); it says the call's state in
    words; after each control the focus is back on it (the keyboard's h and m too)."""
    asha = add_user(live.engine, "asha", Role.AGENT, phone=DESK_PHONE)
    caller_waits(live)
    sign_in(page, "asha")
    page.get_by_role("button", name="Ready", exact=True).click()
    page.get_by_role("button", name="Take next caller").click()
    controls = page.locator("#call-controls")
    expect(controls).to_contain_text("The caller is not with you yet")
    expect(page.get_by_role("button", name="Hold")).to_be_disabled()
    expect(page.get_by_role("button", name="Hold")).to_have_accessible_description(re.compile("not with you yet"))
    shoot(page, "22-call-controls-before-the-caller")

    # Her desk phone answers and she presses 1; Twilio runs the caller's call at the URL it was moved to.
    leg = {"CallSid": "CA" + "7" * 32, "From": "+18005550100", "To": DESK_PHONE, "Direction": "outbound-api"}
    assert "<Conference" in twilio_posts(live, f"/twilio/voice/agent/answer?user={asha.id}", {**leg, "Digits": "1"})
    [move] = sandbox.control
    assert move["call"] == CALL_SID
    caller = {"CallSid": CALL_SID, "From": CITIZEN, "To": "+18005550100", "Direction": "inbound"}
    assert f">{CALL_SID}</Conference>" in twilio_posts(live, "/twilio/voice/queue/connect", caller)

    # No reload: the card fetches itself again and its controls come alive, saying the caller hears her.
    expect(page.get_by_role("button", name="Hold")).to_be_enabled()
    state = controls.locator("#call-state")
    expect(state).to_have_text("You are talking with the caller.")
    expect(controls.locator("#call-why-not")).to_have_count(0)
    page.get_by_role("button", name="Hold").click()
    expect(state).to_have_text("The caller is on hold and hears music.")
    expect(page.get_by_role("button", name="Resume")).to_be_focused()  # the focus back where she pressed
    expect(page.get_by_role("button", name="Resume")).to_have_accessible_description(
        "The caller is on hold and hears music."
    )
    shoot(page, "23-call-controls-on-hold")
    assert [c["action"] for c in sandbox.control] == ["call.update", "conference.list", "participant.update"]

    # The keyboard: m mutes her (one Mute, the room's), h takes the caller back; the focus follows.
    expect(page.get_by_role("button", name="Mute", exact=True)).to_have_attribute("aria-keyshortcuts", "m")
    page.keyboard.press("m")
    expect(state).to_have_text("The caller is on hold and hears music. You are muted: the caller does not hear you.")
    expect(page.get_by_role("button", name="Unmute")).to_be_focused()
    page.keyboard.press("h")
    expect(state).to_have_text("You are muted: the caller does not hear you.")
    expect(page.get_by_role("button", name="Hold")).to_be_focused()
    updates = [c["params"] for c in sandbox.control if c["action"] == "participant.update"]
    assert [(u.get("Hold"), u.get("Muted")) for u in updates] == [("true", None), (None, "true"), ("false", None)]


def test_an_agent_chosen_to_transfer_to_stays_chosen_while_the_card_changes_and_only_while_offered(
    live: Live, page: Page, sandbox: TwilioSandbox
) -> None:
    """The card is drawn again when another agent's state changes; the agent Asha picked to transfer
    her caller to stays picked, until he is no longer one she can send the caller to."""
    asha = add_user(live.engine, "asha", Role.AGENT, phone=DESK_PHONE)
    meera = add_user(live.engine, "meera", Role.AGENT)
    ravi = add_user(live.engine, "ravi", Role.AGENT)
    caller_waits(live)
    sign_in(page, "asha")
    page.get_by_role("button", name="Ready", exact=True).click()
    page.get_by_role("button", name="Take next caller").click()
    leg = {"CallSid": "CA" + "7" * 32, "From": "+18005550100", "To": DESK_PHONE, "Direction": "outbound-api"}
    twilio_posts(live, f"/twilio/voice/agent/answer?user={asha.id}", {**leg, "Digits": "1"})
    caller = {"CallSid": CALL_SID, "From": CITIZEN, "To": "+18005550100", "Direction": "inbound"}
    twilio_posts(live, "/twilio/voice/queue/connect", caller)
    target = page.get_by_label("Transfer to agent")
    expect(target).to_be_enabled()  # the card came alive: the caller is with her
    target.select_option(str(ravi.id))  # Meera is first in the list

    runtime = live.app.extensions["sewamitra"]
    assert ravi.id is not None
    desk.pause(runtime.redis, runtime.engine, ravi.id, "lunch", runtime.clock.now())
    expect(target.locator("option:checked")).to_have_text(re.compile("Ravi · Paused"))  # drawn again, still him

    with session_scope(live.engine) as db:
        gone = db.get(User, ravi.id)
        assert gone is not None
        gone.active = False
        db.add(gone)
    expect(target.locator("option")).to_have_count(1)  # drawn again without him: Meera is who is left
    expect(target).to_have_value(str(meera.id))


# -- an agent's call recording -------------------------------------------------------------------------


def test_an_agent_pauses_the_recording_while_the_caller_reads_a_card_number_then_resumes_it(
    live: Live, page: Page, sandbox: TwilioSandbox
) -> None:
    asha = add_user(live.engine, "asha", Role.AGENT, phone=DESK_PHONE)
    caller_waits(live)
    sign_in(page, "asha")
    page.get_by_role("button", name="Ready", exact=True).click()
    page.get_by_role("button", name="Take next caller").click()
    card = page.locator("#call-recording")
    expect(card.get_by_role("button", name="Pause recording")).to_be_disabled()  # the desk phone still rings
    expect(card.get_by_role("button", name="Pause recording")).to_have_accessible_description(
        "The caller is not with you yet: the controls work once you talk."
    )

    # Her desk phone answers and she presses 1: her leg opens the caller's room, recorded; the caller,
    # moved there by REST, is told the call is recorded (in Hindi, their language) before joining it.
    leg = {"CallSid": "CA" + "7" * 32, "From": "+18005550100", "To": DESK_PHONE, "Direction": "outbound-api"}
    opened = twilio_posts(live, f"/twilio/voice/agent/answer?user={asha.id}", {**leg, "Digits": "1"})
    assert 'record="record-from-start"' in opened
    caller = {"CallSid": CALL_SID, "From": CITIZEN, "To": "+18005550100", "Direction": "inbound"}
    joined = twilio_posts(live, "/twilio/voice/queue/connect", caller)
    told = joined.index("गुणवत्ता और सुरक्षा के लिए यह कॉल रिकॉर्ड की जाती है।")
    assert told < joined.index(f">{CALL_SID}</Conference>")

    page.reload()
    expect(card).to_contain_text("This call is recorded; the caller was told so.")
    card.get_by_role("button", name="Pause recording").click()
    expect(page.get_by_text("Recording paused: what is said now is not kept.")).to_be_visible()
    expect(card.get_by_role("status")).to_contain_text("What is said now is not recorded.")
    shoot(page, "06-caller-screen-recording-paused")
    # Done: she resumes it from the keyboard (out of the caller's form first: Escape, then s).
    expect(card.get_by_role("button", name="Resume recording")).to_have_attribute("aria-keyshortcuts", "s")
    page.keyboard.press("Escape")
    page.keyboard.press("s")
    expect(page.get_by_text("Recording again.")).to_be_visible()
    expect(card.get_by_role("button", name="Pause recording")).to_be_enabled()

    asked = [r["params"].get("Status") for r in sandbox.control if r["action"] == "recording.update"]
    assert asked == ["paused", "in-progress"]
    actions = audit_actions(live.engine)
    assert actions.index("agent.recording_paused") < actions.index("agent.recording_resumed")
