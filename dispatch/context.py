"""What jobs run with: the settings and the connections, built once per worker process by the
composition root (`sewamitra worker`, or a test) and installed here."""

from __future__ import annotations

from dataclasses import dataclass

import redis
import sqlalchemy as sa

from core.settings import Settings
from telephony.port import Telephony


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    engine: sa.Engine
    redis: redis.Redis
    telephony: Telephony


_installed: JobContext | None = None


def install(context: JobContext | None) -> None:
    global _installed
    _installed = context


def current() -> JobContext:
    if _installed is None:
        raise RuntimeError("no job context installed: jobs run under `sewamitra worker`")
    return _installed
