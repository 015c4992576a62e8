"""Record ids that come from outside (query strings, forms): only those that can exist."""

from __future__ import annotations

MAX_ID = 2**31 - 1  # PostgreSQL's integer: a larger id cannot exist, and comparing with one is an error


def parse_id(raw: str | None) -> int | None:
    """A positive id that can exist, or None."""
    raw = raw or ""
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ID else None
