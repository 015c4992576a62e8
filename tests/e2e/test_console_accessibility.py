"""The agent's screen for a working day, in a real browser (the fixtures of tests/browser.py):
after taking a caller the form has the focus; keys take, accept, pass, pause, end the wrap-up and
jump to the caller screen's parts, never while typing; a skip link first in the tab order; every
control named (Chromium's own accessibility tree says so); text at 4.5:1 and field borders at 3:1,
computed from the styles the browser applied; and the main pages fit a 390 px phone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, select

from callcentre import desk
from storage.models import RequestStatus, Role, User
from tests.browser import (
    CALL_SID,
    DESK_PHONE,
    PHONE,
    WIDER_THAN_THE_WINDOW,
    Live,
    belongs_to,
    caller_waits,
    done_by,
    filed_in,
    shoot,
    sign_in,
)
from tests.console import add_user
from tests.factories import CITIZEN, add_worker

# The same live console and Chromium as the console's other browser tests.
pytestmark = pytest.mark.xdist_group("console_browser")

# Controls a person acts on: each must have a name a screen reader says (the accessible name
# Chromium computed, from a label, aria-label, aria-labelledby, title or a button's words).
CONTROL_ROLES = {"button", "textbox", "searchbox", "combobox", "listbox", "checkbox", "radio", "spinbutton", "link"}
CONTRAST = "\n".join(
    line for line in (Path(__file__).parent / "contrast.js").read_text().splitlines() if not line.startswith("//")
)
WHAT_IS_CHECKED = ".badge, button, a, input, select, textarea, label, th, td, h1, h2, p, .muted"


def unnamed_controls(page: Page) -> list[str]:
    """The controls on the page that Chromium's accessibility tree gives no name."""
    chromium = page.context.new_cdp_session(page)
    tree = chromium.send("Accessibility.getFullAXTree")
    unnamed = [
        node
        for node in tree["nodes"]
        if not node.get("ignored") and node.get("role", {}).get("value") in CONTROL_ROLES and not named(node)
    ]
    described = [chromium.send("DOM.describeNode", {"backendNodeId": node["backendDOMNodeId"]}) for node in unnamed]
    return [f"<{d['node']['localName']} {' '.join(d['node'].get('attributes', []))}>" for d in described]


def named(node: dict[str, Any]) -> bool:
    """A name a person gave the control: a placeholder is a hint that goes away, not a label."""
    name = node.get("name", {})
    used = [source for source in name.get("sources", []) if "value" in source and not source.get("superseded")]
    from_placeholder = bool(used) and used[0].get("attribute") == "placeholder"
    return bool(str(name.get("value", "")).strip()) and not from_placeholder


def too_faint(page: Page) -> list[tuple[str, float, float]]:
    return [
        (what, round(ratio, 2), needed)
        for what, ratio, needed in page.evaluate(CONTRAST, WHAT_IS_CHECKED)
        if ratio < needed
    ]


def fits(page: Page, name: str) -> None:
    """Nothing on the page sticks out of a 390 px window."""
    page_width, window_width, sticking_out = page.evaluate(WIDER_THAN_THE_WINDOW)
    assert page_width <= window_width == PHONE["width"], f"{name}: sideways scroll, from {sticking_out}"


def in_state(page: Page, state: str) -> None:
    """The state bar says `state`, on a page whose scripts have run (a key pressed sooner is lost)."""
    expect(page.get_by_role("region", name="Your state").locator("#agent-state")).to_have_text(state)
    page.wait_for_load_state("load")


def focused_name(page: Page) -> str:
    return str(page.evaluate("() => document.activeElement.name || document.activeElement.id"))


def the_call_ends(live: Live, username: str) -> None:
    """The agent's desk phone was put through to the caller, then hung up (what the platform's
    callbacks tell the desk): wrap-up begins."""
    runtime = live.app.extensions["sewamitra"]
    with Session(live.engine) as db:
        user_id = db.exec(select(User.id).where(User.username == username)).one()
    assert user_id is not None
    now = datetime.now(UTC)
    desk.bridged(runtime.redis, live.engine, user_id, CALL_SID, "hi", now)
    desk.leg_ended(runtime.redis, live.engine, user_id, runtime.settings.agents, now)


# -- focus and keys -----------------------------------------------------------------------------------


