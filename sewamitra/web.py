"""gunicorn serving the app: the production WSGI server, used by `serve` and `up`."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from core.settings import Settings

# Twilio waits 15 s for a webhook; a request still running after that is lost anyway.
REQUEST_TIMEOUT_S = 20


class _Gunicorn(BaseApplication):
    def __init__(self, load: Callable[[], Flask], options: dict[str, Any]) -> None:
        self.load_app = load
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        app = self.load_app()
        settle()
        return app


def options(*, host: str, port: int, workers: int) -> dict[str, Any]:
    """The gunicorn settings of `sewamitra serve`; the call benchmark's baseline runs under them too."""
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": 4,
        "timeout": REQUEST_TIMEOUT_S,
        "graceful_timeout": 10,
        "accesslog": "-",
        "forwarded_allow_ips": "127.0.0.1",
        "control_socket_disable": True,
    }


def run(load: Callable[[], Flask], *, host: str, port: int, workers: int) -> None:
    """Serve the app `load` builds (in each worker) under the settings of `sewamitra serve`."""
    _Gunicorn(load, options(host=host, port=port, workers=workers)).run()


def serve(settings: Settings, *, host: str, port: int, workers: int) -> None:
    run(lambda: _helpline(settings), host=host, port=port, workers=workers)


def _helpline(settings: Settings) -> Flask:
    from sewamitra.app import create_app

    return create_app(settings)


def settle() -> None:
    """What a process loaded at start (the PIN codes, the flows, the modules) lives as long as the
    process: keep it out of the garbage collector's full passes, each of which would otherwise walk
    it all (some 75 ms) while every thread of the process waits."""
    gc.collect()
    gc.freeze()
