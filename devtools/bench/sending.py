"""One SMS's send, as a dispatch job makes it: the helpline's REST clients (over `telephony.http`)
against the SDKs' own (over `requests`), each to a local sandbox of its platform, in the same run.

The two clients of a platform take turns, a block of sends each, and each block is timed by the
sending thread's CPU clock: the sandbox answers from threads of its own, whose CPU is not counted,
and whatever slows the machine falls on both clients alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import plivo
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from devtools.plivo_sandbox import PlivoSandbox
from devtools.twilio_sandbox import TwilioSandbox
from telephony.plivo.http import PLIVO_API
from telephony.plivo.rest import _Elsewhere, plivo_client
from telephony.twilio.rest import twilio_client

ACCOUNT_SID = "AC" + "5e" * 16  # the sandboxes' own credentials: never a real account's
AUTH_ID = "MA" + "SENDBENCH000000000"
AUTH_TOKEN = "bench-sends-" + "0" * 20
TIMEOUT_S = 10.0
BLOCK = 50  # sends a client makes in a turn
WARM_UP = 20  # each client's first sends (a connection opened, code loaded): not what a send costs
WORKER = "+919812345678"
TEXT = "Sewamitra: naya kaam, plumber, 226001 (Hazratganj), aaj 10-12. Haan ke liye 1, na ke liye 2 bhejein."
DLT_ENTITY = "1201159100000000001"
DLT_TEMPLATE = "1207161700000000001"


@dataclass(frozen=True)
class Sends:
    """What one send cost the sending thread, with each client, in ms."""

    ours_ms: float
    sdk_ms: float

    @property
    def ratio(self) -> float:
        return self.ours_ms / self.sdk_ms


def sdk_twilio(account_sid: str, auth_token: str, base_url: str) -> Client:
    """Twilio's SDK with its own HTTP client, on `requests`, at `base_url`."""
    http_client = TwilioHttpClient(timeout=TIMEOUT_S)
    assert http_client.session is not None
    http_client.session.trust_env = False  # proxies from the environment would reroute a local URL
    client = Client(account_sid, auth_token, http_client=http_client)
    client.api.base_url = base_url.rstrip("/")
    client.edge = client.region = None
    return client


def sdk_plivo(auth_id: str, auth_token: str, base_url: str) -> plivo.RestClient:
    """Plivo's SDK as it comes, on `requests`, its requests sent to `base_url`."""
    client = plivo.RestClient(auth_id, auth_token, timeout=TIMEOUT_S)
    client.session.trust_env = False
    client.session.mount(PLIVO_API, _Elsewhere(base_url))
    return client


def measure(count: int) -> dict[str, Sends]:
    """`count` sends with each client of each platform (in whole blocks), by platform."""
    blocks = max(1, count // BLOCK)
    with TwilioSandbox(ACCOUNT_SID, AUTH_TOKEN) as twilio, PlivoSandbox(AUTH_ID, AUTH_TOKEN) as plivo_api:

        def on_twilio(client: Any) -> object:
            return client.messages.create(to=WORKER, from_="+18005550100", body=TEXT)

        def on_plivo(client: Any) -> object:
            return client.messages.create(
                src="SEWMTR",
                dst=WORKER.lstrip("+"),
                text=TEXT,
                url=None,
                method="POST",
                dlt_entity_id=DLT_ENTITY,
                dlt_template_id=DLT_TEMPLATE,
            )

        our_twilio = twilio_client(ACCOUNT_SID, AUTH_TOKEN, api_base_url=twilio.base_url, timeout=TIMEOUT_S)
        our_plivo = plivo_client(AUTH_ID, AUTH_TOKEN, api_base_url=plivo_api.base_url, timeout=TIMEOUT_S)
        return {
            "twilio": _in_turn(our_twilio, sdk_twilio(ACCOUNT_SID, AUTH_TOKEN, twilio.base_url), on_twilio, blocks),
            "plivo": _in_turn(our_plivo, sdk_plivo(AUTH_ID, AUTH_TOKEN, plivo_api.base_url), on_plivo, blocks),
        }


def _in_turn(ours: Any, sdk: Any, send: Callable[[Any], object], blocks: int) -> Sends:
    spent = {"ours": 0.0, "sdk": 0.0}
    for client in (ours, sdk):
        for _ in range(WARM_UP):
            send(client)
    for block in range(blocks):
        order = (("ours", ours), ("sdk", sdk)) if block % 2 == 0 else (("sdk", sdk), ("ours", ours))
        for name, client in order:
            started = time.thread_time()
            for _ in range(BLOCK):
                send(client)
            spent[name] += time.thread_time() - started
    sends = blocks * BLOCK
    return Sends(spent["ours"] / sends * 1000, spent["sdk"] / sends * 1000)