def test_an_agent_works_a_caller_from_the_keyboard(live: Live, page: Page) -> None:
    add_user(live.engine, "asha", Role.AGENT, phone=DESK_PHONE)
    sign_in(page, "asha")
    bar = page.get_by_role("region", name="Your state")
    in_state(page, "Not ready")
    expect(bar.get_by_role("button", name="Ready", exact=True)).to_have_attribute("aria-keyshortcuts", "r")

    page.keyboard.press("r")
    in_state(page, "Ready")
    page.keyboard.press("z")  # pause, with the reason the select shows
    in_state(page, "Paused")
    page.keyboard.press("r")
    in_state(page, "Ready")

    caller_waits(live)
    expect(bar.get_by_role("button", name="Accept")).to_be_focused()
    expect(bar.get_by_role("button", name="Pass")).to_have_attribute("aria-keyshortcuts", "p")
    page.keyboard.press("p")  # let it pass: the caller goes back to the queue
    expect(bar.locator("#offer")).to_have_count(0)
    page.wait_for_load_state("load")
    page.keyboard.press("r")
    in_state(page, "Ready")

    caller_waits(live)
    expect(bar.locator("#offer")).to_contain_text("A caller is ringing for you")
    page.locator("main").focus()  # away from Accept: the key works wherever the focus is
    page.keyboard.press("a")
    expect(page).to_have_url(re.compile(r"/console/callers/\d+\?call=" + CALL_SID))
    phone = page.get_by_label("Phone")
    expect(phone).to_be_focused()  # the caller's form, first field
    expect(phone).to_have_value(CITIZEN)

    address = page.get_by_label("Address note")
    address.fill("near the water tank, ")
    address.press_sequentially("call back at noon")  # a, n, c, b, t typed are the field's, not shortcuts
    expect(address).to_have_value("near the water tank, call back at noon")
    expect(page).to_have_url(re.compile(r"/console/callers/\d+\?call=" + CALL_SID))
    page.keyboard.press("Escape")  # out of the field: keys are shortcuts again
    page.keyboard.press("c")
    assert focused_name(page) == "due"  # the callback's first field
    page.locator("main").focus()
    page.keyboard.press("b")
    expect(phone).to_be_focused()

    page.locator("main").focus()
    page.keyboard.press("?")
    help_box = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_box).to_be_visible()
    expect(help_box).to_contain_text("Take next caller")
    shoot(page, "40-keyboard-shortcuts")
    page.keyboard.press("n")  # the dialog is open: nothing else is pressed
    page.keyboard.press("Escape")
    expect(help_box).to_be_hidden()

    the_call_ends(live, "asha")
    page.reload()
    in_state(page, "Wrap-up")
    code = page.get_by_label("Wrap-up code")
    expect(code).to_be_focused()  # the wrap-up form asks for the call's code first
    code.select_option("booked")  # (ending wrap-up early without one is refused: test_console_wrap_up)
    with page.expect_navigation():  # saved: the page comes back with the code kept
        page.get_by_role("button", name="Save code").click()
    expect(page.get_by_label("Wrap-up code")).to_be_focused()
    page.keyboard.press("Escape")  # out of the form's field
    page.keyboard.press("e")
    expect(bar.locator("#agent-state")).not_to_have_text("Wrap-up")


def test_take_next_caller_by_key_puts_the_focus_on_the_form(live: Live, page: Page) -> None:
    add_user(live.engine, "asha", Role.AGENT, phone=DESK_PHONE)
    caller_waits(live)
    sign_in(page, "asha")
    page.keyboard.press("n")  # not ready: Take next caller is disabled, nothing happens
    expect(page).to_have_url(re.compile(r"/console/queue$"))
    page.get_by_role("button", name="Ready", exact=True).click()
    expect(page.get_by_role("button", name="Take next caller")).to_be_enabled()
    page.get_by_role("button", name="Take next caller").focus()
    page.locator("main").focus()
    page.keyboard.press("n")
    expect(page).to_have_url(re.compile(r"/console/callers/\d+\?call=" + CALL_SID))
    expect(page.get_by_label("Phone")).to_be_focused()


def test_the_skip_link_is_first_and_moves_to_the_page(live: Live, page: Page) -> None:
    add_user(live.engine, "vikram", Role.SUPERVISOR)
    sign_in(page, "vikram")
    for path in ("/console/queue", "/console/dashboard", "/console/workers", "/console/requests", "/console/worklist"):
        page.goto(path)
        page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to main content")
        expect(skip).to_be_focused()
        expect(skip).to_be_in_viewport()
        if path == "/console/queue":
            shoot(page, "41-skip-link")
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main", path
        page.keyboard.press("Tab")  # on from the page: past the header's menu and the state bar
        assert page.evaluate("document.activeElement.closest('header, #agent-desk') === null"), path


# -- labels and contrast ------------------------------------------------------------------------------


def _a_day_of_work(live: Live) -> tuple[str, str]:
    """A supervisor's console with something on every page; the request's number and a worker's id."""
    add_user(live.engine, "vikram", Role.SUPERVISOR, phone=DESK_PHONE)
    add_user(live.engine, "gomti", Role.PROVIDER, provider="Gomti Services")
    ramesh = add_worker(live.engine, "Ramesh Kumar", "+919800000001", km_north=1)
    sunita = add_worker(live.engine, "Sunita Devi", "+919800000002", km_north=2, verified=False)
    belongs_to(live.engine, ramesh, "Gomti Services")
    done = done_by(live.engine, ramesh, rating=1)  # on the worklist
    filed_in(live.engine, "208001", RequestStatus.ESCALATED)
    filed_in(live.engine, "226001", RequestStatus.ASSIGNED)
    caller_waits(live)
    return done, str(sunita)


