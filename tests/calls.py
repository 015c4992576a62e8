"""A citizen's call as the chaos tests place it: keys, and things happening on the line between
them; whatever happens, Twilio must never log an error."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from ivr.simulator import CallSimulator, FlaskTransport, Transcript
from tests.conftest import AUTH_TOKEN, PUBLIC_URL


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


def call(app: Flask, keys: Line | list[str], *, caller: str) -> Transcript:
    """A citizen rings the helpline from `caller` and keys `keys`; Twilio's rules, Twilio's signatures."""
    transport = FlaskTransport(app.test_client(), PUBLIC_URL, AUTH_TOKEN)
    transcript = CallSimulator(transport, public_url=PUBLIC_URL, from_number=caller).run(keys)
    assert not transcript.errors, transcript.render(requests=True)
    assert all(r.status < 500 for r in transcript.requests), transcript.render(requests=True)
    return transcript
