"""The log every process writes: one line a record, no phone number in full and no token or password,
whoever logged it (our code, RQ's tracebacks, a database's error detail, gunicorn's access log)."""

from __future__ import annotations

import logging
import re
from typing import TextIO

from core.phones import mask, mask_all
from storage.tokens import PREFIX

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
HIDDEN = "[hidden]"

# A URL in a log line carries its query as sent, or encoded once or twice more inside another
# parameter (`next=/console/requests%3Fq%3D%252B91…`): each piece below is matched in all three.
_PLUS = r"(?:\+|%2[bB]|%252[bB])"
_GAP = r"(?:[ \-+]|%20|%2520)?"  # between a number's digits: a space, a dash, or a space as a form encodes it
_EQUALS = r"(?:=|%3[dD]|%253[dD])"
_AMPERSAND = r"(?:&|%26|%2526)"
_START = r"(?:(?<![\w+%])|(?<=%[0-9A-Fa-f]{2}))"  # not inside a word, but right after an escape is a start
_NUMBER = re.compile(rf"{_START}{_PLUS}[1-9](?:{_GAP}\d){{9,14}}(?!\d)|{_START}[6-9]\d{{4}}{_GAP}\d{{5}}(?!\d)")
_SECRET_PARAMETER = re.compile(
    rf"(?i)(?:(?<![a-z0-9_])|(?<=%[0-9a-f]{{2}}))((?:api_?key|access_token|auth_token|token|password|passwd|secret){_EQUALS})"
    r"[^\s\"'&%]*(?:%(?!26|2526)[^\s\"'&%]*)*"  # up to an ampersand, plain or encoded (a long value read fast)
)
_TOKEN = re.compile(re.escape(PREFIX) + r"[A-Za-z0-9_\-]{4,}")
_ESCAPED_PLUS = re.compile(r"%(?:25)?2[bB]")
_ESCAPED_SPACE = re.compile(r"%(?:25)?20")


# What each pass needs to find anything, looked for first: most lines (an access log's) need none of
# the passes, whose look-behinds cost more than these scans (timeit, a request line with no token:
# 24 µs for the four passes, 3 µs for the scans).
# A secret's parameter name, in any case: `_SECRET_PARAMETER` ignores case as `str.casefold` folds it
# (each character it matches to one of these letters folds to that letter).
_SECRET_WORDS = ("key", "token", "passw", "secret")
# The start of any number `_NUMBER` or `mask_all` masks: a plus sign, plain or encoded, and a digit;
# or five digits, the first 6-9.
_NUMBER_START = re.compile(rf"{_PLUS}[1-9]|[6-9]\d{{4}}")


def scrub(text: str) -> str:
    """`text` with every phone number masked (written plainly or URL-encoded) and every API token,
    password and key hidden."""
    folded = text.casefold()
    if any(word in folded for word in _SECRET_WORDS):
        text = _SECRET_PARAMETER.sub(lambda found: found.group(1) + HIDDEN, text)
    if PREFIX in text:
        text = _TOKEN.sub(PREFIX + HIDDEN, text)
    if _NUMBER_START.search(text) is None:
        return text
    return _NUMBER.sub(_masked, mask_all(text))


def _masked(found: re.Match[str]) -> str:
    written = _ESCAPED_SPACE.sub(" ", _ESCAPED_PLUS.sub("+", found.group()))
    digits = "".join(char for char in written if char.isdigit())
    return mask("+" + digits if written.startswith("+") else "+91" + digits)


class PhoneMasking(logging.Formatter):
    """Formats a record, traceback included, scrubbed of numbers and secrets."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class Scrubbing(logging.Formatter):
    """Another formatter's lines (gunicorn's), scrubbed of numbers and secrets."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return scrub(self.inner.format(record))


def handler(stream: TextIO | None = None) -> logging.Handler:
    """A handler for `stream` (stderr by default) that writes masked lines."""
    written = logging.StreamHandler(stream)
    written.setFormatter(PhoneMasking(FORMAT))
    return written


def configure(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, handlers=[handler()])
