"""Phone numbers: E.164 via phonenumbers, Indian mobiles checked, masked for display."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberType

# In free text (a log line, a provider's error message): a number in E.164, written with or
# without spaces or dashes between its digits, or a bare 10-digit Indian mobile.
_IN_TEXT = re.compile(r"(?<![\w+])\+[1-9](?:[ -]?\d){9,14}(?!\d)|(?<![\w+])[6-9]\d{4}[ -]?\d{5}(?!\d)")
PSEUDONYM_MARK = "#"  # an erased number's keyed hash starts so: no phone number does
PSEUDONYM_LENGTH = 20  # fits every column that held the number (76 bits of HMAC-SHA256)
WITHHELD = frozenset({"", "anonymous", "unknown", "restricted", "private", "+266696687"})
# An Indian number as a platform writes it: "+91" and ten digits, the first not 0 (no trunk prefix).
_INDIAN_E164 = re.compile(r"\+91[1-9][0-9]{9}")


def is_withheld(raw: str | None) -> bool:
    return (raw or "").strip().lower() in WITHHELD


@functools.lru_cache(maxsize=4096)
def to_e164(raw: str, region: str = "IN") -> str | None:
    """The number in E.164, or None when it is not a valid number. Remembered: every turn of a call
    asks again for the same caller."""
    try:
        number = _parsed(raw.strip(), region)
    except NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@functools.lru_cache(maxsize=4096)
def indian_mobile(raw: str) -> str | None:
    """The E.164 form of an Indian mobile number (the only kind that can get SMS), else None.
    Remembered: a booking asks it of the same caller three times."""
    try:
        number = _parsed(raw.strip(), "IN")
    except NumberParseException:
        return None
    if number.country_code != 91 or not phonenumbers.is_valid_number(number):
        return None
    if phonenumbers.number_type(number) not in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parsed(text: str, region: str) -> PhoneNumber:
    """`phonenumbers.parse(text, region)`; an Indian number in E.164, as every call and SMS brings its
    caller's, made straight from its digits, as parse makes it (`tests/unit/test_phones.py`): parse
    took 35 µs of the 58 a new caller's number cost (`timeit`, 2026-12-07)."""
    if _INDIAN_E164.fullmatch(text):
        return PhoneNumber(country_code=91, national_number=int(text[3:]))
    return phonenumbers.parse(text, region)


def pseudonym(e164: str, key: str) -> str:
    """What an erased number becomes: a keyed hash, the same for the same number, so a caller who
    rings again is still known as a repeat caller while the number itself is gone."""
    digest = hmac.new(key.encode(), e164.encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_MARK + digest[: PSEUDONYM_LENGTH - 1]


def is_pseudonym(value: str | None) -> bool:
    return bool(value) and str(value).startswith(PSEUDONYM_MARK)


def mask(e164: str | None) -> str:
    """'+919876543210' -> '+91 98xxxxx210'."""
    if is_pseudonym(e164):
        return "erased"
    if not e164 or len(e164) < 8:
        return "withheld"
    return f"{e164[:3]} {e164[3:5]}{'x' * (len(e164) - 8)}{e164[-3:]}"


def mask_all(text: str) -> str:
    """`text` with every phone number in it masked: for log lines and messages from elsewhere."""
    return _IN_TEXT.sub(_masked, text)


def _masked(found: re.Match[str]) -> str:
    digits = "".join(char for char in found.group() if char.isdigit())
    return mask("+" + digits if found.group().startswith("+") else "+91" + digits)
