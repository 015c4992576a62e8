"""gunicorn serving the app: the production WSGI server, used by `serve` and `up`."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from core.settings import Settings
from sewamitra import logs
from sewamitra.process import settle

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

# Twilio waits 15 s for a webhook; a request still running after that is lost anyway.
REQUEST_TIMEOUT_S = 20
# glibc's mallopt() parameter for the most arenas malloc keeps (malloc.h).
_M_ARENA_MAX = -8


class _Gunicorn(BaseApplication):
    def __init__(self, load: Callable[[], WSGIApplication], options: dict[str, Any]) -> None:
        self.load_app = load
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> WSGIApplication:
        app = self.load_app()
        settle()
        return app


class ScrubbedLog(glogging.Logger):
    """gunicorn's access and error logs, scrubbed like every other line: a request line, its
    referrer and its user agent carry whatever a client put in them (numbers, tokens)."""

    def _set_handler(
        self, log: logging.Logger, output: str | None, fmt: logging.Formatter, stream: TextIO | None = None
    ) -> None:
        super()._set_handler(log, output, logs.Scrubbing(fmt), stream)

    def _get_user(self, environ: dict[str, Any]) -> str | None:
        return None  # a Basic authorization's user name is not ours to log


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
        "logger_class": ScrubbedLog,
        "forwarded_allow_ips": "127.0.0.1",
        "control_socket_disable": True,
    }


def run(
    load: Callable[[], WSGIApplication],
    *,
    host: str,
    port: int,
    workers: int,
    preload: Callable[[], object] = lambda: None,
) -> None:
    """Serve the app `load` builds (in each worker) under the settings of `sewamitra serve`, with
    what `preload` imports loaded once, in the master, before it forks the workers."""
    _without_docstrings()
    _one_malloc_arena()
    preload()
    _Gunicorn(load, options(host=host, port=port, workers=workers)).run()


def serve(settings: Settings, *, host: str, port: int, workers: int) -> None:
    run(lambda: _helpline(settings), host=host, port=port, workers=workers, preload=_webhook_modules)


def _webhook_modules() -> None:
    """The modules of the webhooks' app: each worker is forked with them loaded and builds its app
    in about a quarter of the CPU (0.1 s against 0.4 s). The console's and the API's stay out, loaded by
    a worker at its first request for them (`app.Helpline`). Frozen out of the collector's way, as
    a worker's own start-up heap is."""
    import sewamitra.app  # noqa: F401 (loaded, not used here)

    settle()


def _helpline(settings: Settings) -> WSGIApplication:
    """The webhooks' app at start, the console's and API's at their first request (`app.Helpline`)."""
    from sewamitra.app import Helpline

    return Helpline(settings, built=settle)


def _without_docstrings() -> None:
    """Serve from an interpreter started with -OO: the modules a web worker loads then keep no
    docstrings, some 6 MB of its peak (`sewamitra bench calls`, docs/reliability.md). This process
    becomes one, same pid and arguments, before it starts anything. -OO also drops the asserts, which
    in the helpline only narrow types and state what its own code rules out: a check on anything
    from outside is an `if`, and the tests run every assert."""
    if sys.flags.optimize < 2 and sys.executable:
        os.execv(sys.executable, [sys.executable, "-OO", *sys.orig_argv[1:]])  # noqa: S606 (this interpreter, these arguments)


def _one_malloc_arena() -> None:
    """glibc gives each thread that allocates an arena of its own (up to eight a core): a worker's four
    threads held some 3 MB more in them than in one (`sewamitra bench calls --short`, 108 -> 105 MB).
    The GIL serialises Python's allocations anyway. Set before gunicorn forks, so every worker has it;
    nothing where the C library has no mallopt (macOS)."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, 1)
