"""`sewamitra up`'s demo callers follow the helpline's REST moves as the platform would, on Twilio and
on Plivo: a caller waiting in the agent queue is moved into the agent's room as soon as the agent
takes them (their desk phone's key press), not at their next round of hold music. The caller is
placed by the simulator against `up` over HTTP, asking `up`'s sandbox for the moves of its call, as
`sewamitra simulate` does; then by `sewamitra simulate` itself, with keys typed at its prompt. A move
of a call nobody simulates is left alone. One `up` per platform serves the module's tests (each starts
one of about ten seconds of CPU); each test has an agent of its own, with her own desk phone, and a
caller of its own."""

from __future__ import annotations

import functools
import http.cookiejar
import itertools
import re
import subprocess
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from core.settings import load_settings
from devtools.plivo_simulator import PlivoCallSimulator, plivo_headers
from devtools.simulator import (
    CallSimulator,
    Event,
    HttpTransport,
    InRoom,
    Moved,
    Request,
    SandboxMoves,
    Silence,
    Transcript,
)
from devtools.up import running_sandbox
from telephony import call_control
from tests.calls import Line
from tests.factories import PLATFORMS, ROOT
from tests.up import SEWAMITRA, get_json_list, read_output, running_up, wait_for

# One `up` per platform for the module: the platform's parameter is the module's (conftest leaves it be),
# and pytest-xdist's `--dist loadgroup` runs the module's tests in one process, where that `up` runs.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.both_platforms,
    pytest.mark.parametrize("telephony_platform", PLATFORMS, scope="module"),
    pytest.mark.xdist_group("up_agent_moves"),
]

CITIZEN = "+919876543211"  # not `sewamitra simulate`'s caller: each test's caller rings for the first time
AGENTS = itertools.count(1)  # each test's agent and her desk phone
PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
OFFER = re.compile(r'name="call" value="([^"]+)"')
SECRETS = {
    "twilio": {"TWILIO_ACCOUNT_SID": "local-twilio-account-sid", "TWILIO_AUTH_TOKEN": "local-twilio-auth-token"},
    "plivo": {"PLIVO_AUTH_ID": "local-plivo-auth-id", "PLIVO_AUTH_TOKEN": "local-plivo-auth-token"},
}


@dataclass
class OneBox:
    """A running `sewamitra up` on one platform, with its local sandbox, and how to reach both."""

    platform: str
    env: dict[str, str]
    data_dir: Path
    public_url: str

    def secret(self, env_name: str) -> str:
        return (self.data_dir / SECRETS[self.platform][env_name]).read_text().strip()

    @property
    def token(self) -> str:
        return self.secret("PLIVO_AUTH_TOKEN" if self.platform == "plivo" else "TWILIO_AUTH_TOKEN")

    @property
    def sandbox_url(self) -> str:
        found = running_sandbox(self.data_dir)
        assert found, "`up` did not say where its sandbox listens"
        return found

    def voice(self, path: str) -> str:
        return f"{self.public_url}/{self.platform}/voice{path}"

    def simulator(self, **setup: Any) -> CallSimulator:
        """A call placed by the platform's rules and signatures, against `up` over HTTP."""
        if self.platform == "plivo":
            http = HttpTransport(self.public_url, self.public_url, self.token, sign=plivo_headers)
            return PlivoCallSimulator(http, public_url=self.public_url, **setup)
        account = self.secret("TWILIO_ACCOUNT_SID")
        http = HttpTransport(self.public_url, self.public_url, self.token, account_sid=account)
        return CallSimulator(http, public_url=self.public_url, **setup)


@pytest.fixture(scope="module")
def one_box(request: pytest.FixtureRequest, telephony_platform: str) -> Iterator[OneBox]:
    """`sewamitra up` on the platform, no account (so its sandbox), the call centre always open, one
    web and one RQ process, no demo data."""
    settings = {"SEWAMITRA_TELEPHONY__PLATFORM": telephony_platform}
    settings |= {"SEWAMITRA_WORKERS__WEB": "1", "SEWAMITRA_WORKERS__RQ": "1"}
    settings |= {"SEWAMITRA_CALL_CENTRE__OPENS": "00:00", "SEWAMITRA_CALL_CENTRE__CLOSES": "23:59:59.999999"}
    with running_up(request, "--no-seed", **settings) as up:
        yield OneBox(telephony_platform, up.env, up.data_dir, up.public_url)


