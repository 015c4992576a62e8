"""Wrap-up codes and quality review in a real browser (the fixtures of tests/browser.py): the
agent's call ends, the wrap-up form appears in their bar with the focus on its code select, ending
wrap-up without a code is refused, a code ends it; a supervisor scores the call on its page.
Screenshots go to var/screenshots/ to be looked at."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect
from sqlmodel import Session, select

from callcentre import desk
from storage.models import AgentCall, Role
from tests.browser import (
    CALL_SID,
    DESK_PHONE,
    Live,
    caller_waits,
    refreshed,
    shoot,
    sign_in,
)
from tests.console import add_user


def the_call_ends(served: Live, agent_id: int) -> None:
    """The platform puts the caller through to the agent and the desk phone hangs up later (what
    the voice webhooks tell the desk)."""
    runtime = served.app.extensions["sewamitra"]
    desk.bridged(runtime.redis, runtime.engine, agent_id, CALL_SID, "hi", runtime.clock.now())
    desk.leg_ended(runtime.redis, runtime.engine, agent_id, runtime.settings.agents, runtime.clock.now())


def saved_and_ended(served: Live, bar: Locator) -> tuple[str | None, str | None]:
    """Save and end wrap-up pressed: the agent is Ready, and the call's code and note as stored."""
    bar.get_by_role("button", name="Save and end wrap-up").click()
    expect(bar.locator("#agent-state")).to_have_text("Ready")
    with Session(served.engine) as db:
        call = db.exec(select(AgentCall).where(AgentCall.call_sid == CALL_SID)).one()
    return call.disposition, call.disposition_note


def test_the_wrap_up_form_takes_the_focus_when_the_call_ends_and_ends_wrap_up_only_with_a_code(
    live: Live,
    page: Page,
) -> None:
    asha = add_user(live.engine, "asha", Role.AGENT, phone=DESK_PHONE)
    assert asha.id is not None
    sign_in(page, "asha")
    bar = page.get_by_role("region", name="Your state")
    bar.get_by_role("button", name="Ready", exact=True).click()
    expect(bar.locator("#agent-state")).to_have_text("Ready")

    the_call_ends(live, asha.id)  # the bar's next fetch shows wrap-up and its form
    code = bar.get_by_label("Wrap-up code")
    expect(code).to_be_visible()
    expect(code).to_be_focused()
    shoot(page, "40-agent-wrap-up-form")

    # Ending wrap-up (End wrap-up, or a pause) waits for the code, and says so; End wrap-up is the one
    # way to Ready from here (no second Ready beside it).
    end = bar.get_by_role("button", name="End wrap-up", exact=True)
    for waiting in (end, bar.get_by_role("button", name="Pause", exact=True)):
        expect(waiting).to_be_disabled()
        expect(waiting).to_have_accessible_description("Wrap-up ends early only with a code.")
    expect(bar.get_by_role("button", name="Ready", exact=True)).to_have_count(0)

    page.keyboard.press("ArrowDown")  # keyboard only: the first code, a note, then save and end
    page.keyboard.press("Tab")
    page.keyboard.type("Booked a plumber")
    assert saved_and_ended(live, bar) == ("booked", "Booked a plumber")


def test_a_code_and_note_being_written_stay_while_the_bar_refreshes(live: Live, page: Page) -> None:
    """An agent takes longer than the bar's refresh to write a note: what they chose and typed stays,
    through the bar's fetches, until they save it."""
    asha = add_user(live.engine, "asha", Role.AGENT, phone=DESK_PHONE)
    assert asha.id is not None
    sign_in(page, "asha")
    bar = page.get_by_role("region", name="Your state")
    bar.get_by_role("button", name="Ready", exact=True).click()
    the_call_ends(live, asha.id)
    code = bar.get_by_label("Wrap-up code")
    expect(code).to_be_focused()

    code.select_option("booked")
    note = bar.get_by_label("Note (optional)")
    note.fill("Booked a plumber for Tuesday")
    refreshed(page)
    refreshed(page)  # two fetches of the bar, each a second or more after the state's timers began
    expect(code).to_have_value("booked")
    expect(note).to_have_value("Booked a plumber for Tuesday")
    assert saved_and_ended(live, bar) == ("booked", "Booked a plumber for Tuesday")


def test_a_choice_not_yet_sent_stays_when_the_bar_changes_around_it(live: Live, page: Page) -> None:
    """The bar is drawn again because something did change (a caller rings): the pause reason the
    agent had chosen, and not yet sent, is still chosen."""
    add_user(live.engine, "asha", Role.AGENT, phone=DESK_PHONE)
    sign_in(page, "asha")
    bar = page.get_by_role("region", name="Your state")
    bar.get_by_role("button", name="Ready", exact=True).click()
    expect(bar.locator("#agent-state")).to_have_text("Ready")
    reason = bar.get_by_label("Pause reason")
    reason.select_option("lunch")

    caller_waits(live)
    expect(bar.locator("#offer")).to_contain_text("A caller is ringing for you")
    expect(reason).to_have_value("lunch")


def test_a_supervisor_scores_the_call_on_its_page(
    live: Live,
    page: Page,
) -> None:
    asha = add_user(live.engine, "asha", Role.AGENT, phone=DESK_PHONE)
    assert asha.id is not None
    add_user(live.engine, "sunita", Role.SUPERVISOR)
    the_call_ends(live, asha.id)
    with Session(live.engine) as db:
        call_id = db.exec(select(AgentCall.id).where(AgentCall.call_sid == CALL_SID)).one()

    sign_in(page, "sunita")
    page.locator("header nav").get_by_role("link", name="Agent calls", exact=True).click()
    page.get_by_role("link", name="Wrap-up codes", exact=True).click()
    expect(page.locator("#codes-by-code")).to_contain_text("No code yet")
    shoot(page, "41-supervisor-wrap-up-codes")
    page.goto(f"/console/calls/{call_id}")
    for item, points in (("Greeting", 10), ("Caller's language", 10), ("Identity check", 5), ("Resolution", 30)):
        page.get_by_label(item, exact=True).fill(str(points))
    page.get_by_label("Courtesy", exact=True).fill("20")
    page.get_by_label("Comment: Identity check").fill("Did not read the PIN code back")
    shoot(page, "42-supervisor-scorecard")
    page.get_by_role("button", name="Save the review").click()
    expect(page.locator("#review-result")).to_contain_text("75 / 100 · Passed")
    shoot(page, "43-supervisor-scorecard-saved")
