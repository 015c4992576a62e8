"""The callback list in a real browser (the fixtures of tests/browser.py): an agent opens
Callbacks from the menu, reads a missed caller's row (reason, language, tries n of max, owner, last
outcome, due), takes it, chooses an outcome and writes a note by their labels, and sees the row
move on; on a 390 px phone the list scrolls inside its card, never the page. Screenshots go to
var/screenshots/."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect

from storage.db import session_scope
from storage.models import CallbackRequest, Role
from tests.browser import (
    PHONE,
    WIDER_THAN_THE_WINDOW,
    Live,
    go_to,
    shoot,
    sign_in,
)
from tests.console import add_user
from tests.factories import CITIZEN

pytestmark = pytest.mark.xdist_group("console_browser")


def test_an_agent_takes_a_missed_caller_and_records_a_try_by_the_labelled_outcome_and_note(
    live: Live,
    page: Page,
) -> None:
    add_user(live.engine, "asha", Role.AGENT, phone="+919811110001")
    with session_scope(live.engine) as db:
        db.add(CallbackRequest(phone=CITIZEN, language="hi", reason="missed", created_at=datetime.now(UTC)))

    sign_in(page, "asha")
    go_to(page, "Callbacks")
    row = page.locator("#callback-list tr").nth(1)
    expect(row).to_contain_text("Hung up in the queue")
    expect(row).to_contain_text("0 of 3")
    expect(row).to_contain_text("Not tried yet")
    row.get_by_role("button", name="Take").click()
    expect(page.locator("#callback-list tr").nth(1)).to_contain_text("mine")
    row = page.locator("#callback-list tr").nth(1)
    row.get_by_label("Outcome").select_option(label="No answer")
    row.get_by_label("Note").fill("Rang out after 30 s")
    shoot(page, "30-callbacks")
    row.get_by_role("button", name="Save outcome").click()

    row = page.locator("#callback-list tr").nth(1)
    expect(row).to_contain_text("1 of 3")
    expect(row).to_contain_text("Rang out after 30 s")
    page.set_viewport_size(PHONE)
    shoot(page, "31-callbacks-phone")
    page_width, window_width, sticking_out = page.evaluate(WIDER_THAN_THE_WINDOW)
    assert page_width <= window_width == PHONE["width"], f"sideways scroll, from {sticking_out}"
