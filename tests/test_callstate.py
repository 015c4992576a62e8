"""Call state in the real Redis: one request of a call at a time, a retry answered from what was
stored, and a turn in three round trips."""

from __future__ import annotations

import pytest
import redis

from flows.engine import Session, Status
from ivr.callstate import CallState

SESSION = Session("helpline", "main_menu", Status.WAITING_KEYS, "en", {"service": "plumber"}, {}, 3, 2, ("welcome",))


def test_a_retry_recalls_the_answer_given_and_the_session(redis_client: redis.Redis) -> None:
    state = CallState(redis_client, "CA1")
    with state.locked():
        assert state.recall("2") == (None, None)
        state.save(SESSION, "2", "<Response/>")

    assert state.recall("2") == ("<Response/>", SESSION)
    assert state.answer("2") == "<Response/>" and state.load() == SESSION
    assert 0 < redis_client.ttl(state.key) <= 4 * 3600


def test_the_lock_is_held_until_the_answer_is_stored(redis_client: redis.Redis) -> None:
    state = CallState(redis_client, "CA1")
    with state.locked():
        assert redis_client.exists(state.lock_key)
        with pytest.raises(TimeoutError, match="busy"), CallState(redis_client, "CA1").locked(wait_s=0.1):
            pass  # a retry meanwhile waits, then gives up
        state.save(SESSION, "2", "<Response/>")
        assert not redis_client.exists(state.lock_key)


def test_a_turn_that_fails_still_lets_go_of_the_lock(redis_client: redis.Redis) -> None:
    state = CallState(redis_client, "CA1")
    with pytest.raises(RuntimeError), state.locked():
        raise RuntimeError("the flow broke")

    assert not redis_client.exists(state.lock_key)


def test_a_request_that_outlived_its_lock_leaves_the_retrys_lock_alone(redis_client: redis.Redis) -> None:
    state = CallState(redis_client, "CA1")
    with state.locked():
        redis_client.set(state.lock_key, "the retry's token")  # ours expired; a retry took the call
        state.save(SESSION, "2", "<Response/>")

    assert redis_client.get(state.lock_key) == b"the retry's token"


def test_a_turn_is_three_round_trips(redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    state = CallState(redis_client, "CA1")
    with state.locked():
        state.save(SESSION, "1", "<Response/>")  # the first save loads the script into Redis
    sent: list[object] = []
    send = redis.connection.AbstractConnection.send_packed_command
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command",
                        lambda self, *args, **kwargs: sent.append(args) or send(self, *args, **kwargs))  # fmt: skip

    with state.locked():
        state.recall("2")
        state.save(SESSION, "2", "<Response/>")

    assert len(sent) == 3
