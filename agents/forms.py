"""What console forms and query strings may hold: ids that can exist, one-line plain text."""

from __future__ import annotations

from storage.ids import MAX_ID, parse_id

__all__ = ["MAX_ID", "NOTE_MAX", "has_nul", "is_control", "parse_id", "plain"]
NOTE_MAX = 500  # notes, reasons, address notes: the database's column width


def plain(text: str, limit: int) -> str:
    """One line of printable text: whitespace tidied, control characters (NUL too) dropped, cut to `limit`."""
    return " ".join("".join(char for char in text if not is_control(char)).split())[:limit]


def is_control(char: str) -> bool:
    return ord(char) < 32 or ord(char) == 127


def has_nul(values: object) -> bool:
    """A NUL in any value of a MultiDict: no console field has a use for one (and PostgreSQL refuses it)."""
    lists = getattr(values, "lists", None)
    return lists is not None and any("\x00" in key or any("\x00" in v for v in vs if isinstance(v, str))
                                     for key, vs in lists())  # fmt: skip
