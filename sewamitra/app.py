"""The composition root: one Flask app from a frozen Settings, with every blueprint."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property

import redis
import sqlalchemy as sa
from flask import Flask

from storage import redisdb
from storage.db import create_engine
from storage.settings import Settings, load_settings

log = logging.getLogger(__name__)


@dataclass
class Helpline:
    """What every view needs: the settings and the connections built from them, once."""

    settings: Settings
    engine: sa.Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = create_engine(self.settings.sqlalchemy_url)

    @cached_property
    def redis(self) -> redis.Redis:
        return redisdb.connect(self.settings)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
    )
    app.extensions["sewamitra"] = Helpline(settings)
    if not settings.twilio.validate_signatures:
        log.warning(
            "!!! Twilio signature checks are OFF (twilio.validate_signatures=false): local development only !!!"
        )

    from ivr.voice import bp as voice_bp
    from sewamitra.health import bp as health_bp

    app.register_blueprint(voice_bp)
    app.register_blueprint(health_bp)
    return app
