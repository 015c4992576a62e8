"""No SMS the helpline sends holds a phone number, whatever happens (issue 18): Hypothesis plays
random days of the real helpline, on Twilio and on Plivo, through its webhooks and console: citizens
book by phone and text, workers are offered jobs by SMS and by a call and answer yes, no or
nonsense (a worker with a job in hand is refused a second), agents cancel and assign, workers finish
with the code, citizens rate by the feedback call, an admin records a breach and its notice goes
out, offers run out. After every step, no message the platform's sandbox was asked to send holds a
mobile number, nor does anything said to a worker on the phone."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import Phase
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlmodel import Session, col, select

from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context, jobs
from storage.db import session_scope
from storage.models import Caller, Offer, OfferStatus, RequestStatus, Role, ServiceRequest, Worker
from telephony import telephony
from tests.console import Console, signed_in
from tests.factories import (
    add_worker,
    answer_our_call,
    call,
    engine_of,
    run_jobs,
    sms_from,
)
from tests.unit.test_sms_no_phone_number import MOBILE

CITIZENS = ("+919876543210", "+919811100001", "+917007001234")
WORKER_PHONES = (f"+9198000{n:05d}" for n in itertools.count(71_000))  # new ones for every example
NONSENSE = ("hello", "kya hai", "HELP", "5", "YES 1234567")


pytestmark = pytest.mark.both_platforms


@pytest.fixture
def admin(app: Flask) -> Console:
    return signed_in(app, "meera", Role.ADMIN)


class HelplineDay(RuleBasedStateMachine):
    """One day of the helpline in random order; the database is shared by the examples."""

    app: Flask
    client: FlaskClient
    sandbox: TwilioSandbox
    admin: Console

    def __init__(self) -> None:
        super().__init__()
        self.workers: list[str] = []
        self.answered = {placed["sid"] for placed in self.sandbox.calls}  # earlier examples' calls: left alone
        self.spoken: list[str] = []  # what workers heard on the phone
        self.sent_before = len(self.sandbox.messages)  # earlier examples' messages: each example checks its own

    @initialize(voice=st.booleans(), citizen=st.sampled_from(CITIZENS))
    def a_job_waits_for_workers_on_duty(self, voice: bool, citizen: str) -> None:
        self.hire(voice=False)
        self.hire(voice=voice)
        self.citizen_books_a_plumber(citizen, "2")

    @rule(voice=st.booleans())
    def hire(self, voice: bool) -> None:
        phone = next(WORKER_PHONES)
        add_worker(engine_of(self.app), f"Worker {phone[-3:]}", phone, 0.5 + len(self.workers) * 0.3, voice=voice)
        self.workers.append(phone)
        self._in_jobs_context(jobs.rebuild_index)

    @rule(citizen=st.sampled_from(CITIZENS), language=st.sampled_from("12"))
    def citizen_books_a_plumber(self, citizen: str, language: str) -> None:
        known = self._has_called(citizen)
        call(self.app, ("" if known else f"{language},") + "1,1,226001#,1,9", from_number=citizen)
        self._work()

    @rule(answer=st.sampled_from(("1", "हाँ", "YES", "2", "NO")))
    def offered_worker_texts_back(self, answer: str) -> None:
        with Session(engine_of(self.app)) as session:
            offer = session.exec(
                select(Offer).where(Offer.status == OfferStatus.PENDING).order_by(col(Offer.id))
            ).first()
        if offer is not None:
            sms_from(self.client, self._worker_phone(offer.worker_id), answer)
            self._work()

    @rule(data=st.data(), body=st.sampled_from(("1", "2", *NONSENSE)))
    def any_worker_texts(self, data: st.DataObject, body: str) -> None:
        sms_from(self.client, data.draw(st.sampled_from(self.workers)), body)
        self._work()

    @rule(right=st.booleans())
    def worker_texts_done(self, right: bool) -> None:
        job = self._a_request(RequestStatus.ASSIGNED)
        if job is None:
            return
        worker = self._worker_phone(job.worker_id)
        code = job.completion_code if right else "0000"
        sms_from(self.client, worker, f"DONE {job.number} {code}")
        self._work()

    @rule(key=st.sampled_from("1229"))
    def worker_answers_the_offer_call(self, key: str) -> None:
        placed = self._unanswered("/voice", but_not="flow=feedback")
        if placed is not None:
            self.spoken.extend(answer_our_call(self.client, placed, key).heard)
            self._work()

    @rule(key=st.sampled_from("13459"))
    def citizen_answers_the_feedback_call(self, key: str) -> None:
        placed = self._unanswered("flow=feedback")
        if placed is not None:
            answer_our_call(self.client, placed, key)
            self._work()

    @rule(citizen=st.sampled_from(CITIZENS), body=st.sampled_from(("4", *NONSENSE)))
    def citizen_texts(self, citizen: str, body: str) -> None:
        sms_from(self.client, citizen, body)
        self._work()

    @rule(status=st.sampled_from([RequestStatus.OFFERED, RequestStatus.ASSIGNED, RequestStatus.ESCALATED]))
    def agent_cancels(self, status: RequestStatus) -> None:
        job = self._a_request(status)
        if job is not None:
            self.admin.post(f"/console/requests/{job.number}/cancel", {"reason": "the citizen called to cancel"})
            self._work()

    @rule(data=st.data())
    def agent_assigns_a_worker(self, data: st.DataObject) -> None:
        job = self._a_request(RequestStatus.ESCALATED) or self._a_request(RequestStatus.NEW)
        if job is not None:
            worker = self._worker_id(data.draw(st.sampled_from(self.workers)))
            self.admin.post(f"/console/requests/{job.number}/assign", {"worker": str(worker)})
            self._work()

    @rule()
    def offers_run_out(self) -> None:
        with session_scope(engine_of(self.app)) as session:
            session.execute(
                sa.update(Offer)
                .where(col(Offer.status) == OfferStatus.PENDING)
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        self._in_jobs_context(jobs.sweep)
        self._work()

    @rule(citizen=st.sampled_from(CITIZENS))
    def admin_records_a_breach(self, citizen: str) -> None:
        occurred = (datetime.now(UTC) - timedelta(hours=1)).astimezone(ZoneInfo("Asia/Kolkata"))
        form = {"description": "A laptop was stolen", "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M")}
        self.admin.post("/console/breaches/", {**form, "numbers": citizen})
        self._work()

    @invariant()
    def no_sms_holds_a_phone_number(self) -> None:
        for message in self.sandbox.messages[self.sent_before :]:
            assert MOBILE.search(message["body"]) is None, message["body"]

    @invariant()
    def nothing_said_to_a_worker_holds_one(self) -> None:
        for said in self.spoken:
            assert MOBILE.search(said) is None, said

    # -- helpers ---------------------------------------------------------------------------------

    def _work(self) -> None:
        run_jobs(self.app)

    def _in_jobs_context(self, job: object) -> None:
        runtime = self.app.extensions["sewamitra"]
        ctx = context.JobContext(runtime.settings, runtime.engine, runtime.redis, telephony(runtime.settings))
        context.install(ctx)
        try:
            job()  # type: ignore[operator]
        finally:
            context.install(None)

    def _has_called(self, phone: str) -> bool:
        """A caller seen before is greeted in their language: no language menu."""
        with Session(engine_of(self.app)) as session:
            return session.exec(select(Caller.id).where(Caller.phone == phone)).first() is not None

    def _a_request(self, status: RequestStatus) -> ServiceRequest | None:
        with Session(engine_of(self.app)) as session:
            query = select(ServiceRequest).where(ServiceRequest.status == status).order_by(col(ServiceRequest.id))
            return session.exec(query).first()

    def _worker_id(self, phone: str) -> int:
        with Session(engine_of(self.app)) as session:
            return int(session.exec(select(Worker.id).where(Worker.phone == phone)).one() or 0)

    def _worker_phone(self, worker_id: int | None) -> str:
        with Session(engine_of(self.app)) as session:
            worker = session.get(Worker, worker_id)
            assert worker is not None
            return worker.phone

    def _unanswered(self, wanted: str, but_not: str = "\0") -> dict | None:
        for placed in self.sandbox.calls:
            url = placed["url"]
            if placed["sid"] not in self.answered and wanted in url and but_not not in url:
                self.answered.add(placed["sid"])
                return placed
        return None


def test_no_sms_and_nothing_said_to_a_worker_holds_a_phone_number(
    app: Flask, client: FlaskClient, sandbox: TwilioSandbox, admin: Console
) -> None:
    HelplineDay.app, HelplineDay.client, HelplineDay.sandbox, HelplineDay.admin = app, client, sandbox, admin
    # Few examples, no shrinking: each step is real webhooks, jobs and a database; a failure reports
    # the steps that led to it as they were played (shrinking them takes minutes).
    quick = hypothesis_settings(
        max_examples=4, stateful_step_count=12, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate]
    )
    run_state_machine_as_test(HelplineDay, settings=quick)
    assert sandbox.messages  # the days texted someone
