"""Request numbers a caller can hear and key in: six random digits and a Verhoeff check digit.

The check digit catches every single wrong key and every swap of two neighbouring keys, so a
mistyped number is told apart from someone else's request.
"""

from __future__ import annotations

import secrets

_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)
LENGTH = 7


def check_digit(digits: str) -> str:
    c = 0
    for i, d in enumerate(reversed(digits)):
        c = _D[c][_P[(i + 1) % 8][int(d)]]
    return str(_INV[c])


def is_valid(number: str) -> bool:
    """Whether `number` could be a request number: 7 digits, no leading 0, check digit right."""
    if len(number) != LENGTH or not number.isdigit() or number[0] == "0":
        return False
    return check_digit(number[:-1]) == number[-1]


def new_request_number() -> str:
    body = str(secrets.randbelow(900_000) + 100_000)
    return body + check_digit(body)


def completion_code() -> str:
    """The 4-digit code the citizen gives the worker when the job is done."""
    return f"{secrets.randbelow(10_000):04d}"
