"""Text from outside (Twilio's forms, SMS bodies) as every database we run on can keep it."""

from __future__ import annotations


def storable(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, without NUL: PostgreSQL refuses a NUL in any text column,
    and a message must not be lost for one invisible character."""
    return text.replace("\x00", "")[:limit]