@pytest.fixture
def asha(one_box: OneBox) -> Iterator[Agent]:
    """An agent of the test's own, Asha, with a desk phone of her own, signed in and ready. A caller of a
    later test never rings for her: she signs out at the end (paused), or, still on the call the
    simulators never end, she stays on it (a caller is offered to ready agents only)."""
    n = next(AGENTS)
    name, desk_phone = f"asha{n}", f"+91981111{n:04d}"
    agent = [*SEWAMITRA, "create-user", name, "--role", "agent", "--phone", desk_phone, "--password-stdin"]
    made = subprocess.run(agent, env=one_box.env, input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stdout + made.stderr
    signed_in = Agent(one_box, name, desk_phone)
    yield signed_in
    signed_in.post("/console/sign-out")


class Agent:
    """Asha at the console in her browser (cookies, the pages' CSRF token), and her desk phone."""

    def __init__(self, box: OneBox, username: str, desk_phone: str) -> None:
        self.box = box
        self.desk_phone = desk_phone
        self.browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.csrf = ""
        self.get("/console/sign-in")
        self.post("/console/sign-in", {"username": username, "password": PASSWORD})
        self.get("/console/")
        self.post("/console/agent/ready")

    def get(self, path: str) -> str:
        with self.browser.open(self.box.public_url + path, timeout=15) as answer:
            page = answer.read().decode()
        found = CSRF.search(page)
        self.csrf = found.group(1) if found else self.csrf
        return page

    def post(self, path: str, form: dict[str, str] | None = None) -> str:
        data = urllib.parse.urlencode({"csrf_token": self.csrf, **(form or {})}).encode()
        with self.browser.open(self.box.public_url + path, data=data, timeout=15) as answer:
            return answer.read().decode()

    def takes_the_caller(self) -> Transcript:
        """The caller rings on her console; she accepts, her desk phone rings (an RQ job, through the
        sandbox) and she answers it and presses 1: her leg goes into the caller's room."""
        offered = wait_for(lambda: OFFER.search(self.get("/console/agent/bar")), 30, "the caller to ring for Asha")
        self.post("/console/agent/accept", {"call": offered.group(1)})
        [ring] = wait_for(
            lambda: [c for c in get_json_list(f"{self.box.sandbox_url}/_sandbox/calls") if c["to"] == self.desk_phone],
            30,
            "her desk phone to ring",
        )
        parts = urlsplit(ring["url"])
        plivo = self.box.platform == "plivo"
        desk_phone = self.box.simulator(
            direction="outbound" if plivo else "outbound-api",
            from_number=ring["from"],
            to_number=ring["to"],
            voice_path=parts.path + (f"?{parts.query}" if parts.query else ""),
            # Its end would end her call: one leg runs at a time here, so the caller's comes first.
            status_path=f"/{self.box.platform}/voice/status",
        )
        leg = desk_phone.run(["1"])
        assert not leg.errors, leg.render(requests=True)
        return leg


def moved_by_the_helpline(box: OneBox, call_id: str, url: str) -> None:
    """The helpline's own REST client, at `up`'s sandbox with `up`'s credentials, moves a live call."""
    environ = dict(box.env) | {f"SEWAMITRA_{box.platform.upper()}__API_BASE_URL": box.sandbox_url}
    environ |= {name: box.secret(name) for name in SECRETS[box.platform]}
    call_control(load_settings(ROOT / "config.yaml", environ=environ)).redirect_call(call_id, url)


def test_a_demo_caller_waiting_for_an_agent_is_put_through_to_her_room_as_soon_as_she_takes_them(
    one_box: OneBox, asha: Agent
) -> None:
    box = one_box
    heard: list[Event] = []
    taken_at: list[int] = []
    desk_leg: list[Transcript] = []
    # A caller of an earlier demo call, who has hung up: the helpline moves them all the same.
    nobody = str(uuid.uuid4()) if box.platform == "plivo" else "CA" + uuid.uuid4().hex

    def asha_takes_the_caller() -> None:
        moved_by_the_helpline(box, nobody, box.voice("/queue/connect"))
        desk_leg.append(asha.takes_the_caller())
        taken_at.append(len(heard))

    # Hindi (1), an agent (3), a round of hold music; Asha takes the caller; they talk.
    line = Line("1", "3", "-", asha_takes_the_caller, "-")
    caller = box.simulator(from_number=CITIZEN, moved=SandboxMoves(box.sandbox_url), on_event=heard.append).run(line)

    assert not caller.errors, caller.render(requests=True)
    assert all(0 < r.status < 500 for r in caller.requests), caller.render(requests=True)
    [leg] = desk_leg
    [agents_room] = [e.room for e in leg.events if isinstance(e, InRoom)]
    # From the moment her key press moved the caller by REST: no more hold music, the room at once.
    after = caller.events[taken_at[0] :]
    moved = Moved(box.voice("/queue/connect"))
    assert [e for e in after if isinstance(e, Moved)] == [moved]
    # Nothing more of the hold round is played: at most the silence at the prompt she took them at.
    assert all(isinstance(e, Silence) for e in after[: after.index(moved)]), caller.render(requests=True)
    requests = [e for e in after if isinstance(e, Request)]
    expected = [box.voice("/queue/connect")]
    if box.platform == "twilio":  # Twilio tells the Enqueue's action the caller left its queue, "redirected"
        expected.insert(0, box.voice("/queue/result"))
        assert requests[0].form["QueueResult"] == "redirected"
    assert [r.url for r in requests[: len(expected)]] == expected, caller.render(requests=True)
    assert not any(r.url.startswith(box.voice("/queue/wait")) for r in requests), caller.render(requests=True)
    assert caller.said("अब आपको सहायक से जोड़ा जा रहा है।")  # "Connecting you to an agent now."
    [in_room] = [e for e in after if isinstance(e, InRoom)]
    assert (in_room.room, in_room.call_id) == (agents_room, caller.call_sid)
    # The move of the call nobody simulates was followed by nobody: it waits in the sandbox still.
    assert not any(isinstance(e, Moved) for e in caller.events[: taken_at[0]])
    assert SandboxMoves(box.sandbox_url)(nobody) == box.voice("/queue/connect")


def test_sewamitra_simulate_follows_the_move_into_the_agents_room_while_the_caller_waits_at_its_prompt(
    one_box: OneBox, asha: Agent
) -> None:
    box = one_box
    simulate = subprocess.Popen(
        [*SEWAMITRA, "simulate"],
        env=box.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    told: list[str] = []
    threading.Thread(target=read_output, args=(simulate, told), daemon=True).start()
    assert simulate.stdin is not None
    try:
        # Hindi (1), an agent (3), one round of hold music (Enter); then the caller types nothing more.
        simulate.stdin.write("1\n3\n\n")
        simulate.stdin.flush()
        asha.takes_the_caller()  # once the caller rings on her console: they wait in the queue
        moved = f"the call is moved by the REST API to {box.voice('/queue/connect')}"
        said_so_far = functools.partial("".join, told)
        wait_for(lambda: saying(told, moved), 60, "the caller to be moved into Asha's room", said_so_far)
        wait_for(lambda: saying(told, " is in room "), 60, "the caller to be in the room", said_so_far)
        said = "".join(told)
        assert said.index(moved) < said.index("अब आपको सहायक से जोड़ा जा रहा है।") < said.index(" is in room ")
        simulate.stdin.close()  # the caller hangs up
        assert simulate.wait(60) == 0, "".join(told)
    finally:
        if simulate.poll() is None:
            simulate.kill()
            simulate.wait()
    assert "0 error(s)" in "".join(told), "".join(told)


def saying(told: list[str], fragment: str) -> bool:
    return fragment in "".join(told)
