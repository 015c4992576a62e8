"""The hot path's direct Redis commands (`storage.redisdb.Direct`), on the real Redis: a connection a
thread keeps, errors as the client raises them, several commands in one round trip, a connection
Redis closed made again, a script Redis lacks loaded, a forked child on a connection of its own."""

from __future__ import annotations

import multiprocessing
import threading
import uuid

import pytest
import redis

from storage.redisdb import Lua, direct
from tests.factories import redis_sends


def test_a_thread_keeps_its_connection_and_another_thread_has_its_own(redis_client: redis.Redis) -> None:
    commands = direct(redis_client)
    mine = commands("CLIENT", "ID")
    theirs: list[int] = []
    other = threading.Thread(target=lambda: theirs.extend([commands("CLIENT", "ID"), commands("CLIENT", "ID")]))
    other.start()
    other.join()

    assert commands("CLIENT", "ID") == mine
    assert theirs[0] == theirs[1] != mine
    assert direct(redis_client) is commands


def test_an_error_redis_answers_is_raised_and_the_connection_stays(redis_client: redis.Redis) -> None:
    commands = direct(redis_client)
    commands("SET", "word", "not a number")
    connection = commands("CLIENT", "ID")

    with pytest.raises(redis.ResponseError, match="not an integer"):
        commands("INCR", "word")

    assert commands("GET", "word") == b"not a number"
    assert commands("CLIENT", "ID") == connection


def test_commands_sent_together_are_one_round_trip_answered_in_order(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = direct(redis_client)
    commands("SET", "word", "not a number")
    sent = redis_sends(monkeypatch)

    assert commands.each(("RPUSH", "due", 7), ("RPUSH", "due", 8), ("LRANGE", "due", 0, -1)) == [1, 2, [b"7", b"8"]]
    assert len(sent) == 1
    with pytest.raises(redis.ResponseError, match="not an integer"):
        commands.each(("RPUSH", "due", 9), ("INCR", "word"), ("LLEN", "due"))

    assert redis_client.lrange("due", 0, -1) == [b"7", b"8", b"9"]  # the commands around the error ran
    assert commands("GET", "word") == b"not a number"  # no answer of the batch is left to be read as this one's


def test_a_connection_redis_closed_is_made_again_before_the_next_command(redis_client: redis.Redis) -> None:
    commands = direct(redis_client)
    closed = commands("CLIENT", "ID")
    redis_client.client_kill_filter(_id=closed)

    assert commands("SET", "after", "the close") == b"OK"  # not a ConnectionError: a restart is not the caller's
    assert commands("CLIENT", "ID") != closed
    assert redis_client.get("after") == b"the close"


def test_a_script_redis_lacks_is_loaded_and_run(redis_client: redis.Redis) -> None:
    # A script Redis has never seen, as after its restart (not SCRIPT FLUSH: the other test processes
    # share this Redis, and a flush under a test counting its round trips adds two)
    script = Lua(f"-- {uuid.uuid4()}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
    commands = direct(redis_client)
    assert redis_client.script_exists(script.sha) == [False]

    assert commands.run(script, ["counter"], [2]) == 2
    assert redis_client.script_exists(script.sha) == [True]
    assert commands.run(script, ["counter"], [3]) == 5


def test_a_forked_child_sends_on_a_connection_of_its_own(redis_client: redis.Redis) -> None:
    commands = direct(redis_client)
    parents = commands("CLIENT", "ID")
    fork = multiprocessing.get_context("fork")
    answer = fork.Queue()
    child = fork.Process(target=lambda: answer.put(commands("CLIENT", "ID")))
    child.start()
    childs = answer.get(timeout=30)
    child.join(timeout=30)

    assert child.exitcode == 0
    assert childs != parents
    assert commands("CLIENT", "ID") == parents  # the parent's connection was not the child's to close
