"""The log every process writes: one line a record, and no phone number in full, whoever logged it
(our code, RQ's tracebacks, a database's error detail)."""

from __future__ import annotations

import logging
from typing import TextIO

from core.phones import mask_all

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class PhoneMasking(logging.Formatter):
    """Formats a record, traceback included, with every phone number in it masked."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_all(super().format(record))


def handler(stream: TextIO | None = None) -> logging.Handler:
    """A handler for `stream` (stderr by default) that writes masked lines."""
    written = logging.StreamHandler(stream)
    written.setFormatter(PhoneMasking(FORMAT))
    return written


def configure(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, handlers=[handler()])
