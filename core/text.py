"""Text from outside (Twilio's forms, SMS bodies, console forms, API bodies) as every database we
run on can keep it: printable, tidied, and within the column it goes to."""

from __future__ import annotations


def plain(text: str, limit: int) -> str:
    """One line of printable text: whitespace tidied, control characters (NUL too) dropped, cut to `limit`."""
    return " ".join("".join(char for char in text if not is_control(char)).split())[:limit]


def lines(text: str) -> str:
    """Printable text that may run over several lines: line breaks kept, other control characters dropped."""
    kept = (plain(line, len(line)) for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return "\n".join(kept).strip()


def is_control(char: str) -> bool:
    return ord(char) < 32 or ord(char) == 127


def storable(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, without NUL: PostgreSQL refuses a NUL in any text column,
    and a message must not be lost for one invisible character."""
    return text.replace("\x00", "")[:limit]
