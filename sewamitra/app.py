"""The composition root: one Flask app from a frozen Settings, with every blueprint."""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, Map

from storage.models import MAX_ID
from storage.runtime import Runtime
from storage.settings import Settings, load_settings

log = logging.getLogger(__name__)


class RecordId(IntegerConverter):
    """A record's id in a URL: a positive 32-bit integer, so a huge one is a 404, not a database error."""

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, min=1, max=MAX_ID)


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
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops)  # type: ignore[method-assign]
    app.url_map.converters["id"] = RecordId
    app.extensions["sewamitra"] = Runtime(settings)
    if not settings.twilio.validate_signatures:
        log.warning(
            "!!! Twilio signature checks are OFF (twilio.validate_signatures=false): local development only !!!"
        )

    from agents import web as console
    from ivr import sms, voice
    from sewamitra import health

    voice.init_app(app, settings)
    app.register_blueprint(voice.bp)
    app.register_blueprint(sms.bp)
    app.register_blueprint(health.bp)
    console.init_app(app)
    return app
