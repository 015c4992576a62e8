"""The supervisors' wall of agents in a real browser (Chromium, driven by Playwright, with the fixtures
of tests/browser.py): agents ready, paused for lunch and on a call, their timers ticking by
themselves; a caller waiting, and one more shown by the wall's own refresh, without reloading; Listen,
Whisper and Barge on the call. Screenshots at an office screen's 1366 px and a phone's 390 px go to
var/screenshots/ to be looked at."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis
from playwright.sync_api import Page, expect

from callcentre import desk
from storage import callqueue
from storage.models import Role
from tests.browser import PHONE, WIDER_THAN_THE_WINDOW, Live, go_to, shoot, sign_in
from tests.console import add_user
from tests.factories import CITIZEN

pytestmark = pytest.mark.xdist_group("console_browser")
# The console's browser fixtures: the live app over HTTP, the run's Chromium, a window of one's own.


def a_call_centre_at_work(live: Live) -> Callable[[str, int], None]:
    """John talks with a Hindi caller (taken 65 s ago, put through 60 s ago), Asha has been ready
    for 55 s, Ravi at lunch for 45 s; a Hindi caller has waited 90 s. Returns: another caller rings."""
    connection: redis.Redis = live.app.extensions["sewamitra"].redis
    engine = live.engine
    ids: dict[str, int] = {}
    for name in ("asha", "john", "ravi"):
        made = add_user(engine, name, Role.AGENT).id
        assert made is not None
        ids[name] = made
    now = datetime.now(UTC)
    talking = callqueue.Call(str(uuid.uuid4()), CITIZEN, "hi")
    callqueue.note_waiting(connection, talking, 1, 40, (now - timedelta(seconds=65)).timestamp())
    desk.ready(connection, engine, ids["john"], (("hi",), ()), now - timedelta(seconds=70))
    assert desk.take(connection, engine, ids["john"], None, now - timedelta(seconds=65))[0] is not None
    callqueue.bridged(connection, ids["john"], talking.call_sid)
    desk.bridged(connection, engine, ids["john"], talking.call_sid, "hi", now - timedelta(seconds=60))
    desk.ready(connection, engine, ids["asha"], (("hi", "en"), ()), now - timedelta(seconds=55))
    desk.pause(connection, engine, ids["ravi"], "lunch", now - timedelta(seconds=45))

    def rings(language: str, waited_s: int) -> None:
        caller = callqueue.Call(str(uuid.uuid4()), CITIZEN, language)
        callqueue.note_waiting(connection, caller, 1, waited_s, datetime.now(UTC).timestamp())

    rings("hi", 90)
    return rings


def test_the_wall_shows_agents_in_three_states_with_ticking_timers_and_the_callers_waiting(
    live: Live, page: Page
) -> None:
    another_caller_rings = a_call_centre_at_work(live)
    add_user(live.engine, "meera", Role.SUPERVISOR, phone="+919811110009")
    sign_in(page, "meera")
    go_to(page, "Agents now")
    expect(page.get_by_role("heading", name="Agents now")).to_be_visible()

    agents = page.get_by_role("list", name="Agents")
    john = agents.get_by_role("listitem").filter(has_text="John")
    asha = agents.get_by_role("listitem").filter(has_text="Asha")
    ravi = agents.get_by_role("listitem").filter(has_text="Ravi")
    expect(john).to_contain_text("On a call")
    expect(john).to_contain_text("हिन्दी")
    expect(john.locator(".waited")).to_have_text("0:45")  # 40 s in the queue, 5 s while his phone rang
    expect(asha).to_contain_text("Ready")
    expect(ravi).to_contain_text("Paused: Lunch")
    for card in (john, asha, ravi):  # each timer ticks on by itself
        timer = card.locator(".timer")
        shown = timer.inner_text()
        expect(timer).not_to_have_text(shown)
    talked = john.locator(".talked")
    shown = talked.inner_text()
    expect(talked).not_to_have_text(shown)
    for mode in ("Listen", "Whisper", "Barge"):
        expect(john.get_by_role("button", name=mode)).to_be_enabled()
    expect(asha.get_by_role("button", name="Listen")).to_have_count(0)

    queues = page.locator("#queues")
    expect(queues.locator("#waiting-count")).to_have_text("1")
    expect(queues).to_contain_text("हिन्दी: 1")
    longest = queues.locator("#longest-wait")
    shown = longest.inner_text()
    expect(longest).not_to_have_text(shown)
    another_caller_rings("en", 30)  # the wall's next refresh shows them, without reloading
    expect(queues.locator("#waiting-count")).to_have_text("2")
    expect(queues).to_contain_text("English: 1")
    shoot(page, "40-wall-of-agents")

    page.set_viewport_size(PHONE)
    page.reload()
    expect(john).to_contain_text("On a call")
    shoot(page, "41-wall-of-agents-phone")
    page_width, window_width, sticking_out = page.evaluate(WIDER_THAN_THE_WINDOW)
    assert page_width <= window_width == PHONE["width"], f"sideways scroll, from {sticking_out}"
    box = john.bounding_box()
    assert box is not None
    assert box["width"] <= PHONE["width"]
    assert re.search(r"\d+:\d\d", john.locator(".timer").inner_text())
