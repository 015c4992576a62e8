"""The softphone in a real browser (Chromium, Playwright; the fixtures of tests/browser.py):
the console serves the platform's voice SDK itself (vendored; every HTTP request the page makes is to
the helpline), loads it, the agent chooses "in this browser", accepts a caller, and the softphone
asks the helpline for a token and says what it is doing.

The platform cannot be reached from here, so the call itself cannot connect: what is asserted is the
helpline's side (the token given, the state shown, the caller freed when the browser cannot reach the
platform) and that the only address outside the helpline the page tries is the platform's own
signalling server. Chromium runs with a fake microphone (granted); a second window without one
shows "Microphone blocked". Screenshots go to var/screenshots/ to be looked at.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, expect, sync_playwright

from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from storage import agents
from storage.agents import AgentState
from storage.models import Role
from tests.browser import (
    CALL_SID,
    CHROMIUM_ARGS,
    SCREEN,
    Live,
    audit_actions,
    caller_waits,
    live,
    shoot,
    sign_in,
    twilio_posts,
)
from tests.console import add_user
from tests.factories import ACCOUNT_SID, CITIZEN, with_browser_phones

__all__ = ["live"]  # the live console's fixture, shared with the console's browser tests
TWILIO_SIGNALLING = "voice-js.roaming.twilio.com"
FAKE_MICROPHONE = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
# Twilio's Voice SDK as far as softphone.js uses it (Device, on, connect, the call's accept and
# disconnect), standing in for the vendored one where the platform cannot be reached: the call is
# accepted at once, as the real SDK does once Twilio has asked the helpline for the leg (the test
# posts that request itself, as Twilio would). What the page did is left on `window` for the test.
CONNECTING_SDK = """
window.Twilio = {Device: function () { this.handlers = {}; }};
window.Twilio.Device.prototype.on = function (name, handler) { this.handlers[name] = handler; };
window.Twilio.Device.prototype.destroy = function () {};
window.Twilio.Device.prototype.connect = function (options) {
  const call = {handlers: {}, on: function (name, handler) { this.handlers[name] = handler; },
                disconnect: function () { window.softphoneHungUp = true; this.handlers.disconnect(); }};
  window.softphoneCalled = options.params.call;
  setTimeout(function () { call.handlers.accept(); }, 0);
  return Promise.resolve(call);
};
"""

# Every text the softphone's status shows, in order, kept on `window` by each page: a state that
# lasts an instant (the SDK may fail at once, or only after a while) is still seen to have been shown.
STATUSES_SAID = """
window.softphoneSaid = [];
new MutationObserver(function () {
  const status = document.getElementById("softphone-status");
  const said = window.softphoneSaid;
  if (status && status.textContent !== said[said.length - 1]) said.push(status.textContent);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""

pytestmark = pytest.mark.xdist_group("console_browser")


@pytest.fixture
def helpline_settings(helpline_settings: Settings) -> Settings:
    """The helpline with Twilio's browser credentials (an API key, a TwiML App)."""
    return with_browser_phones(helpline_settings)


@pytest.fixture(scope="module")
def playwright_chromium(chromium: str) -> Iterator[Callable[[list[str]], Browser]]:
    with sync_playwright() as playwright:
        launched: list[Browser] = []

        def launch(extra: list[str]) -> Browser:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS + extra, headless=True)
            launched.append(browser)
            return browser

        yield launch
        for browser in launched:
            browser.close()


def window(launch: Callable[[list[str]], Browser], live: Live, *, microphone: bool) -> tuple[Page, BrowserContext]:
    browser = launch(FAKE_MICROPHONE if microphone else [])
    context = browser.new_context(viewport=SCREEN, base_url=live.url, locale="en-IN", timezone_id="Asia/Kolkata")
    if microphone:
        context.grant_permissions(["microphone"], origin=live.url)
    context.set_default_timeout(10_000)
    return context.new_page(), context


def test_an_agent_answers_in_the_browser_with_the_vendored_sdk_and_the_softphone_says_what_it_does(
    live: Live, playwright_chromium: Callable[[list[str]], Browser]
) -> None:
    page, context = window(playwright_chromium, live, microphone=True)
    requested: list[str] = []
    sockets: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("websocket", lambda socket: sockets.append(socket.url))
    page.add_init_script(STATUSES_SAID)
    user = add_user(live.engine, "asha", Role.AGENT)  # no desk phone: she answers in the browser
    sign_in(page, "asha")

    choice = page.get_by_role("group", name="Answer callers")
    expect(choice.get_by_label("In this browser")).to_be_checked()  # the default, the platform's browser set up
    choice.get_by_label("On my desk phone").check()
    choice.get_by_role("button", name="Save").click()
    expect(page.get_by_role("group", name="Answer callers").get_by_label("On my desk phone")).to_be_checked()
    expect(page.locator("#softphone")).to_have_count(0)  # the desk phone: no softphone, no SDK
    choice = page.get_by_role("group", name="Answer callers")
    choice.get_by_label("In this browser").check()
    choice.get_by_role("button", name="Save").click()

    softphone = page.locator("#softphone")
    expect(softphone.get_by_role("status")).to_have_text("Browser phone: waiting for a caller")
    expect(softphone.get_by_role("button", name="Hang up")).to_be_disabled()
    expect(softphone.get_by_role("button", name="Hang up")).to_have_accessible_description(
        "Browser phone: waiting for a caller"
    )
    page.wait_for_load_state("load")  # the deferred scripts (the SDK among them) have run
    assert page.evaluate("typeof window.Twilio.Device") == "function"  # the SDK the helpline served, loaded
    shoot(page, "60-softphone-waiting")

    page.get_by_role("region", name="Your state").get_by_role("button", name="Ready", exact=True).click()
    caller_waits(live)
    expect(page.get_by_role("button", name="Accept")).to_be_focused()  # her console rings
    with page.expect_response("**/console/agent/token") as token:
        page.get_by_role("button", name="Accept").click()
        # Shown as it starts: the SDK's failure to reach Twilio may replace it at once.
        page.wait_for_function("() => window.softphoneSaid.includes('Connecting…')")
    assert token.value.status == 200
    assert token.value.json()["identity"] == f"agent-{user.id}"

    # The SDK now tries Twilio's signalling server, out of reach here: the call fails, the softphone
    # says so and tells the helpline, which pauses the agent and frees the caller for another.
    status = page.locator("#softphone-status")
    expect(status).to_have_text("Could not connect the call: the caller goes back to the queue.", timeout=30_000)
    said = page.evaluate("window.softphoneSaid")
    assert said.index("Connecting…") < said.index("Could not connect the call: the caller goes back to the queue.")
    expect(page.get_by_role("region", name="Your state").locator("#agent-reason")).to_have_text("Missed a caller")
    shoot(page, "62-softphone-could-not-connect")
    assert user.id is not None
    after = agents.status(live.app.extensions["sewamitra"].redis, user.id)
    assert (after.state, after.reason) == (AgentState.PAUSED, "missed")
    assert "softphone.token" in audit_actions(live.engine)

    ours = urlsplit(live.url).netloc
    assert {urlsplit(url).netloc for url in requested if not url.startswith("data:")} == {ours}
    assert any(url.endswith("/console/static/vendor/twilio-voice-sdk/twilio.min.js") for url in requested)
    assert {urlsplit(url).netloc for url in sockets} == {TWILIO_SIGNALLING}  # the platform itself, tried
    context.close()


def test_a_blocked_microphone_is_said_and_the_caller_goes_to_another_agent(
    live: Live, playwright_chromium: Callable[[list[str]], Browser]
) -> None:
    page, context = window(playwright_chromium, live, microphone=False)
    context.grant_permissions([], origin=live.url)  # the agent said no to the microphone
    user = add_user(live.engine, "ravi", Role.AGENT)
    sign_in(page, "ravi")
    page.get_by_role("region", name="Your state").get_by_role("button", name="Ready", exact=True).click()
    caller_waits(live)
    page.get_by_role("button", name="Accept").click()

    expect(page.locator("#softphone-status")).to_have_text(
        "Microphone blocked: allow it for this site in the browser, then take the caller again."
    )
    shoot(page, "63-softphone-microphone-blocked")
    assert "softphone.token" not in audit_actions(live.engine)  # no token asked without a microphone
    assert user.id is not None
    expect(page.get_by_role("region", name="Your state").locator("#agent-reason")).to_have_text("Missed a caller")
    context.close()


@pytest.mark.parametrize("telephony_platform", ["plivo"])
def test_on_plivo_the_console_serves_and_loads_plivos_browser_sdk(
    live: Live, playwright_chromium: Callable[[list[str]], Browser], telephony_platform: str
) -> None:
    page, context = window(playwright_chromium, live, microphone=True)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    add_user(live.engine, "asha", Role.AGENT)
    sign_in(page, "asha")

    expect(page.locator("#softphone-status")).to_have_text("Browser phone: waiting for a caller")
    page.wait_for_load_state("load")  # the deferred scripts (the SDK among them) have run
    assert page.evaluate("typeof window.Plivo") == "function"
    assert "twilio" not in page.content()
    assert {urlsplit(url).netloc for url in requested} == {urlsplit(live.url).netloc}
    assert any(url.endswith("/console/static/vendor/plivo-browser-sdk/plivobrowsersdk.js") for url in requested)
    context.close()


def test_in_the_browser_there_is_one_mute_the_rooms_and_the_call_goes_on_while_she_works_the_page(
    live: Live, playwright_chromium: Callable[[list[str]], Browser], sandbox: TwilioSandbox
) -> None:
    """An agent answering in the browser had two Mutes (the SDK's own, and the room's on the caller's
    screen), and every control of the caller's screen left the page, which ends the browser's call.
    Now: one Mute, the room's, which says its state; and while the call is live the screen's forms
    (Mute, Create request) are followed without leaving the page, so the call goes on."""
    page, context = window(playwright_chromium, live, microphone=True)
    page.route(
        "**/console/static/vendor/twilio-voice-sdk/twilio.min.js",
        lambda route: route.fulfill(body=CONNECTING_SDK, content_type="text/javascript"),
    )
    dialogs: list[str] = []

    def asked(dialog: Dialog) -> None:  # "leave the page?": the call would end
        dialogs.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", asked)
    asha = add_user(live.engine, "asha", Role.AGENT)  # no desk phone: she answers in the browser
    sign_in(page, "asha")
    page.get_by_role("region", name="Your state").get_by_role("button", name="Ready", exact=True).click()
    caller_waits(live)
    page.get_by_role("button", name="Accept").click()
    expect(page.locator("#softphone-status")).to_have_text("On a call")
    assert page.evaluate("window.softphoneCalled") == CALL_SID

    # Twilio asks the TwiML App's Voice URL for the browser's leg, then runs the caller's call where
    # the helpline moved it: both in the caller's room. The card comes alive by itself.
    browser_leg = "CA" + "8" * 32
    form = {"CallSid": browser_leg, "AccountSid": ACCOUNT_SID, "From": f"client:agent-{asha.id}", "To": ""}
    form |= {"CallStatus": "ringing", "Direction": "inbound", "call": CALL_SID}
    assert "<Conference" in twilio_posts(live, "/twilio/voice/client", form)
    caller = {"CallSid": CALL_SID, "From": CITIZEN, "To": "+18005550100", "Direction": "inbound"}
    assert f">{CALL_SID}</Conference>" in twilio_posts(live, "/twilio/voice/queue/connect", caller)
    expect(page.get_by_role("button", name="Hold")).to_be_enabled()

    expect(page.get_by_role("button", name="Mute", exact=True)).to_have_count(1)  # one Mute: the room's
    expect(page.locator("#softphone").get_by_role("button", name="Mute")).to_have_count(0)
    page.evaluate("window.stillHere = true")  # gone if the page is left (the browser's call with it)
    page.get_by_role("button", name="Mute", exact=True).click()
    expect(page.locator("#call-state")).to_have_text("You are muted: the caller does not hear you.")
    expect(page.get_by_role("button", name="Unmute")).to_be_focused()
    shoot(page, "64-softphone-one-mute")
    muted = [c for c in sandbox.control if c["action"] == "participant.update" and c["params"].get("Muted")]
    assert [(c["call"], c["params"]["Muted"]) for c in muted] == [(browser_leg, "true")]  # her browser's leg
    assert page.evaluate("window.stillHere") is True
    assert page.evaluate("window.softphoneHungUp") is None

    page.get_by_label("Service").select_option("plumber")
    page.get_by_label("PIN code").fill("226001")
    page.get_by_label("Address note").fill("12 Hazratganj")
    page.get_by_role("button", name="Create request").click()
    expect(page).to_have_url(re.compile(r"/console/requests/\d{7}$"))
    expect(page.get_by_text("Request created.")).to_be_visible()
    assert page.evaluate("window.stillHere") is True  # booked without leaving the page: still talking
    expect(page.locator("#softphone-status")).to_have_text("On a call")
    page.get_by_role("link", name="Open the caller's screen").click()
    expect(page.get_by_role("button", name="Unmute")).to_be_visible()
    assert page.evaluate("window.stillHere") is True
    assert dialogs == []  # never asked "leave the page?"

    page.get_by_role("button", name="Hang up").click()
    expect(page.locator("#softphone-status")).to_have_text("Call ended")
    assert page.evaluate("window.softphoneHungUp") is True
    context.close()
