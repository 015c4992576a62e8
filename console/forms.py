"""What console forms and query strings may hold: ids that can exist, one-line plain text."""

from __future__ import annotations

from core.ids import MAX_ID, parse_id
from core.text import is_control, plain

__all__ = ["MAX_ID", "NOTE_MAX", "has_nul", "is_control", "parse_id", "plain"]

NOTE_MAX = 500  # notes, reasons, address notes: the database's column width


def has_nul(values: object) -> bool:
    """A NUL in any value of a MultiDict: no console field has a use for one (and PostgreSQL refuses it)."""
    lists = getattr(values, "lists", None)
    return lists is not None and any(
        "\x00" in key or any("\x00" in v for v in vs if isinstance(v, str)) for key, vs in lists()
    )
