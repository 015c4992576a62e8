"""Text from outside (Twilio's forms, SMS bodies, console forms, API bodies) as every database we
run on can keep it: printable, tidied, and within the column it goes to."""

from __future__ import annotations

# Embeddings, overrides and isolates: a text holding one can show agents and citizens other text
# ("Asha \u202egnp.exe" reads "Asha exe.png"). Refused wherever a name or an address comes in.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
REORDERS = "contains characters that reverse or reorder the text"


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


def reorders(text: str) -> bool:
    """Whether `text` holds a character that reverses or reorders how the text around it is shown."""
    return any(char in BIDI_CONTROLS for char in text)
