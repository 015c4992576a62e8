"""A stored request finds its worker: offered to the nearest eligible one, by SMS through the
Twilio sandbox, answered by SMS to our webhook, timed out, escalated, completed and rated. Real
Redis, real databases of each kind, real RQ jobs; only the clock is moved, by editing expiry times."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, col, select

from core.clock import FrozenClock
from core.settings import Settings
from devtools.twilio_sandbox import TwilioSandbox
from dispatch import context, enqueue, geoindex, jobs, messages, offers
from dispatch.matching import Candidate
from dispatch.queues import QueueName, queue
from sewamitra.app import create_app
from storage.db import session_scope
from storage.models import (
    AuditEvent,
    Caller,
    Offer,
    OfferStatus,
    RequestStatus,
    ServiceRequest,
    SmsLog,
    Worker,
)
from telephony.port import Telephony
from tests.factories import (
    CITIZEN,
    PUBLIC_URL,
    add_request,
    add_worker,
    answer_our_call,
    assigned_job,
    message_id,
    offers_of,
    platform_of,
    request_of,
    signed_post,
    simulator,
    sms_from,
)
from tests.factories import run_context_jobs as run_jobs

# Both databases: dispatch locks rows (SELECT ... FOR UPDATE) and averages ratings (round, coalesce)
# in each dialect's SQL.
pytestmark = [pytest.mark.both_databases, pytest.mark.both_platforms]


def rules(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"dispatch": settings.dispatch.model_copy(update=changes)})


@pytest.fixture
def settings(helpline_settings: Settings) -> Settings:
    return helpline_settings


def time_passes(engine: sa.Engine, request_id: int) -> None:
    """The pending offers' time runs out."""
    with session_scope(engine) as session:
        session.execute(
            sa.update(Offer)
            .where(col(Offer.request_id) == request_id, col(Offer.status) == "pending")
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def texts_to(sandbox: TwilioSandbox, phone: str) -> list[str]:
    return [m["body"] for m in sandbox.messages if m["to"] == phone]


@pytest.fixture
def webhook(client: FlaskClient) -> FlaskClient:
    """Where Twilio posts: the test's app (conftest's, on the test's settings)."""
    return client


def our_call_unanswered(client: FlaskClient, placed: dict, status: str = "no-answer") -> None:
    """The platform's status (Plivo: hangup) callback for a call of ours nobody picked up."""
    if platform_of(client.application) == "plivo":
        plivo_status = {"no-answer": "timeout"}.get(status, status)  # Plivo's word for a call not picked up
        form = {"CallUUID": "e" * 8 + "-eeee-eeee-eeee-" + "e" * 12, "From": placed["from"][1:], "To": placed["to"][1:]}
        form |= {"CallStatus": plivo_status, "Direction": "outbound", "Duration": "0", "HangupCause": "NO_ANSWER"}
    else:
        form = {"CallSid": "CA" + "e" * 32, "From": placed["from"], "To": placed["to"], "CallStatus": status}
        form |= {"Direction": "outbound-api", "CallDuration": "0"}
    answer = signed_post(client, placed["status_callback"].removeprefix(PUBLIC_URL), form)
    assert answer.status_code == 204


# -- matching ---------------------------------------------------------------------------------------


def test_the_nearest_available_verified_plumber_gets_the_offer(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox
) -> None:
    add_worker(engine, "Unverified Nearest", "+919800000001", 0.2, verified=False)
    add_worker(engine, "Busy Near", "+919800000002", 0.4, available=False)
    add_worker(engine, "Electrician Near", "+919800000003", 0.5, skills=("electrician",))
    ramesh = add_worker(engine, "Ramesh Kumar", "+919800000004", 1.0)
    add_worker(engine, "Suresh Far", "+919800000005", 3.0)
    add_worker(engine, "Out Of Range", "+919800000006", 15.0)
    jobs.rebuild_index()
    request_id = add_request(engine)

    jobs.dispatch_request(request_id)
    run_jobs(installed)

    [offer] = offers_of(engine, request_id)
    assert (offer.worker_id, offer.status, offer.channel) == (ramesh, OfferStatus.PENDING, "sms")
    assert request_of(engine, request_id).status is RequestStatus.OFFERED
    [text] = texts_to(sandbox, "+919800000004")
    number = request_of(engine, request_id).number
    assert number in text
    assert "प्लंबर" in text
    assert "लखनऊ 226001" in text


def test_a_new_request_reads_one_candidate_more_when_its_citizen_asked_not_to_have_the_nearest(
    installed: context.JobContext, engine: sa.Engine
) -> None:
    """A first round asks the database about its eight best candidates (`offers._wanted_at_most`),
    and Redis sends no more of the ranking than that (`offers.candidates_wanted`): the ninth too when
    one of the eight is the worker the citizen does not want."""
    avoided = add_worker(engine, "Not Him Again", "+919800000020", 0.1)
    lagging = [add_worker(engine, f"Gone Off {n}", f"+91980000002{n}", 0.1 + n / 10) for n in range(1, 8)]
    ninth = add_worker(engine, "Ninth Nearest", "+919800000029", 1.0)
    add_worker(engine, "Tenth Nearest", "+919800000030", 1.1)
    jobs.rebuild_index()
    request_id = add_request(engine)
    with session_scope(engine) as session:  # gone off in the database; the index has not heard yet
        session.execute(sa.update(Worker).where(col(Worker.id).in_(lagging)).values(available=False))
        asked_not = sa.update(ServiceRequest).where(col(ServiceRequest.id) == request_id)
        session.execute(asked_not.values(avoid_worker_id=avoided))

    jobs.dispatch_request(request_id)

    assert [o.worker_id for o in offers_of(engine, request_id)] == [ninth]


def test_index_rebuilds_take_turns_whoever_asks(installed: context.JobContext, engine: sa.Engine) -> None:
    """Two rebuilds at once (the scheduler's, and a dispatch's after Redis lost its data) would swap
    in or delete each other's fresh keys and leave a skill's index empty: the second waits."""
    connection = installed.redis
    add_worker(engine, "Ramesh Kumar", "+919800000004", 1.0)
    under_way = connection.lock(jobs.INDEX_LOCK, timeout=30)
    assert under_way.acquire(blocking=False)
    scheduled: list[int] = []  # the scheduler's rebuild: always builds
    found_gone: list[int] = []  # two dispatches that found the index gone: build it only if still gone
    waiting = [
        threading.Thread(target=lambda: scheduled.append(jobs.rebuild_index())),
        *(
            threading.Thread(target=lambda: found_gone.append(jobs.rebuild_index(only_if_missing=True)))
            for _ in range(2)
        ),
    ]
    for thread in waiting:
        thread.start()
        thread.join(0.3)
    assert all(thread.is_alive() for thread in waiting)
    assert not geoindex.is_built(connection)

    under_way.release()
    for thread in waiting:
        thread.join(30)

    assert scheduled == [1]
    assert 0 in found_gone
    assert geoindex.is_built(connection)


def test_silence_moves_the_offer_to_the_next_worker_then_it_escalates(
    installed: context.JobContext, engine: sa.Engine, settings: Settings
) -> None:
    context.install(context.JobContext(rules(settings, max_offers=2), engine, installed.redis, installed.telephony))
    first = add_worker(engine, "First", "+919800000011", 0.5)
    second = add_worker(engine, "Second", "+919800000012", 1.5)
    add_worker(engine, "Third", "+919800000013", 2.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)

    time_passes(engine, request_id)
    [pending] = [o for o in offers_of(engine, request_id) if o.status is OfferStatus.PENDING]
    assert jobs.expire_offer(pending.id or 0) == "expired"
    run_jobs(installed)
    assert [(o.worker_id, o.status) for o in offers_of(engine, request_id)] == [
        (first, OfferStatus.EXPIRED),
        (second, OfferStatus.PENDING),
    ]

    time_passes(engine, request_id)
    jobs.expire_offer(offers_of(engine, request_id)[-1].id or 0)
    run_jobs(installed)
    assert request_of(engine, request_id).status is RequestStatus.ESCALATED  # max_offers=2 reached


def test_an_offer_whose_time_is_up_is_moved_to_a_batch_job_that_expires_it_and_offers_the_next_worker(
    installed: context.JobContext, engine: sa.Engine
) -> None:
    first = add_worker(engine, "First", "+919800000015", 0.5)
    second = add_worker(engine, "Second", "+919800000016", 1.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    [offer] = offers_of(engine, request_id)
    assert offer.expires_at is not None
    due = offer.expires_at.replace(tzinfo=UTC) + enqueue.EXPIRY_MARGIN
    assert installed.redis.zscore(enqueue.EXPIRING, str(offer.id)) == math.ceil(due.timestamp())
    dispatch_queue = queue(installed.redis, QueueName.DISPATCH)

    assert enqueue.move_expired(installed.redis, now=due - timedelta(seconds=1))  # not yet
    assert installed.redis.llen(enqueue.EXPIRED.key) == 0
    time_passes(engine, request_id)
    assert enqueue.move_expired(installed.redis, now=due + timedelta(seconds=1))

    assert installed.redis.zcard(enqueue.EXPIRING) == 0
    assert f"expire-due-{offer.id}" in dispatch_queue.job_ids
    run_jobs(installed)
    assert [(o.worker_id, o.status) for o in offers_of(engine, request_id)] == [
        (first, OfferStatus.EXPIRED),
        (second, OfferStatus.PENDING),
    ]


def test_an_offer_moved_before_the_database_says_its_time_is_up_waits_again(
    installed: context.JobContext, engine: sa.Engine
) -> None:
    add_worker(engine, "First", "+919800000017", 0.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    [offer] = offers_of(engine, request_id)
    assert offer.expires_at is not None
    installed.redis.delete(enqueue.EXPIRING)
    installed.redis.rpush(enqueue.EXPIRED.key, offer.id or 0)  # a mover whose clock ran ahead

    assert jobs.expire_due() == "looked at 1"

    assert offers_of(engine, request_id)[0].status is OfferStatus.PENDING
    due = offer.expires_at.replace(tzinfo=UTC) + enqueue.EXPIRY_MARGIN
    assert installed.redis.zscore(enqueue.EXPIRING, str(offer.id)) == math.ceil(due.timestamp())


def test_an_offer_is_not_expired_before_its_time(installed: context.JobContext, engine: sa.Engine) -> None:
    add_worker(engine, "First", "+919800000021", 0.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    [offer] = offers_of(engine, request_id)
    assert jobs.expire_offer(offer.id or 0) == "not due yet"
    assert offers_of(engine, request_id)[0].status is OfferStatus.PENDING


def test_the_jobs_clock_says_when_an_offer_runs_out(
    installed: context.JobContext, engine: sa.Engine, settings: Settings
) -> None:
    clock = FrozenClock(datetime(2030, 1, 1, 5, 30, tzinfo=UTC))
    context.install(replace(installed, clock=clock))
    add_worker(engine, "First", "+919800000041", 0.5)
    jobs.rebuild_index()
    request_id = add_request(engine, created=clock.now())
    jobs.dispatch_request(request_id)
    [offer] = offers_of(engine, request_id)
    assert (offer.created_at, offer.expires_at) == (
        clock.now(),
        clock.now() + timedelta(seconds=settings.dispatch.offer_timeout),
    )

    clock.advance(timedelta(seconds=settings.dispatch.offer_timeout - 1))
    assert jobs.expire_offer(offer.id or 0) == "not due yet"
    clock.advance(timedelta(seconds=1))
    assert jobs.expire_offer(offer.id or 0) == "expired"
    assert offers_of(engine, request_id)[0].status is OfferStatus.EXPIRED


def test_no_eligible_worker_in_range_escalates_at_once(installed: context.JobContext, engine: sa.Engine) -> None:
    add_worker(engine, "Far Away", "+919800000031", 40.0)
    jobs.rebuild_index()
    request_id = add_request(engine)
    assert jobs.dispatch_request(request_id) == "no eligible worker in range"
    assert request_of(engine, request_id).status is RequestStatus.ESCALATED


def test_a_request_waiting_too_long_escalates(installed: context.JobContext, engine: sa.Engine) -> None:
    add_worker(engine, "Near", "+919800000041", 0.5)
    jobs.rebuild_index()
    request_id = add_request(engine, created=datetime.now(UTC) - timedelta(hours=2))
    assert jobs.dispatch_request(request_id) == "no worker took it in time"
    assert request_of(engine, request_id).status is RequestStatus.ESCALATED


# -- answers by SMS ---------------------------------------------------------------------------------


def test_yes_assigns_both_sides_are_told_done_completes_and_the_rating_closes(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    ramesh = add_worker(engine, "Ramesh Kumar", "+919800000051", 1.0, rating=4.0)
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    run_jobs(installed)

    sms_from(webhook, "+919800000051", "हाँ")
    run_jobs(installed)
    request = request_of(engine, request_id)
    assert (request.status, request.worker_id) == (RequestStatus.ASSIGNED, ramesh)
    code = request.completion_code
    assert code is not None
    assert len(code) == 4
    [to_citizen] = texts_to(sandbox, CITIZEN)
    assert "Ramesh Kumar" in to_citizen
    assert code in to_citizen
    assert "155330 पर कॉल करें" in to_citizen  # to speak to the worker: the helpline, never his number
    assert "9800000051" not in to_citizen
    to_worker = texts_to(sandbox, "+919800000051")[-1]
    assert f"काम {request.number}: प्लंबर, लखनऊ 226001" in to_worker
    assert "155330 पर कॉल करें" in to_worker  # to hear the address or call the customer
    assert CITIZEN[3:] not in to_worker
    assert "12 Hazratganj" not in to_worker

    sms_from(webhook, "+919800000051", f"DONE {request.number} {code}")
    run_jobs(installed)
    assert request_of(engine, request_id).status is RequestStatus.COMPLETED
    [feedback_call] = sandbox.calls
    transcript = answer_our_call(webhook, feedback_call, "4")  # a low rating books a rework: test_rework.py
    assert transcript.said("सेवा को 1 से 5 अंक देने के लिए वह अंक दबाएँ।")
    assert transcript.said("आपकी राय के लिए धन्यवाद।")
    closed = request_of(engine, request_id)
    assert (closed.status, closed.rating) == (RequestStatus.CLOSED, 4)
    with Session(engine) as session:
        worker = session.get(Worker, ramesh)
        assert worker is not None
        assert (worker.rating, worker.rating_count) == (4.0, 1)


def test_no_moves_the_request_on_and_a_late_yes_is_told_it_is_taken(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    add_worker(engine, "First", "+919800000061", 0.5)
    second = add_worker(engine, "Second", "+919800000062", 1.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    run_jobs(installed)

    sms_from(webhook, "+919800000061", "NO")
    run_jobs(installed)
    assert offers_of(engine, request_id)[-1].worker_id == second
    sms_from(webhook, "+919800000062", "1")
    run_jobs(installed)
    assert request_of(engine, request_id).worker_id == second

    sms_from(webhook, "+919800000061", "YES")
    run_jobs(installed)
    number = request_of(engine, request_id).number
    assert any(f"काम {number} किसी और ने ले लिया है" in t for t in texts_to(sandbox, "+919800000061"))


def test_the_same_message_delivered_twice_counts_once(
    installed: context.JobContext, engine: sa.Engine, webhook: FlaskClient
) -> None:
    add_worker(engine, "First", "+919800000071", 0.5)
    add_worker(engine, "Second", "+919800000072", 1.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    sid = message_id(platform_of(webhook.application))
    sms_from(webhook, "+919800000071", "2", sid=sid)
    sms_from(webhook, "+919800000071", "2", sid=sid)
    run_jobs(installed)
    assert [o.status for o in offers_of(engine, request_id)] == [OfferStatus.DECLINED, OfferStatus.PENDING]


@pytest.mark.parametrize(
    ("sender", "body", "reply"),
    [
        ("+919800000081", "kya hai", "काम लेने के लिए 1"),  # a worker's gibberish
        ("+919800000081", "DONE 1234566 0000", "मेल नहीं खाता"),  # not their job
        ("+919811111111", "YES", "155330 पर कॉल करें"),  # a stranger
    ],
)
def test_bad_messages_get_a_helpful_reply_and_change_nothing(
    installed: context.JobContext,
    engine: sa.Engine,
    sandbox: TwilioSandbox,
    webhook: FlaskClient,
    sender: str,
    body: str,
    reply: str,
) -> None:
    add_worker(engine, "Worker", "+919800000081", 0.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    run_jobs(installed)
    before = [(o.id, o.status) for o in offers_of(engine, request_id)]

    sms_from(webhook, sender, body)
    run_jobs(installed)
    assert any(reply in t for t in texts_to(sandbox, sender))
    assert [(o.id, o.status) for o in offers_of(engine, request_id)] == before
    assert request_of(engine, request_id).status is RequestStatus.OFFERED
    with Session(engine) as session:
        actions = session.exec(select(AuditEvent.action)).all()
    assert "sms.unclear" in actions or "request.completion_refused" in actions


def test_a_wrong_completion_code_is_refused(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    request = assigned_job(installed, engine, webhook, "+919800000091")
    request_id = request.id or 0
    wrong = "0000" if request.completion_code != "0000" else "1111"
    sms_from(webhook, "+919800000091", f"DONE {request.number} {wrong}")
    run_jobs(installed)
    assert request_of(engine, request_id).status is RequestStatus.ASSIGNED
    assert any("मेल नहीं खाता" in t for t in texts_to(sandbox, "+919800000091"))


def test_a_worker_on_a_job_is_not_offered_another(
    installed: context.JobContext, engine: sa.Engine, webhook: FlaskClient
) -> None:
    busy = add_worker(engine, "Busy", "+919800000101", 0.3)
    other = add_worker(engine, "Other", "+919800000102", 2.0)
    jobs.rebuild_index()
    first = add_request(engine)
    jobs.dispatch_request(first)
    sms_from(webhook, "+919800000101", "1")
    run_jobs(installed)
    assert request_of(engine, first).worker_id == busy
    second = add_request(engine)
    jobs.dispatch_request(second)
    assert [o.worker_id for o in offers_of(engine, second)] == [other]


def test_a_worker_texts_busy_and_is_no_longer_offered(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    add_worker(engine, "Goes Busy", "+919800000111", 0.3)
    other = add_worker(engine, "Other", "+919800000112", 2.0)
    jobs.rebuild_index()
    sms_from(webhook, "+919800000111", "BUSY")
    run_jobs(installed)
    assert any("व्यस्त" in t for t in texts_to(sandbox, "+919800000111"))
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    assert [o.worker_id for o in offers_of(engine, request_id)] == [other]


# -- races and lost jobs ----------------------------------------------------------------------------


def test_twenty_workers_saying_yes_at_once_make_exactly_one_assignment(
    installed: context.JobContext, engine: sa.Engine, settings: Settings
) -> None:
    context.install(
        context.JobContext(
            rules(settings, parallel_offers=20, max_offers=20), engine, installed.redis, installed.telephony
        )
    )
    workers = [add_worker(engine, f"Worker {i}", f"+9198000002{i:02d}", 0.1 * (i + 1)) for i in range(20)]
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    made = offers_of(engine, request_id)
    assert sorted(o.worker_id for o in made) == sorted(workers)

    start = threading.Barrier(len(made))
    answers: list[offers.Answer] = []

    def say_yes(offer_id: int) -> None:
        start.wait()
        answers.append(offers.reply(engine, offer_id, True, datetime.now(UTC), "worker"))

    threads = [threading.Thread(target=say_yes, args=(o.id,)) for o in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(answers) == len(made)
    assert answers.count(offers.Answer.ACCEPTED) == 1
    assert all(a in (offers.Answer.TAKEN, offers.Answer.TOO_LATE) for a in answers if a is not offers.Answer.ACCEPTED)
    final = offers_of(engine, request_id)
    assert [o.status for o in final].count(OfferStatus.ACCEPTED) == 1
    [winner] = [o for o in final if o.status is OfferStatus.ACCEPTED]
    assert request_of(engine, request_id).worker_id == winner.worker_id


def test_the_sweeper_dispatches_a_request_whose_job_was_lost(
    installed: context.JobContext, engine: sa.Engine, redis_client: redis.Redis
) -> None:
    add_worker(engine, "Near", "+919800000301", 0.5)
    jobs.rebuild_index()
    request_id = add_request(engine, created=datetime.now(UTC) - timedelta(minutes=2))  # never queued
    assert jobs.sweep()["new_requests"] == 1
    run_jobs(installed)
    assert request_of(engine, request_id).status is RequestStatus.OFFERED


def test_a_phone_booking_is_dispatched(
    installed: context.JobContext, engine: sa.Engine, settings: Settings, sandbox: TwilioSandbox
) -> None:
    add_worker(engine, "Ramesh Kumar", "+919800000401", 1.0)
    jobs.rebuild_index()
    always = settings.call_centre.model_copy(update={"days": ()})
    app: Flask = create_app(settings.model_copy(update={"call_centre": always}))
    transcript = simulator(app.test_client(), from_number=CITIZEN).run("2,1,1,226001#,1,9")
    assert not transcript.errors
    run_jobs(installed)
    notice, number = texts_to(sandbox, CITIZEN)  # a first call: the privacy notice's link, the request number
    assert "/privacy" in notice
    assert "registered" in number
    assert len(texts_to(sandbox, "+919800000401")) == 1  # the offer


# -- by voice ---------------------------------------------------------------------------------------


def test_a_voice_preferred_worker_is_rung_and_takes_the_job_with_1(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    kamla = add_worker(engine, "Kamla Devi", "+919800000501", 0.5, voice=True)
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    run_jobs(installed)
    assert texts_to(sandbox, "+919800000501") == []
    [placed] = sandbox.calls
    assert placed["to"] == "+919800000501"

    transcript = answer_our_call(webhook, placed, "1")
    number = request_of(engine, request_id).number
    assert transcript.said("नमस्ते Kamla Devi जी, सेवामित्र में आपका स्वागत है।")
    words = ["शून्य", "एक", "दो", "तीन", "चार", "पाँच", "छह", "सात", "आठ", "नौ"]
    assert transcript.said(f"अनुरोध नंबर {', '.join(words[int(d)] for d in number)}")
    assert transcript.said("काम आपका है।")
    run_jobs(installed)
    assert request_of(engine, request_id).worker_id == kamla
    assert len(texts_to(sandbox, "+919800000501")) == 1  # the citizen's number and address


def test_an_unanswered_offer_call_moves_the_job_on(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    add_worker(engine, "Kamla Devi", "+919800000511", 0.5, voice=True)
    second = add_worker(engine, "Second", "+919800000512", 1.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    run_jobs(installed)
    our_call_unanswered(webhook, sandbox.calls[0])
    run_jobs(installed)
    assert [(o.worker_id, o.status) for o in offers_of(engine, request_id)][-1] == (second, OfferStatus.PENDING)


def test_after_an_unanswered_sms_offer_the_worker_is_rung_next_time(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox
) -> None:
    add_worker(engine, "Sunil", "+919800000521", 0.5)
    jobs.rebuild_index()
    first = add_request(engine)
    jobs.dispatch_request(first)
    time_passes(engine, first)
    jobs.expire_offer(offers_of(engine, first)[0].id or 0)
    run_jobs(installed)  # the first request escalates: nobody else is near
    second = add_request(engine)
    jobs.dispatch_request(second)
    run_jobs(installed)
    assert offers_of(engine, second)[0].channel == "voice"
    assert [c["to"] for c in sandbox.calls] == ["+919800000521"]


def test_a_worker_rings_in_hears_the_offer_and_declines(
    installed: context.JobContext, engine: sa.Engine, webhook: FlaskClient
) -> None:
    add_worker(engine, "Ramesh Kumar", "+919800000531", 0.5)
    second = add_worker(engine, "Second", "+919800000532", 1.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    transcript = simulator(webhook, from_number="+919800000531").run("2,2")
    assert not transcript.errors
    assert transcript.said("आपके लिए नया काम है")
    assert transcript.said("ठीक है, यह काम किसी और को भेजा जाएगा।")
    run_jobs(installed)
    assert [(o.worker_id, o.status) for o in offers_of(engine, request_id)][-1] == (second, OfferStatus.PENDING)


def test_a_worker_reports_a_job_done_on_the_phone(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    request = assigned_job(installed, engine, webhook, "+919800000541")
    request_id = request.id or 0
    keys = f"3,{request.number}#,{request.completion_code}#"
    transcript = simulator(webhook, from_number="+919800000541").run(keys)
    assert transcript.said("अभी आपके लिए कोई नया काम नहीं है।")
    assert transcript.said("धन्यवाद, काम पूरा दर्ज हो गया।")
    assert request_of(engine, request_id).status is RequestStatus.COMPLETED


def test_an_unanswered_feedback_call_falls_back_to_sms_and_a_reply_rates(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    request = assigned_job(installed, engine, webhook, "+919800000551", rating=None)
    request_id = request.id or 0
    sms_from(webhook, "+919800000551", f"DONE {request.number} {request.completion_code}")
    run_jobs(installed)
    our_call_unanswered(webhook, sandbox.calls[-1], "busy")
    run_jobs(installed)
    assert any("1 से 5" in t for t in texts_to(sandbox, CITIZEN))
    sms_from(webhook, CITIZEN, "५")
    run_jobs(installed)
    assert (request_of(engine, request_id).status, request_of(engine, request_id).rating) == (RequestStatus.CLOSED, 5)


def test_nine_on_the_feedback_call_reports_a_problem_and_books_a_rework(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    request = assigned_job(installed, engine, webhook, "+919800000561")
    request_id = request.id or 0
    sms_from(webhook, "+919800000561", f"DONE {request.number} {request.completion_code}")
    run_jobs(installed)
    transcript = answer_our_call(webhook, sandbox.calls[-1], "9")
    assert transcript.said("हमें खेद है कि काम ठीक नहीं हुआ।")
    assert request_of(engine, request_id).status is RequestStatus.CLOSED
    with Session(engine) as session:
        rework = session.exec(select(ServiceRequest).where(ServiceRequest.rework_of_id == request_id)).one()
    assert rework.status is RequestStatus.NEW
    run_jobs(installed)
    assert f"दोबारा सेवा अनुरोध {rework.number} दर्ज हुआ" in texts_to(sandbox, CITIZEN)[-1]


def test_a_problem_reported_past_the_rework_window_goes_to_an_agent(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    request = assigned_job(installed, engine, webhook, "+919800000562")
    request_id = request.id or 0
    sms_from(webhook, "+919800000562", f"DONE {request.number} {request.completion_code}")
    run_jobs(installed)
    with session_scope(engine) as session:  # done long ago, never rated
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == request_id)
            .values(completed_at=datetime.now(UTC) - timedelta(days=30))
        )
    transcript = answer_our_call(webhook, sandbox.calls[-1], "9")
    assert transcript.said("आपकी शिकायत दर्ज हो गई है।")
    assert request_of(engine, request_id).status is RequestStatus.ESCALATED


def test_an_offer_sms_that_cannot_be_delivered_moves_the_job_on(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    add_worker(engine, "Unreachable", "+919800000601", 0.5)
    second = add_worker(engine, "Second", "+919800000602", 1.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    run_jobs(installed)
    [sent] = [m for m in sandbox.messages if m["to"] == "+919800000601"]
    platform = platform_of(webhook.application)
    if platform == "plivo":
        form = {"MessageUUID": sent["sid"], "Status": "undelivered", "ErrorCode": "200"}
    else:
        form = {"MessageSid": sent["sid"], "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert signed_post(webhook, f"/{platform}/sms/status", form).status_code == 204
    run_jobs(installed)
    assert [(o.worker_id, o.status) for o in offers_of(engine, request_id)][-2:] == [
        (offers_of(engine, request_id)[0].worker_id, OfferStatus.EXPIRED),
        (second, OfferStatus.PENDING),
    ]


def the_sid_write_is_lost(engine: sa.Engine, lost: bool = True) -> None:
    """From now (until `lost` is False) the database refuses to write any message's sid: the platform
    takes a message, and the write that should follow fails, as when the sending worker dies between."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS sid_lost")
            if lost:
                connection.exec_driver_sql(
                    "CREATE TRIGGER sid_lost BEFORE UPDATE OF message_sid ON sms_log "
                    "WHEN NEW.message_sid IS NOT NULL BEGIN SELECT RAISE(ABORT, 'the sid is lost'); END"
                )
            return
        connection.exec_driver_sql("DROP TRIGGER IF EXISTS sid_lost ON sms_log")
        if lost:
            connection.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION sid_lost() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'the sid is lost'; END $$ LANGUAGE plpgsql"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER sid_lost BEFORE UPDATE OF message_sid ON sms_log FOR EACH ROW "
                "WHEN (NEW.message_sid IS NOT NULL) EXECUTE FUNCTION sid_lost()"
            )


def test_a_message_whose_sid_was_never_written_gets_it_from_the_platforms_report_and_is_not_sent_twice(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    """The platform took the message, but its sid was never written (the sending worker died, or the
    database was cut, in between): it looks unsent. The platform's status report names our message in
    its URL and gives the sid, so the sweeper, when the message is due again, sends nothing twice."""
    the_sid_write_is_lost(engine)
    with pytest.raises(sa.exc.DBAPIError):
        jobs.text_sms("+919800000621", "already_taken", "en", {"number": "482913"})
    the_sid_write_is_lost(engine, lost=False)
    [sent] = sandbox.messages
    with Session(engine) as session:
        [sms] = session.exec(select(SmsLog).where(SmsLog.to_number == "+919800000621")).all()
    assert (sms.message_sid, sms.status, sms.attempts) == (None, "pending", 1)

    path = sent["status_callback"].removeprefix(PUBLIC_URL)
    if platform_of(webhook.application) == "plivo":
        form = {"MessageUUID": sent["sid"], "Status": "sent", "ErrorCode": ""}
    else:
        form = {"MessageSid": sent["sid"], "MessageStatus": "sent"}
    assert signed_post(webhook, path, form).status_code == 204

    with Session(engine) as session:
        reported = session.get(SmsLog, sms.id)
    assert reported is not None
    assert (reported.message_sid, reported.status, reported.next_attempt_at) == (sent["sid"], "sent", None)
    with session_scope(engine) as session:  # long past the time it would have been tried again
        session.execute(
            sa.update(SmsLog).where(col(SmsLog.id) == sms.id).values(created_at=datetime.now(UTC) - timedelta(hours=1))
        )
    jobs.sweep()
    run_jobs(installed)
    assert len(sandbox.messages) == 1


def test_a_report_for_a_message_already_sent_under_another_sid_changes_nothing(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    """A report naming our message but carrying a sid other than the one written (a second send) is
    not applied to it."""
    jobs.text_sms("+919800000622", "already_taken", "en", {"number": "482913"})
    [sent] = sandbox.messages
    other = message_id(platform_of(webhook.application))
    path = sent["status_callback"].removeprefix(PUBLIC_URL)
    if platform_of(webhook.application) == "plivo":
        form = {"MessageUUID": other, "Status": "delivered", "ErrorCode": ""}
    else:
        form = {"MessageSid": other, "MessageStatus": "delivered"}
    assert signed_post(webhook, path, form).status_code == 204
    with Session(engine) as session:
        [sms] = session.exec(select(SmsLog).where(SmsLog.to_number == "+919800000622")).all()
    assert (sms.message_sid, sms.status) == (sent["sid"], "queued")


def test_a_failing_sms_api_is_retried_then_the_offer_counts_as_unanswered(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    add_worker(engine, "First", "+919800000611", 0.5)
    second = add_worker(engine, "Second", "+919800000612", 1.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    sandbox.fail_next(3, status=500)
    jobs.dispatch_request(request_id)  # attempt 1, by the dispatch job itself: retried later
    [offer] = offers_of(engine, request_id)
    assert offer.status is OfferStatus.PENDING
    assert redis_client.zscore("rq:scheduled:dispatch", f"offer-{offer.id}-2") is not None
    assert jobs.send_offer(offer.id or 0, attempt=2).startswith("send failed")
    assert jobs.send_offer(offer.id or 0, attempt=3) == "expired"  # out of retries: unanswered
    run_jobs(installed)
    assert [(o.worker_id, o.status) for o in offers_of(engine, request_id)] == [
        (offer.worker_id, OfferStatus.EXPIRED),
        (second, OfferStatus.PENDING),
    ]


def test_a_worker_saying_yes_twice_is_told_the_job_is_theirs(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    request = assigned_job(installed, engine, webhook, "+919800000701")
    sms_from(webhook, "+919800000701", "YES")
    run_jobs(installed)
    assert any(f"काम {request.number} पहले से आपका है" in t for t in texts_to(sandbox, "+919800000701"))
    assert not any("किसी और ने ले लिया" in t for t in texts_to(sandbox, "+919800000701"))


def test_a_worker_already_asked_about_one_job_is_not_asked_about_another(
    installed: context.JobContext, engine: sa.Engine
) -> None:
    asked = add_worker(engine, "Asked", "+919800000711", 0.3)
    other = add_worker(engine, "Other", "+919800000712", 2.0)
    jobs.rebuild_index()
    first, second = add_request(engine), add_request(engine)
    jobs.dispatch_request(first)
    jobs.dispatch_request(second)
    assert [o.worker_id for o in offers_of(engine, first)] == [asked]
    assert [o.worker_id for o in offers_of(engine, second)] == [other]


def test_the_sweeper_moves_on_a_request_left_offered_with_every_offer_closed(
    installed: context.JobContext, engine: sa.Engine
) -> None:
    first = add_worker(engine, "Declined", "+919800000721", 0.5)
    second = add_worker(engine, "Next", "+919800000722", 1.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    # The worker said no, but the follow-up dispatch job was lost with Redis.
    assert offers.reply(engine, offers_of(engine, request_id)[0].id or 0, False, datetime.now(UTC), "worker") is (
        offers.Answer.DECLINED
    )
    with session_scope(engine) as session:
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == request_id)
            .values(updated_at=datetime.now(UTC) - timedelta(minutes=2))
        )
    assert jobs.sweep()["offered_without_open_offer"] == 1
    run_jobs(installed)
    assert [(o.worker_id, o.status) for o in offers_of(engine, request_id)] == [
        (first, OfferStatus.DECLINED),
        (second, OfferStatus.PENDING),
    ]


def test_the_first_sweep_after_an_offers_time_closes_it_when_its_expiry_job_was_lost(
    installed: context.JobContext, engine: sa.Engine
) -> None:
    """Every offer closes within its timeout and one sweep interval, even when Redis lost its expiry job
    (found by `sewamitra soak`: the sweeper waited 30 s more, so offers closed up to 35 s late)."""
    silent = add_worker(engine, "Silent", "+919800000751", 0.5)
    second = add_worker(engine, "Next", "+919800000752", 1.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    time_passes(engine, request_id)  # a second ago; its expiry job went with Redis

    assert jobs.sweep()["overdue_offers"] == 1
    run_jobs(installed)
    assert [(o.worker_id, o.status) for o in offers_of(engine, request_id)] == [
        (silent, OfferStatus.EXPIRED),
        (second, OfferStatus.PENDING),
    ]


def test_a_dispatch_lock_left_by_a_killed_worker_does_not_hold_the_next_worker_for_long(
    installed: context.JobContext, engine: sa.Engine, redis_client: redis.Redis
) -> None:
    """Found by `sewamitra soak`: an RQ worker SIGKILLed mid-dispatch leaves the request's lock for its
    60 s; the sweeper's dispatches of that request each waited 30 s on it, holding both RQ workers, so
    nothing was sent and no offer expired meanwhile. Now a dispatch does not wait for it: it comes back later."""
    add_worker(engine, "Near", "+919800000761", 0.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    dead = redis_client.lock(f"sewamitra:dispatch-lock:{request_id}", timeout=60)
    assert dead.acquire()  # its holder was killed: the lock lives on

    assert jobs.dispatch_request(request_id) == "another dispatch holds the request: again shortly"
    assert request_of(engine, request_id).status is RequestStatus.NEW
    later = queue(redis_client, QueueName.DISPATCH).scheduled_job_registry
    assert f"dispatch-{request_id}-again" in later.get_job_ids()

    dead.release()  # its 60 s ran out
    jobs.dispatch_request(request_id)  # what the job queued for later does
    assert request_of(engine, request_id).status is RequestStatus.OFFERED


def offers_refused_for(engine: sa.Engine, request_id: int | None) -> None:
    """From now (until None) the database refuses every offer of `request_id`: its dispatch fails."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS offer_refused")
            if request_id is not None:
                connection.exec_driver_sql(
                    "CREATE TRIGGER offer_refused BEFORE INSERT ON offer "
                    f"WHEN NEW.request_id = {int(request_id)} BEGIN SELECT RAISE(ABORT, 'offer refused'); END"
                )
            return
        connection.exec_driver_sql("DROP TRIGGER IF EXISTS offer_refused ON offer")
        if request_id is not None:
            connection.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION offer_refused() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'offer refused'; END $$ LANGUAGE plpgsql"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER offer_refused BEFORE INSERT ON offer FOR EACH ROW "
                f"WHEN (NEW.request_id = {int(request_id)}) EXECUTE FUNCTION offer_refused()"
            )


def test_a_request_whose_dispatch_fails_does_not_hold_up_its_batch_and_the_sweeper_offers_it_later(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    """One dispatch job takes a batch of requests due: one that cannot be dispatched is left for the
    sweeper, the next is offered and texted all the same, and the job is failed for an operator."""
    add_worker(engine, "First", "+919800000771", 0.5)
    add_worker(engine, "Second", "+919800000772", 1.5)
    jobs.rebuild_index()
    broken = add_request(engine, created=datetime.now(UTC) - timedelta(minutes=2))
    fine = add_request(engine)
    offers_refused_for(engine, broken)
    try:
        assert enqueue.dispatch_requests(redis_client, [broken, fine])
        run_jobs(installed)
    finally:
        offers_refused_for(engine, None)
    assert request_of(engine, broken).status is RequestStatus.NEW
    assert request_of(engine, fine).status is RequestStatus.OFFERED
    assert [m["to"] for m in sandbox.messages] == ["+919800000771"]  # the nearest, for the one offered
    assert queue(redis_client, QueueName.DISPATCH).failed_job_registry.get_job_ids() == [f"dispatch-due-{broken}"]

    assert jobs.sweep()["new_requests"] == 1  # what the scheduler does every sweep_interval
    run_jobs(installed)
    assert request_of(engine, broken).status is RequestStatus.OFFERED
    assert [m["to"] for m in sandbox.messages] == ["+919800000771", "+919800000772"]


class SlowPlatform:
    """The platform, slow to take the first SMS: the job's clock has moved on by `slowness` when it answers."""

    def __init__(self, platform: Telephony, clock: FrozenClock, slowness: timedelta) -> None:
        self.platform, self.clock, self.slowness, self.slow = platform, clock, slowness, True

    def send_sms(
        self, to: str, body: str, *, status_callback: str | None = None, dlt_template_id: str | None = None
    ) -> str:
        sid = self.platform.send_sms(to, body, status_callback=status_callback, dlt_template_id=dlt_template_id)
        if self.slow:
            self.clock.advance(self.slowness)
            self.slow = False
        return sid

    def place_call(self, to: str, url: str, *, status_callback: str | None = None, timeout: int = 30) -> str:
        return self.platform.place_call(to, url, status_callback=status_callback, timeout=timeout)


def test_a_batchs_offer_sms_not_sent_soon_after_its_claim_is_left_to_the_sweeper_and_sent_once(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    """A batch's offers are sent after its one commit: behind a slow send, a claimed message's job no
    longer sends it once SEND_CLAIMED_WITHIN has passed (the sweeper may be sending it by then)."""
    clock = FrozenClock(datetime.now(UTC))
    slow = SlowPlatform(installed.telephony, clock, jobs.SEND_CLAIMED_WITHIN)
    context.install(replace(installed, clock=clock, telephony=slow))
    add_worker(engine, "First", "+919800000791", 0.5)
    add_worker(engine, "Second", "+919800000792", 1.5)
    jobs.rebuild_index()
    first, second = add_request(engine, created=clock.now()), add_request(engine, created=clock.now())
    assert enqueue.dispatch_requests(redis_client, [first, second])

    assert jobs.dispatch_due() == "dispatched 2"
    assert [m["to"] for m in sandbox.messages] == ["+919800000791"]
    assert request_of(engine, second).status is RequestStatus.OFFERED  # offered, its SMS in the outbox

    clock.advance(messages.RETRY_PAUSES[0] + jobs.NEW_REQUEST_GRACE)  # the claimed try's time, and the grace
    assert jobs.sweep()["unsent_sms"] == 1
    run_jobs(installed)
    assert [m["to"] for m in sandbox.messages] == ["+919800000791", "+919800000792"]


@pytest.fixture
def sid_writes(engine: sa.Engine) -> Iterator[list[int]]:
    """How many sids each write of sids records (an executemany is one write)."""
    writes: list[int] = []

    def count(connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.startswith("UPDATE sms_log SET message_sid"):
            writes.append(len(parameters) if many else 1)

    sa.event.listen(engine, "before_cursor_execute", count)
    yield writes
    sa.event.remove(engine, "before_cursor_execute", count)


def three_requests_due(engine: sa.Engine, redis_client: redis.Redis, clock: datetime) -> list[int]:
    for n, km in enumerate((0.5, 1.5, 2.5), start=1):
        add_worker(engine, f"Worker {n}", f"+91980000080{n}", km)
    jobs.rebuild_index()
    due = [add_request(engine, created=clock) for _ in range(3)]
    assert enqueue.dispatch_requests(redis_client, due)
    return due


def test_a_batchs_offer_sids_are_recorded_in_one_write_after_its_sends(
    installed: context.JobContext,
    engine: sa.Engine,
    sandbox: TwilioSandbox,
    redis_client: redis.Redis,
    sid_writes: list[int],
) -> None:
    """One transaction, waiting for the disk once, for the batch's sids rather than one per SMS."""
    three_requests_due(engine, redis_client, datetime.now(UTC))

    assert jobs.dispatch_due() == "dispatched 3"
    assert sid_writes == [3]
    with Session(engine) as session:
        recorded = {sms.to_number: sms.message_sid for sms in session.exec(select(SmsLog)).all()}
    assert recorded == {m["to"]: m["sid"] for m in sandbox.messages}
    assert len(recorded) == 3


def test_a_batchs_offers_their_audit_events_and_their_sms_are_each_written_in_one_insert(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    """On PostgreSQL a batch holds and reads its rounds' workers at once, its rounds run one after
    another with no savepoint each, and what they made is written after the last, each kind at once:
    it reads back as the rounds made it."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite (Python's driver) commits a savepoint's release: each round is written on its own")
    due = three_requests_due(engine, redis_client, datetime.now(UTC))
    tables: list[str] = []
    holds: list[str] = []

    def note(connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.startswith("INSERT INTO "):
            tables.append(statement.split()[2])
        if "FOR NO KEY UPDATE" in statement:
            holds.append(statement)

    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        assert jobs.dispatch_due() == "dispatched 3"
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)

    assert tables == ["offer", "audit_event", "sms_log"]
    assert len(holds) == 1  # the three rounds' workers, held at once
    with Session(engine) as session:
        made = session.exec(select(Offer).order_by(col(Offer.request_id))).all()
        events = session.exec(select(AuditEvent).where(AuditEvent.entity == "service_request")).all()
    assert [(o.request_id, o.status) for o in made] == [(r, OfferStatus.PENDING) for r in due]
    assert sorted((e.entity_id, e.action) for e in events) == sorted(
        [(r, "request.offered") for r in due] + [(r, "offer.sent") for r in due]
    )
    assert {e.detail["offer_id"] for e in events if e.action == "offer.sent"} == {o.id for o in made}
    by_id = {o.id: o for o in made}
    for sent in (e for e in events if e.action == "offer.sent"):  # each id the offer's it was given for
        offer = by_id[sent.detail["offer_id"]]
        assert (offer.request_id, offer.worker_id) == (sent.entity_id, sent.detail["worker_id"])
    assert len(sandbox.messages) == 3


def test_a_batchs_worker_reads_and_inserts_are_one_text_whatever_its_size(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    """On PostgreSQL the statements a batch holds and reads its workers with, and those that record its
    offers and their SMS, are the same text for a batch of one and a batch of four, within what psycopg keeps parsed
    (4 KB, 50 parameters: `psycopg._queries`): an IN list or one VALUES a row made a new text each size,
    parsed anew by psycopg at every batch."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs each round alone, and its statements are not psycopg's")
    for n in range(1, 7):
        add_worker(engine, f"Worker {n}", f"+9198000008{n:02d}", 0.4 * n)
    jobs.rebuild_index()
    texts: list[set[str]] = []

    def note(connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "= ANY (" in statement or statement.startswith(("INSERT INTO offer", "INSERT INTO sms_log")):
            texts[-1].add(statement)

    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        for size in (1, 4):
            texts.append(set())
            due = [add_request(engine, created=datetime.now(UTC)) for _ in range(size)]
            assert enqueue.dispatch_requests(redis_client, due)
            assert jobs.dispatch_due() == f"dispatched {size}"
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)

    assert len(sandbox.messages) == 5  # each request offered to a worker of its own, by SMS
    one, four = texts
    assert one == four
    assert [s.split()[0] for s in sorted(one)] == ["INSERT", "INSERT", "SELECT", "SELECT", "SELECT"]
    assert all(len(s) <= 4096 and s.count("%(") <= 50 for s in one)


def test_messages_recorded_at_once_are_each_given_their_own_id(engine: sa.Engine, settings: Settings) -> None:
    """Many offers' SMS inserted in one statement: each id read back is the row of the message it was
    given for, in the order given, its first try claimed."""
    moment = datetime.now(UTC)
    values = {"service": "plumber", "locality": "Hazratganj", "slot": "today, 4-6 pm"}
    rows = [
        messages.claimed_row(settings, f"+9198000{n:05d}", "offer", "en", {**values, "number": f"{n:07d}"}, moment)
        for n in range(40)
    ]
    with session_scope(engine) as session:
        sent = messages.record_claimed(session, rows)
    with Session(engine) as session:
        kept = {sms.id: sms for sms in session.exec(select(SmsLog)).all()}
    assert [(o.to, o.body) for o in sent] == [(r["to_number"], r["body"]) for r in rows]
    assert len({o.id for o in sent}) == 40
    for outgoing in sent:
        sms = kept[outgoing.id]
        assert (sms.to_number, sms.body, sms.template) == (outgoing.to, outgoing.body, "offer")
        assert (sms.attempts, sms.status, sms.next_attempt_at) == (1, "pending", moment + messages.RETRY_PAUSES[0])


def test_a_request_cancelled_while_its_batch_runs_gets_no_offer_and_the_rest_of_the_batch_goes_on(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    """An agent cancels a request after its round chose a worker, before the batch writes: the move to
    offered finds it changed, so its offer is never written nor sent; the batch's other request is
    offered as its own round chose."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite batches run apart: each round moves its request before it makes offers")
    add_worker(engine, "First", "+919800000821", 0.5)
    add_worker(engine, "Second", "+919800000822", 1.5)
    jobs.rebuild_index()
    cancelled, offered = add_request(engine), add_request(engine)
    assert enqueue.dispatch_requests(redis_client, [cancelled, offered])
    agent_acted: list[int] = []

    def agent_cancels(connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.startswith("UPDATE service_request SET status") and not agent_acted:
            agent_acted.append(cancelled)
            with engine.begin() as other:
                other.execute(
                    sa.update(ServiceRequest)
                    .where(col(ServiceRequest.id) == cancelled)
                    .values(status=RequestStatus.CANCELLED)
                )

    sa.event.listen(engine, "before_cursor_execute", agent_cancels)
    try:
        assert jobs.dispatch_due() == "dispatched 2"
    finally:
        sa.event.remove(engine, "before_cursor_execute", agent_cancels)

    assert agent_acted == [cancelled]
    assert request_of(engine, cancelled).status is RequestStatus.CANCELLED
    assert offers_of(engine, cancelled) == []
    assert request_of(engine, offered).status is RequestStatus.OFFERED
    assert [m["to"] for m in sandbox.messages] == ["+919800000822"]  # the worker its round chose


def test_two_requests_of_one_batch_near_the_only_worker_ask_them_once(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, redis_client: redis.Redis
) -> None:
    """One job, one question: the batch's second round cannot yet see the first's offer in the
    database, and still leaves its worker out."""
    only = add_worker(engine, "Only", "+919800000811", 0.5)
    jobs.rebuild_index()
    first, second = add_request(engine), add_request(engine)
    assert enqueue.dispatch_requests(redis_client, [first, second])

    assert jobs.dispatch_due() == "dispatched 2"

    assert [(o.request_id, o.worker_id) for o in offers_of(engine, first)] == [(first, only)]
    assert offers_of(engine, second) == []
    assert request_of(engine, second).status is RequestStatus.ESCALATED
    assert [m["to"] for m in sandbox.messages] == ["+919800000811"]


class DatabaseWatchingPlatform:
    """The platform, slow to take the first SMS (the job's clock moves on by `slowness`), noting before
    each send which of our messages have their sid written."""

    def __init__(self, platform: Telephony, clock: FrozenClock, slowness: timedelta, engine: sa.Engine) -> None:
        self.platform, self.clock, self.slowness, self.engine = platform, clock, slowness, engine
        self.written_before: list[int] = []

    def send_sms(
        self, to: str, body: str, *, status_callback: str | None = None, dlt_template_id: str | None = None
    ) -> str:
        with Session(self.engine) as session:
            written = session.exec(select(SmsLog.id).where(col(SmsLog.message_sid).is_not(None))).all()
        self.written_before.append(len(written))
        sid = self.platform.send_sms(to, body, status_callback=status_callback, dlt_template_id=dlt_template_id)
        if len(self.written_before) == 1:
            self.clock.advance(self.slowness)
        return sid

    def place_call(self, to: str, url: str, *, status_callback: str | None = None, timeout: int = 30) -> str:
        return self.platform.place_call(to, url, status_callback=status_callback, timeout=timeout)


def test_behind_a_slow_send_the_sids_so_far_are_recorded_before_the_next(
    installed: context.JobContext,
    engine: sa.Engine,
    sandbox: TwilioSandbox,
    redis_client: redis.Redis,
    sid_writes: list[int],
) -> None:
    """A sid waits for the batch's one write at most RECORD_SENT_WITHIN: a job killed during slow sends
    leaves few sids unwritten (each filled by the platform's report, but sent again should none come)."""
    clock = FrozenClock(datetime.now(UTC))
    watching = DatabaseWatchingPlatform(installed.telephony, clock, jobs.RECORD_SENT_WITHIN, engine)
    context.install(replace(installed, clock=clock, telephony=watching))
    three_requests_due(engine, redis_client, clock.now())

    assert jobs.dispatch_due() == "dispatched 3"
    assert watching.written_before == [0, 1, 1]
    assert sid_writes == [1, 2]


def test_a_batchs_sids_never_written_come_from_the_platforms_reports_and_nothing_is_sent_twice(
    installed: context.JobContext,
    engine: sa.Engine,
    sandbox: TwilioSandbox,
    webhook: FlaskClient,
    redis_client: redis.Redis,
) -> None:
    """The batch's sid write fails: its offers stand (their messages went), the job goes on, and each
    message's report, naming it in its URL, gives its sid, so the sweeper sends none of them again."""
    due = three_requests_due(engine, redis_client, datetime.now(UTC))
    the_sid_write_is_lost(engine)
    try:
        assert jobs.dispatch_due() == "dispatched 3"
    finally:
        the_sid_write_is_lost(engine, lost=False)
    assert [o.status for request_id in due for o in offers_of(engine, request_id)] == [OfferStatus.PENDING] * 3
    assert len(sandbox.messages) == 3
    platform = platform_of(webhook.application)
    for sent in sandbox.messages:
        if platform == "plivo":
            form = {"MessageUUID": sent["sid"], "Status": "sent", "ErrorCode": ""}
        else:
            form = {"MessageSid": sent["sid"], "MessageStatus": "sent"}
        assert signed_post(webhook, sent["status_callback"].removeprefix(PUBLIC_URL), form).status_code == 204
    with Session(engine) as session:
        recorded = {sms.to_number: (sms.message_sid, sms.status) for sms in session.exec(select(SmsLog)).all()}
    assert recorded == {m["to"]: (m["sid"], "sent") for m in sandbox.messages}
    with session_scope(engine) as session:  # long past the time they would have been tried again
        session.execute(sa.update(SmsLog).values(created_at=datetime.now(UTC) - timedelta(hours=1)))
    jobs.sweep()
    run_jobs(installed)
    assert len(sandbox.messages) == 3


def test_a_landline_citizen_gets_no_sms_but_the_worker_still_gets_the_details(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    with session_scope(engine) as session:
        session.add(Caller(phone="+915222623456"))  # a Lucknow landline
    add_worker(engine, "Ramesh Kumar", "+919800000731", 0.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    with session_scope(engine) as session:
        landline = session.exec(select(Caller).where(Caller.phone == "+915222623456")).one()
        session.execute(
            sa.update(ServiceRequest).where(col(ServiceRequest.id) == request_id).values(caller_id=landline.id)
        )
    jobs.dispatch_request(request_id)
    sms_from(webhook, "+919800000731", "1")
    run_jobs(installed)
    assert texts_to(sandbox, "+915222623456") == []
    number = request_of(engine, request_id).number
    told = [t for t in texts_to(sandbox, "+919800000731") if t.startswith(f"काम {number}:") and "DONE" in t]
    assert len(told) == 1
    assert "155330 पर कॉल करें" in told[0]  # the worker reaches the citizen through the helpline
    assert "2623456" not in told[0]


def test_an_sms_recorded_while_redis_was_down_is_handled_by_the_sweeper(
    installed: context.JobContext, engine: sa.Engine, settings: Settings, sandbox: TwilioSandbox
) -> None:
    add_worker(engine, "Ramesh Kumar", "+919800000741", 0.5)
    jobs.rebuild_index()
    request_id = add_request(engine)
    jobs.dispatch_request(request_id)
    offline = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})).test_client()
    sms_from(offline, "+919800000741", "1")  # recorded, but its job could not be queued
    run_jobs(installed)
    assert request_of(engine, request_id).status is RequestStatus.OFFERED
    with session_scope(engine) as session:
        session.execute(
            sa.update(SmsLog)
            .where(col(SmsLog.status) == "received")
            .values(created_at=datetime.now(UTC) - timedelta(minutes=2))
        )
    assert jobs.sweep()["unread_sms"] == 1
    run_jobs(installed)
    assert request_of(engine, request_id).status is RequestStatus.ASSIGNED


def assigned(engine: sa.Engine, request_id: int, worker_id: int, minutes_ago: int = 0) -> None:
    """The request is the worker's, as an agent assigns it: no offer, no notice sent yet."""
    with session_scope(engine) as session:
        session.execute(
            sa.update(ServiceRequest)
            .where(col(ServiceRequest.id) == request_id)
            .values(
                status=RequestStatus.ASSIGNED,
                worker_id=worker_id,
                completion_code="1234",
                assigned_at=datetime.now(UTC) - timedelta(minutes=minutes_ago),
            )
        )


def test_an_assignment_whose_notice_was_lost_is_told_by_the_sweeper(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox
) -> None:
    worker_id = add_worker(engine, "Ramesh", "+919800000761", km_north=1)
    request_id = add_request(engine)
    assigned(engine, request_id, worker_id, minutes_ago=2)  # by an agent, say, and the notify job lost with Redis
    assert jobs.sweep()["untold_assignments"] == 1
    run_jobs(installed)
    assert set(texts_to(sandbox, "+919800000761"))
    assert set(texts_to(sandbox, CITIZEN))
    assert jobs.sweep()["untold_assignments"] == 0
    # given to another worker, and that notice lost too: the first worker's does not count for them
    assigned(engine, request_id, add_worker(engine, "Suresh", "+919800000765", km_north=2), minutes_ago=2)
    assert jobs.sweep()["untold_assignments"] == 1
    run_jobs(installed)
    assert len(texts_to(sandbox, "+919800000765")) == 1
    assert jobs.sweep()["untold_assignments"] == 0


def test_an_assignment_notified_twice_texts_each_side_once(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox
) -> None:
    """The sweeper queued a second notice while the first waited in a busy queue: RQ runs both."""
    first = add_worker(engine, "Ramesh", "+919800000762", km_north=1)
    request_id = add_request(engine)
    assigned(engine, request_id, first)
    assert [jobs.notify_assigned(request_id), jobs.notify_assigned(request_id)] == ["notified", "already told"]
    assert len(texts_to(sandbox, "+919800000762")) == 1
    assert len(texts_to(sandbox, CITIZEN)) == 1
    assert jobs.sweep()["unsent_sms"] == 0
    assigned(engine, request_id, add_worker(engine, "Suresh", "+919800000763", km_north=2))  # an agent's choice
    assert jobs.notify_assigned(request_id) == "notified"
    assert len(texts_to(sandbox, "+919800000763")) == 1
    assert "Suresh" in texts_to(sandbox, CITIZEN)[-1]


def test_notices_of_one_assignment_run_at_once_text_the_worker_once(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox
) -> None:
    """Two RQ workers take the two notices at the same moment: the request's row lock lets one write."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time and no row locks; production runs PostgreSQL")
    worker_id = add_worker(engine, "Ramesh", "+919800000764", km_north=1)
    request_id = add_request(engine)
    assigned(engine, request_id, worker_id)
    start, outcomes = threading.Barrier(4), []

    def notify() -> None:
        start.wait()
        outcomes.append(jobs.notify_assigned(request_id))

    threads = [threading.Thread(target=notify) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["already told"] * 3 + ["notified"]
    assert len(texts_to(sandbox, "+919800000764")) == 1
    assert len(texts_to(sandbox, CITIZEN)) == 1


def test_five_wrong_codes_lock_the_job_even_against_the_right_one(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    request = assigned_job(installed, engine, webhook, "+919800000751")
    right = request.completion_code or ""
    wrong = [f"{n:04d}" for n in range(10) if f"{n:04d}" != right][: offers.MAX_CODE_TRIES]
    for code in wrong:
        sms_from(webhook, "+919800000751", f"DONE {request.number} {code}")
    sms_from(webhook, "+919800000751", f"DONE {request.number} {right}")
    run_jobs(installed)
    assert request_of(engine, request.id or 0).status is RequestStatus.ASSIGNED  # an agent must close it now
    with Session(engine) as session:
        reasons = session.exec(select(AuditEvent.reason).where(AuditEvent.action == "request.completion_refused")).all()
    assert reasons.count("wrong code, or not assigned") == offers.MAX_CODE_TRIES
    assert reasons.count("too many wrong codes") == 1


# -- one job at a time (issue 22: a worker held two offers at once, and took both) ------------------


def asked_twice(engine: sa.Engine, worker_id: int, request_id: int) -> int:
    """What two dispatch rounds racing used to leave: the worker asked about a second job while a
    first offer is open. Made directly, as the race made it."""
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        session.execute(
            sa.update(ServiceRequest).where(col(ServiceRequest.id) == request_id).values(status=RequestStatus.OFFERED)
        )
        offer = Offer(request_id=request_id, worker_id=worker_id, created_at=now, expires_at=now + timedelta(hours=1))
        session.add(offer)
        session.flush()
        assert offer.id is not None
        return offer.id


def test_a_worker_asked_about_two_jobs_who_says_yes_to_both_gets_only_the_first(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    ramesh = add_worker(engine, "Ramesh", "+919800000901", 0.3)
    other = add_worker(engine, "Other", "+919800000902", 2.0)
    jobs.rebuild_index()
    first, second = add_request(engine), add_request(engine)
    jobs.dispatch_request(first)
    assert [o.worker_id for o in offers_of(engine, first)] == [ramesh]
    busy_offer = asked_twice(engine, ramesh, second)
    first_number, second_number = request_of(engine, first).number, request_of(engine, second).number

    sms_from(webhook, "+919800000901", f"YES {first_number}")
    run_jobs(installed)
    assert request_of(engine, first).worker_id == ramesh
    sms_from(webhook, "+919800000901", f"YES {second_number}")
    run_jobs(installed)

    assert request_of(engine, second).worker_id is None
    assert [(o.worker_id, o.status) for o in offers_of(engine, second)] == [
        (ramesh, OfferStatus.DECLINED),
        (other, OfferStatus.PENDING),  # moved on at once, as after a no
    ]
    assert any(f"काम {first_number} पहले से आपके पास है। पहले उसे पूरा करें" in t for t in texts_to(sandbox, "+919800000901"))
    with Session(engine) as session:
        [refused] = session.exec(
            select(AuditEvent).where(AuditEvent.action == "offer.declined", AuditEvent.entity_id == second)
        ).all()
    assert (refused.actor, refused.reason) == (f"worker:{ramesh}", offers.BUSY_REASON)
    assert refused.detail is not None
    assert (refused.detail["offer_id"], refused.detail["job_in_hand"]) == (busy_offer, first)


def test_two_yeses_at_once_from_a_worker_asked_about_two_jobs_take_one(
    installed: context.JobContext, engine: sa.Engine
) -> None:
    """The two answers on two connections at the same moment: the worker's row makes them take turns."""
    ramesh = add_worker(engine, "Ramesh", "+919800000911", 0.3)
    jobs.rebuild_index()
    first, second = add_request(engine), add_request(engine)
    jobs.dispatch_request(first)
    both = [offers_of(engine, first)[0].id or 0, asked_twice(engine, ramesh, second)]
    start, answers = threading.Barrier(2), []

    def say_yes(offer_id: int) -> None:
        start.wait()
        answers.append(offers.reply(engine, offer_id, True, datetime.now(UTC), f"worker:{ramesh}"))

    threads = [threading.Thread(target=say_yes, args=(offer_id,)) for offer_id in both]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == sorted([offers.Answer.ACCEPTED, offers.Answer.BUSY])
    assert [request_of(engine, r).worker_id for r in (first, second)].count(ramesh) == 1


def test_with_parallel_jobs_allowed_a_worker_may_take_a_second_job(
    installed: context.JobContext, engine: sa.Engine
) -> None:
    ramesh = add_worker(engine, "Ramesh", "+919800000921", 0.3)
    jobs.rebuild_index()
    first, second = add_request(engine), add_request(engine)
    jobs.dispatch_request(first)
    both = [offers_of(engine, first)[0].id or 0, asked_twice(engine, ramesh, second)]
    now = datetime.now(UTC)
    answers = [offers.reply(engine, o, True, now, "worker", allow_parallel_jobs=True) for o in both]
    assert answers == [offers.Answer.ACCEPTED, offers.Answer.ACCEPTED]


def test_two_dispatch_rounds_racing_for_the_one_worker_near_ask_them_once(
    installed: context.JobContext, engine: sa.Engine, settings: Settings
) -> None:
    """Round one has chosen the worker and not yet committed when round two, on another connection,
    looks: round two must not ask them too (it leaves them out, and looks again shortly)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: round two waits for round one; production runs PostgreSQL")
    ramesh = add_worker(engine, "Ramesh", "+919800000931", 0.3)
    first, second = add_request(engine), add_request(engine)
    candidates = [Candidate(ramesh, 0.3, None, 4.0)]
    moment = datetime.now(UTC)
    results: list[offers.Dispatched] = []

    def round_two() -> None:
        with session_scope(engine) as session:
            results.append(offers.next_offers(session, second, candidates, settings.dispatch, moment))

    with session_scope(engine) as session:
        made = offers.next_offers(session, first, candidates, settings.dispatch, moment)
        assert [o.worker_id for o in made.offers] == [ramesh]
        racer = threading.Thread(target=round_two)
        racer.start()
        racer.join(30)  # round two must not wait on round one (it would wait forever: round one waits for it)
        assert not racer.is_alive()
    [result] = results
    assert (result.offers, result.escalated, result.again) == ((), False, True)
    assert [o.worker_id for o in offers_of(engine, first)] == [ramesh]
    assert offers_of(engine, second) == []
    assert request_of(engine, second).status is RequestStatus.NEW  # not escalated: dispatched again shortly


def test_a_worker_with_a_job_in_hand_presses_1_on_an_offer_call_and_hears_to_finish_it_first(
    installed: context.JobContext, engine: sa.Engine, sandbox: TwilioSandbox, webhook: FlaskClient
) -> None:
    kamla = add_worker(engine, "Kamla Devi", "+919800000941", 0.5, voice=True)
    other = add_worker(engine, "Other", "+919800000942", 2.0)
    jobs.rebuild_index()
    first, second = add_request(engine), add_request(engine)
    jobs.dispatch_request(first)
    run_jobs(installed)
    asked_twice(engine, kamla, second)  # the race's second offer
    sms_from(webhook, "+919800000941", f"YES {request_of(engine, first).number}")  # the first, taken by text
    run_jobs(installed)
    assert request_of(engine, first).worker_id == kamla

    transcript = simulator(webhook, from_number="+919800000941").run("1")  # she rings in, hears the second job, 1
    assert not transcript.errors
    words = ["शून्य", "एक", "दो", "तीन", "चार", "पाँच", "छह", "सात", "आठ", "नौ"]
    first_number = request_of(engine, first).number
    assert transcript.said(f"काम नंबर {', '.join(words[int(d)] for d in first_number)} पहले से आपके पास है।")
    run_jobs(installed)
    assert request_of(engine, second).worker_id is None
    assert [(o.worker_id, o.status) for o in offers_of(engine, second)] == [
        (kamla, OfferStatus.DECLINED),
        (other, OfferStatus.PENDING),
    ]
    assert any(f"काम {first_number} पहले से आपके पास है" in t for t in texts_to(sandbox, "+919800000941"))
