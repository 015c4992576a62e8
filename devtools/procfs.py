"""What Linux's /proc says about the processes the tools started: whether they run, their children,
CPU time, peak memory and niceness."""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
UTIME, STIME = 11, 12  # user and kernel clock ticks: stat fields 14 and 15, counted after the command name


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces)."""
    return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (gunicorn's workers, for its master)."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry.name))
        except (OSError, IndexError):
            continue  # gone while we looked
        if int(fields[1]) == pid and _running(fields):
            found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    """Whether `pid` still runs (an exited child not yet reaped by its parent does not)."""
    try:
        return _running(_stat_fields(pid))
    except (OSError, IndexError):
        return False


def _running(fields: list[str]) -> bool:
    return fields[0] not in ("Z", "X")  # zombie, dead


def cpu_seconds(pid: int) -> float:
    """User and system CPU time `pid` has used so far; 0 once it is gone."""
    return cpu_times(pid)[0]


def cpu_times(pid: int) -> tuple[float, float]:
    """`cpu_seconds`, and the part of it spent in the kernel on `pid`'s behalf (its system calls:
    sockets, futexes, files), from one reading; 0 once it is gone."""
    try:
        fields = _stat_fields(pid)
    except (OSError, IndexError):
        return 0.0, 0.0
    user, system = int(fields[UTIME]), int(fields[STIME])
    return (user + system) / TICKS_PER_S, system / TICKS_PER_S


def niceness(pid: int) -> int | None:
    """`pid`'s nice value (-20 to 19); None once it is gone."""
    try:
        return int(_stat_fields(pid)[16])  # field 19 of stat, the 17th after the command name
    except (OSError, IndexError):
        return None


def peak_rss_kb(pid: int) -> int:
    """VmHWM: the most resident memory `pid` has had (since start, or since `reset_peak_rss`)."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss(pid: int) -> bool:
    """Start VmHWM again from the current RSS (Linux 4.0+), so a phase's peak is its own."""
    try:
        (PROC / str(pid) / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy (not idle or waiting on disk) so far."""
    values = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:9]]
    idle, iowait = values[3], values[4]
    return (sum(values) - idle - iowait) / TICKS_PER_S


def matching(fragment: str) -> list[int]:
    """The live processes whose command line holds `fragment` (PostgreSQL names the database its
    backend serves in its process title)."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in title:
            found.append(int(entry.name))
    return found


def command_line(pid: int) -> list[str]:
    """The arguments `pid` was started with; empty once it is gone."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
