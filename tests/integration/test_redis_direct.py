"""The hot path's direct Redis commands (`storage.redisdb.Direct`), on the real Redis: a connection a
thread keeps, errors as the client raises them, several commands in one round trip, a connection
Redis closed made again, a script Redis lacks loaded, a forked child on a connection of its own; a
Redis restarting waited for, and one that stays down refused at once."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from storage.redisdb import Direct, Lua, direct
from tests.chaos import RedisServer
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


# -- a Redis restarting ---------------------------------------------------------------------------------
# On the test's own redis-server (`own_redis`), stopped and started again under the commands, through a
# client made from its URL as the helpline's is (`redisdb.connect`): redis-py retries nothing for it.


class Heard(logging.Handler):
    """The log lines of `storage.redisdb`, each setting an event a test waits on."""

    def __init__(self) -> None:
        super().__init__()
        self.refused, self.back = threading.Event(), threading.Event()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        self.lines.append(line)
        (self.refused if line.startswith("Redis refused") else self.back).set()


@pytest.fixture
def heard() -> Iterator[Heard]:
    handler = Heard()
    logger = logging.getLogger("storage.redisdb")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _in_a_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_command_sent_while_redis_restarts_waits_for_it(own_redis: RedisServer, heard: Heard) -> None:
    commands = Direct(redis.Redis.from_url(own_redis.url), restart_wait_s=120)  # far longer than any machine takes
    assert commands("SET", "turn", "4") == b"OK"
    own_redis.stop()

    thread, outcome = _in_a_thread(lambda: commands("INCR", "calls"))
    assert heard.refused.wait(60), "the command did not meet the stopped Redis"
    own_redis.start()
    thread.join(60)

    assert outcome == [1]  # sent once, answered once Redis was back
    assert heard.back.is_set()
    assert "waiting up to 120 s" in heard.lines[0]


def test_a_command_redis_answers_loading_to_is_sent_again_once_it_has_loaded(
    own_redis: RedisServer, heard: Heard
) -> None:
    client = redis.Redis.from_url(own_redis.url)
    client.mset({f"filler:{n}": "x" * 2048 for n in range(6000)})
    client.save()
    own_redis.stop()
    # Each key read back 5 ms late, clients answered as it reads (some 0.4 s apart): LOADING for 30 s,
    # unless the test lifts the delay
    own_redis.start("--key-load-delay", "5000", "--loading-process-events-interval-bytes", "1024")
    with pytest.raises(redis.BusyLoadingError):
        client.get("filler:1")
    commands = Direct(client, restart_wait_s=120)

    thread, outcome = _in_a_thread(lambda: commands.each(("INCR", "calls"), ("INCR", "calls")))
    assert heard.refused.wait(60), "the commands were not answered LOADING"
    client.config_set("key-load-delay", 0)  # the rest of the data at once
    thread.join(60)

    assert outcome == [[1, 2]]  # neither ran while Redis loaded
    assert client.dbsize() == 6001
    assert "Redis is loading" in heard.lines[0]


def test_a_redis_down_longer_than_a_restart_fails_every_command_at_once(
    own_redis: RedisServer, heard: Heard, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = Direct(redis.Redis.from_url(own_redis.url), restart_wait_s=0.2)
    assert commands("PING") == b"PONG"
    own_redis.stop()
    pauses: list[float] = []
    sleep = time.sleep

    def paused(seconds: float) -> None:
        pauses.append(seconds)
        sleep(seconds)

    monkeypatch.setattr(time, "sleep", paused)  # the pauses between tries, counted (and taken)

    with pytest.raises(redis.ConnectionError):
        commands("INCR", "calls")  # waited out the restart's time
    waited = len(pauses)
    with pytest.raises(redis.ConnectionError):
        commands("INCR", "calls")  # Redis still down: no wait
    assert waited > 0
    assert len(pauses) == waited
    monkeypatch.undo()
    own_redis.start()

    assert commands("INCR", "calls") == 1  # back: answered
    assert heard.back.is_set()
    assert len([line for line in heard.lines if line.startswith("Redis refused")]) == 1
