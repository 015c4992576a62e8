"""Round trips to PostgreSQL and Redis of a booking call's turns, counted (devtools/bench/roundtrips)
on a call after a first one has warmed the pool, the statement caches and Redis's scripts: a turn
that gains a round trip fails here, as one that loses some must say so by lowering its figure."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from flask import Flask

from core.settings import Settings
from devtools.bench import roundtrips
from devtools.bench.calls.turns import webhook
from devtools.bench.roundtrips import RoundTrips
from devtools.twilio_sandbox import TwilioSandbox
from tests.factories import ACCOUNT_SID, ALWAYS_OPEN, CITIZEN, call, simulator, with_hours

ENGLISH_PLUMBER_AT_226001 = "2,1,1,226001#,1,9"
ANOTHER_CITIZEN = "+919812345678"


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def counted_by_webhook(app: Flask, trips: RoundTrips) -> list[tuple[str, RoundTrips]]:
    """Each request the app serves from now on, with the round trips it made, in order."""
    served: list[tuple[str, RoundTrips]] = []
    inner = app.wsgi_app

    def counting(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        before = trips.copy()
        try:
            return list(inner(environ, start_response))
        finally:
            served.append((webhook(environ), trips - before))

    app.wsgi_app = counting  # type: ignore[method-assign]
    return served


def test_a_booking_calls_turns_keep_their_round_trips(app: Flask, sandbox: TwilioSandbox) -> None:
    call(app, ENGLISH_PLUMBER_AT_226001, from_number=ANOTHER_CITIZEN)  # warms the pool and the caches
    with roundtrips.counted() as trips:
        served = counted_by_webhook(app, trips)
        transcript = call(app, ENGLISH_PLUMBER_AT_226001, from_number=CITIZEN)

    by_webhook = dict(served)
    assert len(by_webhook) == len(served), served  # each webhook once: the call's turns, in order
    booking = by_webhook["/twilio/voice/record (turn 6)"]  # the caller confirms: the request is filed
    assert transcript.said("Your request is registered. Your request number is:")
    # the caller said nothing at the beep: no spoken address to attach to the request. The filing is
    # one statement, committed as it runs (the caller, the request under a number its INSERT tries, its
    # audit event, the call's log and the SMS, in one round trip; the pooled connection is checked
    # without one: storage.db._ended_by_the_server). In Redis: the call's turn taken, then its answer
    # stored with the request's and the SMS's ids pushed for their jobs (enqueue.held)
    assert (booking.postgres, booking.statements, booking.redis) == (1, 1, 2), served
    # the caller picks a language: it is remembered (their number given back, were it erased) and the
    # privacy notice's SMS is filed, in one statement (notice.greet_first_call) in autocommit, and
    # queued with the turn's answer; the caller is new, so has no worker to be put through to, and
    # nothing more is read
    language = by_webhook["/twilio/voice/step (turn 0)"]
    assert (language.postgres, language.statements, language.redis) == (1, 1, 2), served
    # the call's first request (who rings: one read) and the turn that waits for the address to be
    # recorded commit nothing but the call's session: stored with the step's answer in one round trip,
    # without the call's lock (ivr.callstate's `keep`)
    assert by_webhook["/twilio/voice"].redis == by_webhook["/twilio/voice/step (turn 5)"].redis == 1, served
    # the call ends: its log pushed for the writer with its session, read by Redis as it pushes
    # (calllogs.PUSH_WITH_SESSION), and its room closed, in one round trip; no connection to the database
    ended = by_webhook["/twilio/voice/status"]
    assert (ended.postgres, ended.redis) == (0, 1), served
    whole = sum(by_webhook.values(), RoundTrips())
    assert (whole.postgres, whole.redis) == (3, 7), served


def test_a_spoken_address_is_kept_in_one_statement_of_the_booking_turn(app: Flask, sandbox: TwilioSandbox) -> None:
    call(app, ENGLISH_PLUMBER_AT_226001, from_number=ANOTHER_CITIZEN)  # warms the pool and the caches
    speaking = simulator(app.test_client(), from_number=CITIZEN, account_sid=ACCOUNT_SID, media_url=sandbox.base_url)
    with roundtrips.counted() as trips:
        served = counted_by_webhook(app, trips)
        transcript = speaking.run(ENGLISH_PLUMBER_AT_226001 + ",say:8#,2")

    assert not transcript.errors, transcript.render(requests=True)
    assert transcript.said("Thank you, your address is recorded.")
    booking = dict(served)["/twilio/voice/record (turn 6)"]
    # the booking's 1; the recording kept unless the turn kept one before (one INSERT, on the connection
    # the turn checked out), and attached to the request by one UPDATE on the same connection
    assert (booking.postgres, booking.redis) == (3, 2), served
