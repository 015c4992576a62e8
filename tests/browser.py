"""The console in a real browser, for the browser tests of tests/e2e: the app served over HTTP (`live`),
a headless Chromium (Debian's, else Playwright's own; `browser`) and its windows (`windows`, `page`),
registered as fixtures by tests/e2e/conftest.py; and what people and Twilio do there (sign in, go to a
section, a caller waiting, a signed webhook). Screenshots go to var/screenshots/ to be looked at.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, sync_playwright
from sqlmodel import Session, col, select
from twilio.request_validator import RequestValidator
from werkzeug.serving import make_server

from core import pincodes
from core.settings import Settings
from sewamitra.app import create_app
from storage.db import session_scope
from storage.models import (
    AuditEvent,
    RequestStatus,
    ServiceRequest,
)
from tests.console import PASSWORD
from tests.factories import (
    ALWAYS_OPEN,
    AUTH_TOKEN,
    CITIZEN,
    ROOT,
    add_request,
    queue_wait_form,
    with_hours,
)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
SCREEN: ViewportSize = {"width": 1366, "height": 768}  # the call centre's office screens
PHONE: ViewportSize = {"width": 390, "height": 844}  # a supervisor away from the desk
SCREENSHOTS = ROOT / "var" / "screenshots"
DESK_PHONE = "+919811112222"
CALL_SID = "CA" + "1" * 32
# What sticks out of the window sideways, making the page scroll: the outermost such elements (a wide
# table inside a card that scrolls on its own does not make the page scroll).
WIDER_THAN_THE_WINDOW = """() => {
  const out = [];
  const width = document.documentElement.clientWidth, scrolled = document.documentElement.scrollWidth;
  for (const element of document.querySelectorAll("body *")) {
    if (element.parentElement.closest(".card")) continue;
    const box = element.getBoundingClientRect();
    if (box.right > width + 0.5 && !out.some((outer) => outer.contains(element))) out.push(element);
  }
  return [scrolled, window.innerWidth, out.map((element) => element.tagName + "." + element.className)];
}"""
NUMBER_IN_URL = re.compile(r"/console/requests/(\d{7})$")


# -- a live console and a browser to use it -----------------------------------------------------------


@dataclass(frozen=True)
class Live:
    """The console served over HTTP, as the call centre reaches it."""

    url: str
    app: Flask

    @property
    def engine(self) -> sa.Engine:
        engine: sa.Engine = self.app.extensions["sewamitra"].engine
        return engine


def _not_listening_yet(environ: object, start_response: Callable[..., object]) -> Iterable[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting\n"]


@pytest.fixture
def live(helpline_settings: Settings) -> Iterator[Live]:
    """The app on a port of its own; its public URL is that plain-http address, so the session
    cookie is not Secure-only and Twilio's signatures are computed over it."""
    server = make_server("127.0.0.1", 0, _not_listening_yet, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    settings = with_hours(helpline_settings.model_copy(update={"public_url": url}), **ALWAYS_OPEN)
    app = create_app(settings)
    server.app = app  # the URL is known only once the server listens; the app is built for it
    thread = threading.Thread(target=server.serve_forever, name="live-console", daemon=True)
    thread.start()
    yield Live(url, app)
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()
    app.extensions["sewamitra"].engine.dispose()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    """The run's Chromium (the system's, else Playwright's own), headless."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def windows(browser: Browser, live: Live) -> Iterator[Callable[[], Page]]:
    """Opens a browser window of its own (own cookies, own session), as on another desk."""
    opened: list[BrowserContext] = []

    def open_window() -> Page:
        context = browser.new_context(viewport=SCREEN, base_url=live.url, locale="en-IN", timezone_id="Asia/Kolkata")
        context.set_default_timeout(10_000)
        opened.append(context)
        return context.new_page()

    yield open_window
    for context in opened:
        context.close()


@pytest.fixture
def page(windows: Callable[[], Page]) -> Page:
    return windows()


# -- what people and Twilio do ------------------------------------------------------------------------


def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/console/sign-in")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def go_to(page: Page, section: str) -> None:
    """Click `section` in the console's menu."""
    page.locator("header nav").get_by_role("link", name=section, exact=True).click()


def refreshed(page: Page) -> None:
    """Wait for the page's next live fetch (static/console.js) to be handled: its part drawn again,
    or left as it was when nothing changed (the `console:refreshed` event)."""
    page.evaluate(
        """() => new Promise((done, fail) => {
            document.addEventListener("console:refreshed", () => done(), {once: true});
            setTimeout(() => fail(new Error("no live part was fetched within 30 s")), 30000);
        })"""
    )


def shoot(page: Page, name: str) -> None:
    """A screenshot of the whole page, for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def caller_waits(live: Live, call_sid: str = CALL_SID, phone: str = CITIZEN, queue_time: int = 75) -> None:
    """Twilio fetches the queue's waitUrl for a caller on hold: over HTTP, signed over the public URL."""
    twilio_posts(live, "/twilio/voice/queue/wait", queue_wait_form(call_sid, phone, queue_time))


def filed_in(engine: sa.Engine, pincode: str, status: RequestStatus = RequestStatus.NEW) -> str:
    """A request from the phone line for `pincode`; its number."""
    place = pincodes.lookup(pincode)
    assert place is not None
    request_id = add_request(engine)
    with session_scope(engine) as db:
        db.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == request_id)
            .values(
                pincode=pincode,
                district=place.district,
                latitude=place.latitude,
                longitude=place.longitude,
                status=status,
            )
        )
        return db.exec(select(ServiceRequest.number).where(ServiceRequest.id == request_id)).one()


def number_on(page: Page) -> str:
    found = NUMBER_IN_URL.search(page.url)
    assert found, page.url
    return found.group(1)


def audit_actions(engine: sa.Engine) -> list[str]:
    with Session(engine) as db:
        return list(db.exec(select(AuditEvent.action).order_by(col(AuditEvent.id))).all())


def belongs_to(engine: sa.Engine, worker_id: int, agency: str) -> None:
    with session_scope(engine) as db:
        db.execute(
            sa.text("UPDATE worker SET provider_id = (SELECT id FROM provider WHERE name = :name) WHERE id = :worker"),
            {"name": agency, "worker": worker_id},
        )


def done_by(engine: sa.Engine, worker_id: int, rating: int) -> str:
    """A job asked for this morning, assigned within 20 minutes, finished an hour ago, and the
    rating the citizen gave it; its number."""
    number = filed_in(engine, "226001", RequestStatus.COMPLETED)
    asked = datetime.now(UTC) - timedelta(hours=3)
    assigned, completed = asked + timedelta(minutes=20), asked + timedelta(hours=2)
    with session_scope(engine) as db:
        db.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.number) == number)
            .values(worker_id=worker_id, rating=rating, created_at=asked, assigned_at=assigned, completed_at=completed)
        )
    return number


def twilio_posts(live: Live, path: str, form: dict[str, str]) -> str:
    """Twilio posts a webhook of a call over HTTP, signed over the public URL; returns its TwiML."""
    url = f"{live.url}{path}"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    posted = urllib.request.Request(
        url, data=urllib.parse.urlencode(form).encode(), headers={"X-Twilio-Signature": signature}, method="POST"
    )
    with urllib.request.urlopen(posted, timeout=10) as answer:
        assert answer.status == 200
        return str(answer.read().decode())
