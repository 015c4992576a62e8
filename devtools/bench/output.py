"""What every benchmark prints: progress lines while it runs, then a heading naming the machine and
the parameters, and markdown tables."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from typing import TextIO

import redis
import sqlalchemy as sa


def say(out: TextIO, line: str) -> None:
    """A progress line, shown at once: a benchmark runs for minutes."""
    out.write(f"… {line}\n")
    out.flush()


def describe_machine(engine: sa.Engine, connection: redis.Redis | None) -> dict[str, str]:
    """What the figures were measured on: they mean nothing without it. Redis, when the bench uses it."""
    with engine.connect() as db:
        postgres = str(db.execute(sa.text("SHOW server_version")).scalar_one())
    machine = {
        "CPUs (nproc)": str(len(os.sched_getaffinity(0))),
        "CPU": _cpu_model(),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "Python": platform.python_version(),
        "PostgreSQL": postgres,
    }
    if connection is not None:
        machine["Redis"] = str(connection.info("server")["redis_version"])
    return machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    except OSError:
        models = []
    return models[0] if models else platform.processor() or "unknown"


def heading(title: str, machine: Mapping[str, str], parameters: Mapping[str, object]) -> list[str]:
    """The report's title, the machine as a list, and the parameters on one line."""
    listed = [f"- {name}: {value}" for name, value in machine.items()]
    return ["", f"# {title}", "", *listed, "- parameters: " + ", ".join(f"{k}={v}" for k, v in parameters.items())]


def table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """A markdown table, its columns padded to their widest cell; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def render(row: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"

    return [render(rows[0]), "|" + "|".join("-" * (width + 2) for width in widths) + "|", *map(render, rows[1:])]