def _main_pages(number: str, worker: str) -> list[str]:
    return [
        "/console/queue",
        "/console/dashboard",
        "/console/requests",
        f"/console/requests/{number}",
        "/console/requests/new",
        "/console/workers",
        f"/console/workers/{worker}",
        "/console/worklist",
        "/console/escalations",
        "/console/quality",
    ]


def test_every_control_has_a_name_and_text_and_borders_can_be_read(live: Live, windows: Callable[[], Page]) -> None:
    number, worker = _a_day_of_work(live)
    supervisor = windows()
    sign_in(supervisor, "vikram")
    for path in _main_pages(number, worker):
        supervisor.goto(path)
        expect(supervisor.locator("main h1").first).to_be_visible()
        assert unnamed_controls(supervisor) == [], path
        assert too_faint(supervisor) == [], path
    supervisor.goto("/console/worklist")
    row = supervisor.locator("#worklist tr", has_text=number)
    expect(row.get_by_label("Outcome")).to_be_visible()
    expect(row.get_by_label("Notes")).to_be_visible()
    supervisor.goto(f"/console/requests/{number}")
    expect(supervisor.get_by_label("Note", exact=True)).to_be_visible()
    shoot(supervisor, "42-request-note-labelled")
    # An escalated request near Ramesh's agency: its hand-over and assignment lists are named too.
    supervisor.goto(f"/console/requests/{filed_in(live.engine, '226001', RequestStatus.ESCALATED)}")
    expect(supervisor.get_by_role("combobox", name="Agency", exact=True)).to_contain_text("Gomti Services")
    expect(supervisor.get_by_role("combobox", name="Worker", exact=True)).to_contain_text("Ramesh Kumar")
    assert unnamed_controls(supervisor) == []

    agency = windows()
    sign_in(agency, "gomti")
    agency.goto("/console/workers")
    assert unnamed_controls(agency) == []
    assert too_faint(agency) == []
    expect(agency.get_by_label("Choose: Ramesh Kumar")).to_be_visible()


def test_the_main_pages_fit_a_phone(live: Live, page: Page) -> None:
    number, _ = _a_day_of_work(live)
    page.set_viewport_size(PHONE)
    sign_in(page, "vikram")
    page.goto("/console/queue")
    page.get_by_role("button", name="Ready", exact=True).click()
    page.get_by_role("button", name="Take next caller").click()
    expect(page).to_have_url(re.compile(r"/console/callers/\d+\?call=" + CALL_SID))
    fits(page, "caller's screen")
    assert unnamed_controls(page) == []
    assert too_faint(page) == []
    shoot(page, "43-caller-phone")
    for path, name in (
        ("/console/queue", "live queue"),
        ("/console/dashboard", "dashboard"),
        (f"/console/requests/{number}", "request"),
        ("/console/workers", "worker list"),
    ):
        page.goto(path)
        expect(page.locator("main h1").first).to_be_visible()
        fits(page, name)
        shoot(page, f"44-{name.replace(' ', '-')}-phone")


# -- an agency's workers, in bulk ---------------------------------------------------------------------


def test_an_agency_marks_its_workers_unavailable_in_bulk_and_is_told_what_could_not_be(live: Live, page: Page) -> None:
    add_user(live.engine, "gomti", Role.PROVIDER, provider="Gomti Services")
    ramesh = add_worker(live.engine, "Ramesh Kumar", "+919800000001", km_north=1)
    sunita = add_worker(live.engine, "Sunita Devi", "+919800000002", km_north=2, available=False)
    for worker in (ramesh, sunita):
        belongs_to(live.engine, worker, "Gomti Services")

    sign_in(page, "gomti")
    expect(page).to_have_url(f"{live.url}/console/workers")
    page.get_by_label("Choose: Ramesh Kumar").check()
    page.get_by_label("Choose: Sunita Devi").check()
    page.get_by_role("button", name="Mark unavailable").click()

    marked = page.get_by_role("status").filter(has_text="Marked unavailable")
    expect(marked).to_contain_text("Marked unavailable: 1")
    expect(marked).to_contain_text("Ramesh Kumar")
    expect(marked.locator("#not-changed")).to_have_text("Sunita Devi: already so")
    expect(page.get_by_role("row", name=re.compile("Ramesh Kumar"))).to_contain_text("Busy")
    shoot(page, "45-agency-bulk-unavailable")

    page.get_by_role("button", name="हिन्दी").click()
    page.get_by_label("चुनें: Ramesh Kumar").check()
    page.get_by_role("button", name="उपलब्ध करें", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="उपलब्ध चिह्नित")).to_contain_text("Ramesh Kumar")
    expect(page.get_by_role("link", name="मुख्य सामग्री पर जाएँ")).to_be_attached()
    shoot(page, "46-agency-bulk-available-hindi")
