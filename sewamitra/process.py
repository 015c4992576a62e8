"""Processes: children that never outlive the process that started them, and a long-running
process's start-up heap kept out of the garbage collector's way."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux (`preexec_fn`): the child gets SIGTERM when its parent dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def settle() -> None:
    """What a process loaded at start (the PIN codes, the flows, the modules) lives as long as the
    process: keep it out of the garbage collector's full passes, each of which would otherwise walk
    it all (some 75 ms in a web worker) while every thread of the process waits."""
    gc.collect()
    gc.freeze()
