"""A citizen's call as the chaos tests place it: keys, and things happening on the line between
them; whatever happens, the platform (Twilio or Plivo) must never log an error."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import Flask
from werkzeug.serving import make_server

from core.settings import Settings
from devtools.plivo_simulator import PlivoCallSimulator, plivo_headers
from devtools.simulator import CallSimulator, HttpTransport, Transcript
from sewamitra.app import create_app
from tests.factories import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, simulator


class Line:
    """The caller's keys, one per prompt, with things happening on the line between them."""

    def __init__(self, *items: str | Callable[[], object]) -> None:
        self.items = list(items)

    def next_key(self) -> str | None:
        while self.items:
            item = self.items.pop(0)
            if isinstance(item, str):
                return item
            item()
        return None


def running_app(settings: Settings) -> Iterator[Flask]:
    """The helpline's web app, its database connections closed when the test is over."""
    app = create_app(settings)
    yield app
    app.extensions["sewamitra"].engine.dispose()


def call(app: Flask, keys: Line | list[str], *, caller: str) -> Transcript:
    """A citizen rings the helpline from `caller` and keys `keys`; the app's platform's rules and signatures."""
    transcript = simulator(app.test_client(), from_number=caller).run(keys)
    assert not transcript.errors, transcript.render(requests=True)
    assert all(r.status < 500 for r in transcript.requests), transcript.render(requests=True)
    return transcript


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """The app on a real HTTP port of its own (threaded, as gunicorn would), for calls placed over
    HTTP with Twilio's 15 s patience; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def call_over_http(base_url: str, keys: Line | list[str], *, caller: str, platform: str = "twilio") -> Transcript:
    """As `call`, over real HTTP: a webhook that does not answer within 15 s is one Twilio gives up on
    (Plivo's own timeouts are not documented: the same patience is asked of the helpline there)."""
    if platform == "plivo":
        http = HttpTransport(base_url, PUBLIC_URL, AUTH_TOKEN, timeout=15, sign=plivo_headers)
        transcript = PlivoCallSimulator(http, public_url=PUBLIC_URL, from_number=caller).run(keys)
    else:
        transport = HttpTransport(base_url, PUBLIC_URL, AUTH_TOKEN, timeout=15, account_sid=ACCOUNT_SID)
        transcript = CallSimulator(transport, public_url=PUBLIC_URL, from_number=caller).run(keys)
    assert not transcript.errors, transcript.render(requests=True)
    assert all(0 < r.status < 500 for r in transcript.requests), transcript.render(requests=True)
    return transcript
