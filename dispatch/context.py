"""What jobs run with: the settings, the connections and the clock, built once per worker process
by the composition root (`sewamitra worker`, or a test) and installed here."""

from __future__ import annotations

from dataclasses import dataclass

import redis
import sqlalchemy as sa

from core.clock import SYSTEM, Clock
from core.settings import Settings
from telephony.port import Telephony


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    engine: sa.Engine
    redis: redis.Redis
    telephony: Telephony
    clock: Clock = SYSTEM  # tests freeze it


_installed: JobContext | None = None


def install(context: JobContext | None) -> None:
    global _installed
    _installed = context


def current() -> JobContext:
    if _installed is None:
        raise RuntimeError("no job context installed: jobs run under `sewamitra worker`")
    return _installed
