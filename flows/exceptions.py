"""Errors of the flow engine."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class FlowError(Exception):
    """A flow file that must not run: every problem found, each naming where it is."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__(f"{path}:\n" + "\n".join(f"  - {p}" for p in self.problems))
