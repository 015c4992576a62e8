"""The one clock the helpline reads "now" from: the system's in production, a frozen one in tests.

Jobs get it from their context (`dispatch.context.JobContext.clock`), views from the process's
`storage.runtime.Runtime.clock`; the domain takes the moment as an argument. Durations measured
within one process use `time.monotonic`, not this clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The time now, aware and in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that stands still until a test sets or moves it."""

    def __init__(self, at: datetime) -> None:
        self._at = _utc(at)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = _utc(at)

    def advance(self, by: timedelta) -> datetime:
        self._at += by
        return self._at


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("a naive datetime cannot be a moment: give it a time zone")
    return at.astimezone(UTC)


SYSTEM = SystemClock()
