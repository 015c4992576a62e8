"""The people at the other end of what the helpline sends: workers who answer offers (by SMS, 1/2 or
YES/NO, or on the phone when it rings them) and text DONE with the citizen's code, citizens who rate
the job. They read what reached the Twilio sandbox and answer through the signed webhooks, as
Twilio would deliver their answers (now and then twice, as Twilio retries)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from devtools.bench.calls.load import Line, Wire
from devtools.simulator import CallSetup, Transcript, drive_async
from devtools.soak.stack import HELPLINE_NUMBER

POLL_S = 0.25
LOOKUP_FOR_S = 60.0  # a message's row carries its sid once the send returned: a while, under faults
ACCEPT = ("1", "YES", "yes", "1", "Yes")
# Twilio tries an SMS webhook again when it got no answer (a web worker killed mid-request) or a 5xx,
# as the messaging webhook URL asks with its connection override (`/twilio/sms#rc=2&rp=ct,rt,5xx`).
# Without it Twilio logs error 11200 and the message is lost before the helpline could keep it.
SMS_WEBHOOK_RETRIES = 2
DECLINE = ("2", "NO", "no")
# From the drain, citizens rate above `rework.threshold_rating` (2): a low rating books a rework visit,
# new work the drain would then wait for. Filed as the load ends, reworks of reworks kept the drain
# going for up to 583 s of its 600 (docs/reliability.md, the soak's "The last run").
RATINGS, DRAIN_RATINGS = (1, 5), (3, 5)


@dataclass(frozen=True)
class Manner:
    """How people answer: how soon, how often they decline or let an offer ride, how long a job takes."""

    reply_s: tuple[float, float] = (1.0, 4.0)
    job_s: tuple[float, float] = (5.0, 20.0)
    decline: float = 0.15
    ignore: float = 0.10  # an offer left unanswered, until the drain: it expires
    no_answer: float = 0.15  # a call of ours nobody picks up
    twice: float = 0.10  # Twilio delivers an inbound SMS again


@dataclass(frozen=True)
class Sent:
    """One SMS a person sent the helpline: its sid, who from, what, and in answer to which template."""

    sid: str
    sender: str
    body: str
    about: str
    deliveries: int


@dataclass
class People:
    """Everyone who answers: started beside the callers, stopped once the helpline is quiet."""

    wire: Wire
    engine: sa.Engine
    sandbox: Any  # TwilioSandbox
    rng: random.Random
    manner: Manner
    draining: bool = False  # nobody leaves an offer unanswered, nor books a rework visit, any more
    sent: list[Sent] = field(default_factory=list)
    calls: list[Transcript] = field(default_factory=list)
    unanswered_calls: int = 0
    ignored_offers: int = 0
    not_found: list[str] = field(default_factory=list)  # sids the helpline never recorded as its own
    answered: Counter[str] = field(default_factory=Counter)  # template -> messages answered
    busy: int = 0  # answers under way
    _messages_seen: int = 0
    _calls_seen: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def run(self, stop: asyncio.Event) -> None:
        """Answer what arrives until `stop`, then finish the answers under way."""
        while not stop.is_set():
            self._poll()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)
        self._poll()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def quiet(self) -> bool:
        """Nobody is about to answer anything: everything that arrived has been read and acted on."""
        return self.busy == 0 and self._messages_seen == len(self.sandbox.messages)

    def _poll(self) -> None:
        messages, calls = self.sandbox.messages, self.sandbox.calls
        for message in messages[self._messages_seen :]:
            self._start(self._on_message(message))
        for placed in calls[self._calls_seen :]:
            self._start(self._on_call(placed))
        self._messages_seen, self._calls_seen = len(messages), len(calls)

    def _start(self, work: Any) -> None:
        self.busy += 1
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.busy -= 1

    # -- SMS -----------------------------------------------------------------------------------------

    async def _on_message(self, message: dict[str, Any]) -> None:
        await asyncio.sleep(self.rng.uniform(0.1, 0.5))
        await self._report_delivered(message)
        row = await self._record_of(message["sid"])
        if row is None:
            self.not_found.append(message["sid"])
            return
        template, number, code = row
        reply = self._reply(template, number, code)
        if reply is None:
            return
        self.answered[template] += 1
        wait = self.manner.job_s if template == "assigned_worker" else self.manner.reply_s
        await asyncio.sleep(self.rng.uniform(*wait))
        await self.text(message["to"], reply, about=template)

    def _reply(self, template: str, number: str, code: str | None) -> str | None:
        if template == "offer":
            if not self.draining and self.rng.random() < self.manner.ignore:
                self.ignored_offers += 1
                return None
            return self.rng.choice(DECLINE if self.rng.random() < self.manner.decline else ACCEPT)
        if template == "assigned_worker":
            return f"DONE {number} {code}"
        if template == "feedback":
            return self._rating()
        return None

    def _rating(self) -> str:
        """A citizen's rating of a job, by SMS or on the feedback call."""
        low, high = DRAIN_RATINGS if self.draining else RATINGS
        return str(self.rng.randint(low, high))

    async def _record_of(self, sid: str) -> tuple[str, str, str | None] | None:
        """The message's template, and its request's number and completion code, from the database."""
        deadline = time.monotonic() + LOOKUP_FOR_S
        while time.monotonic() < deadline:
            try:
                row = await asyncio.to_thread(self._lookup, sid)
            except sa.exc.SQLAlchemyError:
                row = None  # the database is being cut off: look again
            if row is not None:
                return row
            await asyncio.sleep(0.5)
        return None

    def _lookup(self, sid: str) -> tuple[str, str, str | None] | None:
        query = sa.text(
            "SELECT s.template, r.number, r.completion_code FROM sms_log s "
            "LEFT JOIN service_request r ON r.id = s.request_id WHERE s.message_sid = :sid"
        )
        with self.engine.connect() as connection:
            row = connection.execute(query, {"sid": sid}).first()
        return None if row is None else (str(row[0]), str(row[1]), row[2])

    async def text(self, sender: str, body: str, *, about: str) -> None:
        """An SMS from `sender` to the helpline, as Twilio posts it (sometimes twice)."""
        sid = "SM" + secrets.token_hex(16)
        form = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": self.wire.target.account_sid,
            "From": sender,
            "To": HELPLINE_NUMBER,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "ApiVersion": "2010-04-01",
        }
        deliveries = 0
        for _ in range(2 if self.rng.random() < self.manner.twice else 1):
            for _try in range(1 + SMS_WEBHOOK_RETRIES):
                deliveries += 1
                reply = await self.wire.request("POST", f"{self.wire.target.public_url}/twilio/sms", form, False)
                if 0 < reply.status < 500:
                    break
        self.sent.append(Sent(sid, sender, body, about, deliveries))

    async def _report_delivered(self, message: dict[str, Any]) -> None:
        callback = message.get("status_callback")
        if not callback:
            return
        form = {
            "MessageSid": message["sid"],
            "MessageStatus": "delivered",
            "AccountSid": self.wire.target.account_sid,
            "From": message.get("from") or HELPLINE_NUMBER,
            "To": message["to"],
            "ApiVersion": "2010-04-01",
        }
        await self.wire.request("POST", callback, form, False)

    # -- calls ---------------------------------------------------------------------------------------

    async def _on_call(self, placed: dict[str, Any]) -> None:
        await asyncio.sleep(self.rng.uniform(1.0, 3.0))  # it rings
        status_callback = placed.get("status_callback") or ""
        feedback = "feedback=" in status_callback
        offer = "offer=" in status_callback
        if not (feedback or offer) or self.rng.random() < self.manner.no_answer:
            self.unanswered_calls += 1
            await self._unanswered(placed)
            return
        if feedback:
            keys = [self._rating()]
        else:
            keys = [self.rng.choice(["2"] if self.rng.random() < self.manner.decline else ["1"])]
        setup = CallSetup(
            public_url=self.wire.target.public_url,
            from_number=placed["from"],
            to_number=placed["to"],
            call_sid=placed["sid"],
            direction="outbound-api",
            voice_path=_local(placed["url"]),
            status_path=_local(status_callback),
            account_sid=self.wire.target.account_sid,
        )
        line = Line(self.wire, lambda send: self.rng.uniform(0.3, 1.0) if send.acted else 0.0)
        self.calls.append(await drive_async(setup.steps(keys), line, line.before))

    async def _unanswered(self, placed: dict[str, Any]) -> None:
        form = {
            "CallSid": placed["sid"],
            "AccountSid": self.wire.target.account_sid,
            "From": placed["from"],
            "To": placed["to"],
            "CallStatus": "no-answer",
            "Direction": "outbound-api",
            "CallDuration": "0",
            "ApiVersion": "2010-04-01",
        }
        if placed.get("status_callback"):
            await self.wire.request("POST", placed["status_callback"], form, False)


def _local(url: str) -> str:
    """A URL's path and query: what CallSetup takes, under the public URL."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
