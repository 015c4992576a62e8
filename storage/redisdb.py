"""Redis: the one connection factory every process uses."""

from __future__ import annotations

import redis

from core.exceptions import SewamitraError
from core.settings import Settings

KEY_PREFIX = "sewamitra:"


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
