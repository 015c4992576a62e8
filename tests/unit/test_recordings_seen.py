"""The recordings' directories are looked at when asked (a call's first request) and at most once a
second otherwise: a recording added is played from the next call, and within a second on any call."""

from __future__ import annotations

import os
from pathlib import Path

from ivr.voice import RecordingsSeen


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def touched(directory: Path, seconds: int) -> None:
    """The directory's time moved on, as a file added to it moves it (directory times can be coarse)."""
    st = directory.stat()
    os.utime(directory, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


def test_a_recording_added_is_seen_within_a_second_or_at_once_when_looked_for(tmp_path: Path) -> None:
    hindi = tmp_path / "hi"
    hindi.mkdir()
    clock = Clock()
    recordings = RecordingsSeen((str(tmp_path), str(hindi), str(tmp_path / "en")), now=clock)
    first = recordings.changed()
    assert first[2] == -1  # no English recordings at all

    touched(hindi, 5)
    clock.now += 0.5
    assert recordings.changed() == first  # looked at half a second ago: not again

    clock.now += 0.5
    second = recordings.changed()
    assert second != first
    assert second[1] == hindi.stat().st_mtime_ns

    touched(hindi, 5)
    assert recordings.look() != second  # a call's first request looks at once
    assert recordings.changed() == recordings.look()
