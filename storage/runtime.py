"""The connections one process needs, built once from the settings and shared by its views, and
the clock they read the time from."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import redis
import sqlalchemy as sa

from core.clock import SYSTEM, Clock
from core.settings import Settings
from storage import redisdb
from storage.db import create_engine


@dataclass
class Runtime:
    settings: Settings
    clock: Clock = SYSTEM  # tests freeze it
    engine: sa.Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = create_engine(self.settings.sqlalchemy_url)

    @cached_property
    def redis(self) -> redis.Redis:
        return redisdb.connect(self.settings)

    @cached_property
    def commands(self) -> redisdb.Direct:
        """Redis commands sent on the calling thread's own connection, without the client's overhead:
        for the few a request sends on every turn (`redisdb.Direct`)."""
        return redisdb.direct(self.redis)
