"""What jobs run with: the settings and the connections, built once per worker process by the
composition root (`sewamitra worker`, or a test) and installed here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import redis
import sqlalchemy as sa

from storage.settings import Settings


class Telephony(Protocol):
    """Sends SMS and places calls (ivr.gateway implements it over Twilio's REST API)."""

    def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> str: ...

    def place_call(self, to: str, url: str, *, status_callback: str | None = None, timeout: int = 30) -> str: ...


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
