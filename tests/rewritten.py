"""The test modules' assertions rewritten once for a split run, before pytest-xdist starts its workers.

pytest rewrites a test module's `assert`s when it first imports it, and keeps the code it made
beside the module (`__pycache__/*-pytest-*.pyc`) for later imports. On a fresh clone there is none
yet, so each of `make test`'s six workers rewrote every test module at the same time. The controller
rewrites them here instead, on every core, and the workers read what it wrote, as they read what an
earlier run wrote.

This reaches into pytest's rewriting (`_pytest.assertion.rewrite`; pyproject.toml pins pytest). If
those names change, nothing is rewritten ahead, and each worker rewrites as before."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

try:
    from _pytest.assertion import assertstate_key
    from _pytest.assertion.rewrite import PYC_TAIL, _read_pyc, _rewrite_test, _write_pyc, get_cache_dir

    KNOWN = True
except ImportError:  # another pytest: the workers rewrite as they import
    KNOWN = False

TESTS = Path(__file__).parent
_config: pytest.Config | None = None  # the controller's, for the processes it forks


def ahead(config: pytest.Config, root: Path = TESTS) -> int:
    """Rewrite and keep every test module and conftest under `root` with no rewritten code yet; how many."""
    global _config
    if not KNOWN or sys.dont_write_bytecode or config.getoption("assertmode") != "rewrite":
        return 0  # pytest itself would not keep what it rewrote
    files = [str(path) for path in sorted(root.rglob("*.py")) if _rewritten(path) and _stale(path)]
    if not files:
        return 0
    processes = min(os.cpu_count() or 1, len(files))
    _config = config
    pool = multiprocessing.get_context("fork").Pool(processes)  # forked: each has the controller's config
    try:
        return sum(pool.map(_rewrite, [files[k::processes] for k in range(processes)]))
    finally:
        # Ended as the workers end by themselves, not killed (the pool's `with` terminates them): a worker
        # killed while it holds the task queue's lock, or the pool's own hold of that lock while it
        # kills them, left another worker waiting on it for ever, and the run with it (seen once, in a
        # run of this module's tests in a pytest-xdist worker).
        pool.close()
        pool.join()
        _config = None


def _rewritten(path: Path) -> bool:
    """What pytest rewrites of ours (`ahead` looks at `*.py` only): the conftests and the test modules
    (`python_files`' default)."""
    return path.name == "conftest.py" or path.name.startswith("test_")


def _stale(path: Path) -> bool:
    """No rewritten code is kept for the module's source as it is now."""
    return _read_pyc(path, _pyc(path)) is None


def _pyc(path: Path) -> Path:
    return get_cache_dir(path) / (path.name[:-3] + PYC_TAIL)


def _rewrite(files: Sequence[str]) -> int:
    """Rewrite `files` and write their code where, and as, pytest's import would; how many were."""
    assert _config is not None
    state = _config.stash[assertstate_key]
    written = 0
    for name in files:
        path = Path(name)
        try:
            source_stat, code = _rewrite_test(path, _config)
        except SyntaxError:  # left for the workers' import, which reports it as the module's collection error
            continue
        pyc = _pyc(path)
        pyc.parent.mkdir(exist_ok=True)
        written += _write_pyc(state, code, source_stat, pyc)
    return written
