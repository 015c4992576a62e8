"""Call state in the real Redis: one request of a call at a time, a retry answered from what was
stored, a turn in two round trips, and one that writes only its session in one."""

from __future__ import annotations

import pytest
import redis

from flows.engine import Session, Status
from ivr.callstate import CallState, Replayed
from tests.factories import redis_sends

SESSION = Session("helpline", "main_menu", Status.WAITING_KEYS, "en", {"service": "plumber"}, {}, 3, 2, ("welcome",))


def test_a_retry_is_given_the_answer_already_stored_and_the_session(redis_client: redis.Redis) -> None:
    state = CallState(redis_client, "CA1")
    with state.turn("2") as (answered, session):
        assert (answered, session) == (None, None)
        state.save(SESSION, "2", "<Response/>")

    with CallState(redis_client, "CA1").turn("2") as retried:
        assert retried == ("<Response/>", SESSION)
    assert state.answer("2") == "<Response/>"
    assert state.load() == SESSION
    assert 0 < redis_client.ttl(state.key) <= 4 * 3600


def test_the_lock_is_held_until_the_answer_is_stored(redis_client: redis.Redis) -> None:
    state = CallState(redis_client, "CA1")
    with state.turn("2"):
        assert redis_client.pttl(state.lock_key) > 19_000
        with pytest.raises(TimeoutError, match="busy"), CallState(redis_client, "CA1").turn("2", wait_s=0.2):
            pass  # a retry meanwhile waits, then gives up
        state.save(SESSION, "2", "<Response/>")
        assert not redis_client.exists(state.lock_key)


def test_a_retry_waits_for_the_first_request_and_then_has_its_answer(redis_client: redis.Redis) -> None:
    state = CallState(redis_client, "CA1")
    with state.turn("2"):
        redis_client.pexpire(state.lock_key, 300)  # the first request finishes in 0.3 s, as far as the lock goes
        with CallState(redis_client, "CA1").turn("2", wait_s=2) as (answered, _session):
            assert answered is None


def test_a_turn_that_fails_still_lets_go_of_the_lock(redis_client: redis.Redis) -> None:
    state = CallState(redis_client, "CA1")
    with pytest.raises(RuntimeError), state.turn("2"):
        raise RuntimeError("the flow broke")

    assert not redis_client.exists(state.lock_key)


def test_a_request_that_outlived_its_lock_leaves_the_retrys_lock_alone(redis_client: redis.Redis) -> None:
    state = CallState(redis_client, "CA1")
    with state.turn("2"):
        redis_client.set(state.lock_key, "the retry's token")  # ours expired; a retry took the call
        state.save(SESSION, "2", "<Response/>")
    failing = CallState(redis_client, "CA2")
    with pytest.raises(RuntimeError), failing.turn("2"):  # noqa: PT012 (a retry takes the lock, then the flow fails)
        redis_client.set(failing.lock_key, "the retry's token")
        raise RuntimeError("the flow broke")

    assert redis_client.get(state.lock_key) == redis_client.get(failing.lock_key) == b"the retry's token"


def test_a_turn_is_two_round_trips(redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    state = CallState(redis_client, "CA1")
    with state.turn("1"):
        state.save(SESSION, "1", "<Response/>")  # the first turn loads the scripts into Redis
    sent = redis_sends(monkeypatch)

    with state.turn("2"):
        state.save(SESSION, "2", "<Response/>")

    assert len(sent) == 2


def test_a_turn_that_writes_only_its_session_keeps_it_in_one_round_trip(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = CallState(redis_client, "CA1")
    state.keep(SESSION, "start", "<Response/>")  # the first loads the script into Redis
    sent = redis_sends(monkeypatch)

    assert state.keep(SESSION, "1", "<Response><Record/></Response>") == "<Response><Record/></Response>"

    assert len(sent) == 1
    assert state.answer("1") == "<Response><Record/></Response>"
    assert state.load() == SESSION
    assert not redis_client.exists(state.lock_key)  # kept without taking the call's lock
    assert 0 < redis_client.ttl(state.key) <= 4 * 3600


def test_a_retry_of_a_kept_turn_is_given_the_first_answer_and_changes_nothing(redis_client: redis.Redis) -> None:
    state = CallState(redis_client, "CA1")
    assert state.keep(SESSION, "start", "<Response>first</Response>") == "<Response>first</Response>"
    later = Session("helpline", "language", Status.WAITING_KEYS, "hi", {}, {}, 1, 0, ("welcome",))

    assert CallState(redis_client, "CA1").keep(later, "start", "<Response>again</Response>") == (
        "<Response>first</Response>"
    )
    assert state.load() == SESSION


def test_a_kept_turn_marks_its_first_delivery_in_the_same_round_trip_and_a_replay_stores_nothing(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = CallState(redis_client, "CA1")
    state.keep(SESSION, "start", "<Response/>", ("nonce:0", 60))  # the first loads the script into Redis
    sent = redis_sends(monkeypatch)

    assert state.keep(SESSION, "1", "<Response>first</Response>", ("nonce:1", 60)) == "<Response>first</Response>"
    assert len(sent) == 1
    assert 0 < redis_client.ttl("nonce:1") <= 60

    later = Session("helpline", "language", Status.WAITING_KEYS, "hi", {}, {}, 2, 0, ("welcome",))
    with pytest.raises(Replayed):
        CallState(redis_client, "CA1").keep(later, "2", "<Response>replayed</Response>", ("nonce:1", 60))
    assert state.answer("2") is None
    assert state.load() == SESSION


def test_a_taken_turn_marks_its_first_delivery_in_the_same_round_trip_and_a_replay_takes_nothing(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = CallState(redis_client, "CA1")
    with state.turn("0"):  # the first loads the script into Redis
        state.save(SESSION, "0", "<Response/>")
    sent = redis_sends(monkeypatch)

    with state.turn("1", first_delivery=("nonce:1", 60)) as (answered, session):
        assert len(sent) == 1
        assert (answered, session) == (None, SESSION)
        state.save(SESSION, "1", "<Response>first</Response>")
    assert 0 < redis_client.ttl("nonce:1") <= 60

    with pytest.raises(Replayed), CallState(redis_client, "CA1").turn("2", first_delivery=("nonce:1", 60)):
        pytest.fail("a replay took the call's turn")
    assert not redis_client.exists(state.lock_key)


def test_a_turn_that_waits_for_the_lock_marks_its_first_delivery_once(redis_client: redis.Redis) -> None:
    state = CallState(redis_client, "CA1")
    with state.turn("1"):
        second = CallState(redis_client, "CA1")
        with pytest.raises(TimeoutError), second.turn("2", wait_s=0.3, first_delivery=("nonce:2", 60)):
            pytest.fail("the lock was held")
    with CallState(redis_client, "CA1").turn("2", first_delivery=("nonce:3", 60)) as (answered, _session):
        assert answered is None
    assert redis_client.exists("nonce:2")
    assert redis_client.exists("nonce:3")


def test_a_turn_is_not_kept_while_another_request_of_the_call_holds_its_lock(redis_client: redis.Redis) -> None:
    state = CallState(redis_client, "CA1")
    with state.turn("1"):
        assert CallState(redis_client, "CA1").keep(SESSION, "2", "<Response/>") is None  # take the turn instead
        assert state.answer("2") is None
        assert state.load() is None
