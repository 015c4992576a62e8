"""`sewamitra up`: the web app, RQ workers and the scheduler as child processes of one command,
restarted when one dies, stopped together on Ctrl-C or SIGTERM; and services started before them
(the embedded Redis), restarted when they die and stopped by their owner after the children."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol

from sewamitra.process import die_with_parent

log = logging.getLogger(__name__)
MAX_RESTARTS, RESTART_WINDOW_S = 5, 60.0  # more restarts than this in the window: give up


@dataclass
class Child:
    name: str
    # A callable gives each start its own arguments: an RQ worker needs a new name after a kill,
    # since RQ refuses a name still registered by the worker that died without saying so.
    args: list[str] | Callable[[], list[str]]
    module: str = "sewamitra"
    interpreter: tuple[str, ...] = ()  # the interpreter's own options, before -m
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self, environ: Mapping[str, str]) -> None:
        args = self.args() if callable(self.args) else self.args
        self.process = subprocess.Popen(  # noqa: S603 (our own modules, our own arguments)
            [sys.executable, *self.interpreter, "-m", self.module, *args],
            env=dict(environ),
            # A group of its own: Ctrl-C reaches `up` alone, which then sends each child one SIGTERM
            # (a second signal would make an RQ worker abandon the job it is running).
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def kill_leftovers(self) -> None:
        """What the child started and left behind when it was killed (gunicorn's workers, say) shares
        its process group: end them all."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGTERM)


class Service(Protocol):
    """Something the children need that is not one of them: kept running, not stopped here."""

    name: str

    def running(self) -> bool: ...

    def restart(self) -> None: ...


@dataclass
class Supervisor:
    children: list[Child]
    environ: Mapping[str, str]
    services: Sequence[Service] = ()
    stopping: bool = field(default=False, init=False)
    service_restarts: dict[str, list[float]] = field(default_factory=dict, init=False)

    def run(self, on_ready: Mapping[str, str] | None = None, ready_url: str | None = None) -> int:
        """Start every child, wait for them; return the exit status `up` should have."""
        previous = {sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for child in self.children:
                child.start(self.environ)
            if ready_url and not self._wait_ready(ready_url):
                return self.stop(1)
            if on_ready:
                for line in on_ready.values():
                    print(line, flush=True)
            while not self.stopping:
                if not all(self._keep_running(service) for service in self.services):
                    return self.stop(1)
                for child in self.children:
                    if child.exit_code is not None and not self._restart(child):
                        return self.stop(1)
                time.sleep(0.2)
            return self.stop(0)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _restart(self, child: Child) -> bool:
        """A child that died is started again; one that keeps dying stops the helpline."""
        now = time.monotonic()
        child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(child.restarts) > MAX_RESTARTS:
            log.error("%s keeps exiting (status %s); stopping the helpline", child.name, child.exit_code)
            return False
        log.warning("%s exited with status %s; starting it again", child.name, child.exit_code)
        child.kill_leftovers()
        child.start(self.environ)
        return True

    def _keep_running(self, service: Service) -> bool:
        """A service that died is started again (the children reconnect by themselves); False when it
        keeps dying or will not start."""
        if service.running():
            return True
        now = time.monotonic()
        restarts = [t for t in self.service_restarts.get(service.name, []) if now - t < RESTART_WINDOW_S] + [now]
        self.service_restarts[service.name] = restarts
        if len(restarts) > MAX_RESTARTS:
            log.error("%s keeps dying; stopping the helpline", service.name)
            return False
        log.warning("%s died; starting it again", service.name)
        try:
            service.restart()
        except Exception:
            log.exception("%s would not start again; stopping the helpline", service.name)
            return False
        return True

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True

    def _wait_ready(self, url: str, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            if any(child.exit_code is not None for child in self.children):
                return False
            try:
                with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (our own http health URL)
                    return True
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        return False

    def stop(self, status: int, timeout: float = 15) -> int:
        """SIGTERM every child (each finishes what it is doing), then SIGKILL the stragglers."""
        print("stopping: web, workers, scheduler …", flush=True)
        running = [c.process for c in self.children if c.process is not None and c.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for child in self.children:
            child.kill_leftovers()
        return status
