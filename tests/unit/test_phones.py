"""A number is read as phonenumbers reads it, however it is read."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from core import phones


def _random_numbers(rng: random.Random) -> list[str]:
    digits = "0123456789"
    made = ["+91" + rng.choice("123456789") + "".join(rng.choices(digits, k=9)) for _ in range(3000)]
    made += [
        "+91" + "".join(rng.choices(digits, k=rng.randint(8, 12))) for _ in range(1000)
    ]  # too short, long, 0 first
    made += ["+9" + "".join(rng.choices(digits, k=11)) for _ in range(300)]  # another country, or none
    return made


def test_an_indian_number_in_e164_is_read_as_phonenumbers_reads_it() -> None:
    for raw in _random_numbers(random.Random(20261207)):
        try:
            theirs = phonenumbers.parse(raw, "IN")
        except phonenumbers.NumberParseException:
            with pytest.raises(phonenumbers.NumberParseException):
                phones._parsed(raw, "IN")
            continue
        assert phones._parsed(raw, "IN") == theirs, raw


@pytest.mark.parametrize(
    ("raw", "e164", "mobile"),
    [
        ("+919812345678", "+919812345678", "+919812345678"),
        (" +919812345678 ", "+919812345678", "+919812345678"),
        ("+915224567890", "+915224567890", None),  # a Lucknow landline: no SMS
        ("+910812345678", None, None),  # a trunk 0 after the country code
        ("+91981234567", None, None),  # a digit short
        ("+91९८१२३४५६७८", "+919812345678", "+919812345678"),  # Devanagari digits: phonenumbers' own reading
        ("09812345678", "+919812345678", "+919812345678"),
        ("+15005550006", "+15005550006", None),
    ],
)
def test_numbers_as_the_helpline_keeps_them(raw: str, e164: str | None, mobile: str | None) -> None:
    assert phones.to_e164.__wrapped__(raw) == e164
    assert phones.indian_mobile.__wrapped__(raw) == mobile
