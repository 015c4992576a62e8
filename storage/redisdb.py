"""Redis: the one connection factory every process uses, and the direct way of the hot path's commands."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
from redis.retry import Retry

from core.exceptions import SewamitraError
from core.settings import Settings

KEY_PREFIX = "sewamitra:"
# A Redis restarting refuses connections, then answers LOADING while it reads its data back: some
# 0.2-0.4 s for `sewamitra up`'s embedded one (`sewamitra soak`), a few seconds for a managed one that
# fails over. A command of the hot path is sent again meanwhile (Redis did nothing with it), for up to
# this long from the first refusal the process saw: a caller hears that turn a little late, not the
# apology. Past it, every command fails at once until Redis answers again, so a Redis that stays down
# does not hold a web worker's threads (the platform waits 15 s for a webhook).
RESTART_WAIT_S = 2.0
RETRY_EVERY_S = 0.05

log = logging.getLogger(__name__)


class RedisUnavailable(SewamitraError):
    """No Redis is configured, or the embedded one would not start."""


def connect(settings: Settings) -> redis.Redis:
    """The Redis client every part of the helpline uses."""
    if not settings.redis_url:
        raise RedisUnavailable(
            "no Redis is configured: set SEWAMITRA_REDIS_URL (or redis_url in config.yaml), "
            "or start everything with `sewamitra up`, which runs an embedded Redis"
        )
    return redis.Redis.from_url(settings.redis_url, health_check_interval=30, socket_timeout=10)


class _Connection(Protocol):
    """What `Direct` uses of a redis-py connection (its methods carry no types of their own)."""

    retry: Retry

    def pack_commands(self, commands: Sequence[Sequence[Any]]) -> list[bytes]: ...
    def send_packed_command(self, command: list[bytes]) -> None: ...
    def read_response(self, disconnect_on_error: bool = True) -> Any: ...
    def connect(self) -> None: ...
    def can_read(self) -> bool: ...
    def disconnect(self) -> None: ...


@dataclass(frozen=True)
class Lua:
    """A Lua script, run by its SHA1 (EVALSHA) and loaded into Redis the first time Redis lacks it."""

    text: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.text.encode()).hexdigest())  # noqa: S324 (Redis's name for it)


def with_first_delivery(
    keys: Sequence[str], args: Sequence[str | int], first_delivery: tuple[str, int] | None
) -> tuple[list[str], list[str | int]]:
    """A script's keys and arguments, with a webhook's first-delivery key (its replay check) and its
    life in seconds last, when there is one: the scripts that mark it set it NX first."""
    if first_delivery is None:
        return [*keys], [*args]
    return [*keys, first_delivery[0]], [*args, first_delivery[1]]


class Direct:
    """A client's commands sent on a connection of the calling thread's own, kept for the next.

    A call's turns send a few commands each (its state taken and saved), and redis-py's client spends
    some 60 µs of CPU on one: the pool's checkout and return, its metrics, its retry and event hooks.
    The connection itself sends a command and reads its answer in 35–45 µs, checked first as the pool
    checks one it hands out (`sewamitra bench commits`: a turn's two scripts at 0.55x the client's).
    Each thread (a gunicorn worker's, an RQ worker's) keeps one connection of the client's settings
    (its timeouts, health check and retry policy), made when the thread first asks and again in a
    forked child. Errors are the client's: a lost connection raises ConnectionError (a RedisError)
    and is made again by the next command; an error Redis answers (ResponseError) leaves the
    connection as it was. A Redis restarting, which refuses the connection or answers LOADING to
    every command sent, is waited for (`RESTART_WAIT_S` from the first refusal); commands Redis may
    have run are never sent again."""

    def __init__(self, client: redis.Redis, restart_wait_s: float = RESTART_WAIT_S) -> None:
        self._pool = client.connection_pool
        self._local = threading.local()
        self._restart_wait_s = restart_wait_s
        self._refused: tuple[int, float] | None = None  # the process and when Redis first refused it, for its threads

    def __call__(self, *args: Any) -> Any:
        """One command, and Redis's answer as it came (bytes, ints, lists)."""
        return self.each(args)[0]

    def each(self, *commands: Sequence[Any]) -> list[Any]:
        """Commands sent together, in one round trip (not a transaction), and their answers in order.
        An error Redis answers to one is raised once every answer is read."""
        answers = self._answers(commands)
        for answer in answers:
            if isinstance(answer, redis.exceptions.ResponseError):
                raise answer
        return answers

    def run_with(
        self, script: Lua, keys: Sequence[str], args: Sequence[str | int], also: Sequence[Sequence[Any]]
    ) -> tuple[Any, list[Any]]:
        """`script` as `run` runs it, with `also`'s commands sent after it in the same round trip: the
        script's answer, and theirs in order (an error Redis answers to one of them is its answer, not
        raised). They run whether or not Redis had the script; the script, when it lacked it, is loaded
        and run again on its own."""
        first, *answers = self._answers([("EVALSHA", script.sha, len(keys), *keys, *args), *also])
        if isinstance(first, redis.exceptions.NoScriptError):
            first = self.run(script, keys, args)
        elif isinstance(first, redis.exceptions.ResponseError):
            raise first
        return first, answers

    def _answers(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        while True:
            try:
                answers = self._sent(commands)
            except _Refused as refused:
                self._wait_for_restart(refused.error)
                continue
            if self._refused is not None:
                log.warning("Redis answers again, %.2f s after it first refused", time.monotonic() - self._refused[1])
                self._refused = None
            return answers

    def _sent(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        connection = self._connection()
        return connection.retry.call_with_retry(
            lambda: _exchange(connection, commands), lambda _error: connection.disconnect()
        )

    def _wait_for_restart(self, error: redis.exceptions.ConnectionError) -> None:
        """A pause before the commands Redis refused are sent again; `error` raised once Redis has
        refused for `RESTART_WAIT_S`."""
        now, pid = time.monotonic(), os.getpid()
        if self._refused is None or self._refused[0] != pid:  # the first refusal, or a forked parent's
            self._refused = (pid, now)
            log.warning("Redis refused (%s): waiting up to %g s for it to restart", error, self._restart_wait_s)
        since = self._refused[1]
        if now - since >= self._restart_wait_s:
            raise error
        time.sleep(min(RETRY_EVERY_S, since + self._restart_wait_s - now))

    def run(self, script: Lua, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """`script` on `keys` with `args`: by its SHA1, or loaded and run when Redis lacks it (after a restart)."""
        try:
            return self("EVALSHA", script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self("SCRIPT", "LOAD", script.text)
            return self("EVALSHA", script.sha, len(keys), *keys, *args)

    def _connection(self) -> _Connection:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():  # this thread's first command, or a forked child's
            local.connection = self._pool.connection_class(**self._pool.connection_kwargs)
            local.pid = os.getpid()
        connection: _Connection = local.connection
        try:  # nothing is sent before the connection is made: a refusal is a restart's
            connection.connect()
            try:  # as the pool checks a connection it hands out: one Redis closed (a restart) is made again
                if connection.can_read():
                    raise redis.exceptions.ConnectionError("the connection has data nobody asked for")
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                connection.disconnect()
                connection.connect()
        except redis.exceptions.ConnectionError as error:
            raise _Refused(error) from error
        return connection


class _Refused(Exception):
    """Redis did nothing with the commands: it refused the connection, or answered LOADING to each."""

    def __init__(self, error: redis.exceptions.ConnectionError) -> None:
        super().__init__(str(error))
        self.error = error


def _exchange(connection: _Connection, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """The commands' answers, an error Redis answered among them as it came. `_Refused` when Redis
    answered each with LOADING (a restart reading its data back): none of them ran."""
    connection.send_packed_command(connection.pack_commands(commands))
    answers: list[Any] = []
    loading: list[redis.exceptions.BusyLoadingError] = []
    try:
        for _ in commands:
            try:
                answers.append(connection.read_response(disconnect_on_error=False))
            except redis.exceptions.ResponseError as error:  # answered: the next answer follows
                answers.append(error)
            except redis.exceptions.BusyLoadingError as error:  # answered LOADING: not run
                answers.append(error)
                loading.append(error)
    except BaseException:
        connection.disconnect()  # an answer may still be on its way: never read as the next command's
        raise
    if loading and len(loading) == len(answers):
        raise _Refused(loading[0])
    if loading:  # the others ran, as Redis finished loading between them: none is sent again
        connection.disconnect()
        raise loading[0]
    return answers


_directs: weakref.WeakKeyDictionary[redis.Redis, Direct] = weakref.WeakKeyDictionary()
_directs_lock = threading.Lock()


def direct(client: redis.Redis) -> Direct:
    """`client`'s direct commands (one `Direct` per client, for as long as the client lives)."""
    found = _directs.get(client)
    if found is None:
        with _directs_lock:
            found = _directs.setdefault(client, Direct(client))
    return found
