"""A worker texts back "हाँ", "YES 1234567" or "DONE 1234567 4821"; a citizen texts "5": we read
what they meant, and anything we cannot read safely is UNKNOWN rather than a guess."""

from __future__ import annotations

import random
import time

import pytest

from dispatch import replies
from dispatch.replies import Reply, ReplyKind, parse, parse_rating

ACCEPT, DECLINE, DONE, RATING = ReplyKind.ACCEPT, ReplyKind.DECLINE, ReplyKind.DONE, ReplyKind.RATING
AVAILABLE, BUSY, HELP, UNKNOWN = ReplyKind.AVAILABLE, ReplyKind.BUSY, ReplyKind.HELP, ReplyKind.UNKNOWN


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # accept, in every spelling a worker uses
        ("1", Reply(ACCEPT)),
        ("YES", Reply(ACCEPT)),
        ("yes", Reply(ACCEPT)),
        ("Y", Reply(ACCEPT)),
        ("ok", Reply(ACCEPT)),
        ("Okay!", Reply(ACCEPT)),
        ("accept", Reply(ACCEPT)),
        ("हाँ", Reply(ACCEPT)),
        ("हां", Reply(ACCEPT)),
        ("हा", Reply(ACCEPT)),
        ("स्वीकार", Reply(ACCEPT)),  # the word our Hindi offer uses
        ("HAAN", Reply(ACCEPT)),
        ("han", Reply(ACCEPT)),
        ("JI", Reply(ACCEPT)),
        ("जी", Reply(ACCEPT)),
        ("haan ji", Reply(ACCEPT)),
        ("हाँ जी।", Reply(ACCEPT)),
        ("Yes sir", Reply(ACCEPT)),
        # accept, with the request number
        ("YES 1234567", Reply(ACCEPT, number="1234567")),
        ("1 1234567", Reply(ACCEPT, number="1234567")),
        ("yes1234567", Reply(ACCEPT, number="1234567")),
        ("ok, 1234567.", Reply(ACCEPT, number="1234567")),
        ("haan - 123 4567", Reply(ACCEPT, number="1234567")),
        ("हाँ १२३४५६७", Reply(ACCEPT, number="1234567")),
        ("1234567 yes", Reply(ACCEPT, number="1234567")),
        # decline
        ("2", Reply(DECLINE)),
        ("NO", Reply(DECLINE)),
        ("n", Reply(DECLINE)),
        ("No.", Reply(DECLINE)),
        ("decline", Reply(DECLINE)),
        ("नहीं", Reply(DECLINE)),
        ("नही", Reply(DECLINE)),
        ("मना", Reply(DECLINE)),
        ("NAHI", Reply(DECLINE)),
        ("nahin", Reply(DECLINE)),
        ("nhi", Reply(DECLINE)),
        ("nahi ji", Reply(DECLINE)),  # "ji" is politeness here, not a yes
        ("जी नहीं", Reply(DECLINE)),
        ("NO 1234567", Reply(DECLINE, number="1234567")),
        ("२ १२३४५६७", Reply(DECLINE, number="1234567")),
        # availability and help
        ("AVAILABLE", Reply(AVAILABLE)),
        ("free", Reply(AVAILABLE)),
        ("खाली", Reply(AVAILABLE)),
        ("khali", Reply(AVAILABLE)),
        ("BUSY", Reply(BUSY)),
        ("व्यस्त", Reply(BUSY)),
        ("HELP", Reply(HELP)),
        ("help?", Reply(HELP)),
        ("?", Reply(HELP)),
        ("  ??  ", Reply(HELP)),
        ("मदद", Reply(HELP)),
        # ratings that cannot be an answer to an offer
        ("3", Reply(RATING, rating=3)),
        ("5", Reply(RATING, rating=5)),
        ("५", Reply(RATING, rating=5)),
        ("1 star", Reply(RATING, rating=1)),
        ("2/5", Reply(RATING, rating=2)),
        ("4 stars!", Reply(RATING, rating=4)),
        # anything else, including every mixed or malformed answer
        ("", Reply(UNKNOWN)),
        ("   ", Reply(UNKNOWN)),
        ("!!!", Reply(UNKNOWN)),
        ("hello", Reply(UNKNOWN)),
        ("sir", Reply(UNKNOWN)),
        ("not available", Reply(UNKNOWN)),
        ("yes no", Reply(UNKNOWN)),
        ("1 2", Reply(UNKNOWN)),
        ("12", Reply(UNKNOWN)),
        ("6", Reply(UNKNOWN)),
        ("0", Reply(UNKNOWN)),
        ("1234567", Reply(UNKNOWN)),
        ("YES 123456", Reply(UNKNOWN)),  # a number with a key missing is not a number
        ("YES 12345678", Reply(UNKNOWN)),
        ("yes please come at 5", Reply(UNKNOWN)),
        ("y.e.s", Reply(UNKNOWN)),
    ],
)
def test_parse(body: str, expected: Reply) -> None:
    assert parse(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("DONE 1234567 4821", Reply(DONE, number="1234567", code="4821")),
        ("done 1234567 4821", Reply(DONE, number="1234567", code="4821")),
        ("D 1234567 4821", Reply(DONE, number="1234567", code="4821")),
        ("पूरा 1234567 4821", Reply(DONE, number="1234567", code="4821")),
        ("पूरा १२३४५६७ ४८२१", Reply(DONE, number="1234567", code="4821")),
        ("Done  1234567 ,  4821 ", Reply(DONE, number="1234567", code="4821")),
        ("DONE-1234567-4821", Reply(DONE, number="1234567", code="4821")),
        ("DONE1234567,4821.", Reply(DONE, number="1234567", code="4821")),
        ("DONE 1234567 CODE 4821", Reply(DONE, number="1234567", code="4821")),
        ("DONE 1234567 कोड 4821", Reply(DONE, number="1234567", code="4821")),
        ("DONE 4821 1234567", Reply(DONE, number="1234567", code="4821")),  # told apart by length
        ("DONE 12345674821", Reply(DONE, number="1234567", code="4821")),
        ("DONE 123 4567 4821", Reply(DONE, number="1234567", code="4821")),
        ("DONE 12 34 5 67", Reply(DONE, number="1234567")),
        ("DONE 48 21", Reply(DONE, code="4821")),
        # missing or malformed parts: still DONE, so the reply can say what is missing
        ("DONE", Reply(DONE)),
        ("d", Reply(DONE)),
        ("DONE 1234567", Reply(DONE, number="1234567")),
        ("DONE 4821", Reply(DONE, code="4821")),
        ("DONE 1234567 482", Reply(DONE, number="1234567")),
        ("DONE 123456 4821", Reply(DONE, code="4821")),
        ("DONE 99", Reply(DONE)),
        ("Done, thank you", Reply(DONE)),
    ],
)
def test_parse_done(body: str, expected: Reply) -> None:
    assert parse(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("1", 1),
        ("2", 2),
        ("5", 5),
        (" 4. ", 4),
        ("१", 1),
        ("५", 5),
        ("5 stars", 5),
        ("5 Star", 5),
        ("3stars", 3),
        ("5/5", 5),
        ("4 / 5", 4),
        ("४/५", 4),
        ("3 out of 5", 3),
        ("5 स्टार", 5),
        ("5 अंक", 5),  # our Hindi feedback SMS asks for "अंक"
        ("⭐⭐⭐⭐", 4),
        ("⭐️⭐️⭐️", 3),  # with the emoji variation selector phones add
        ("★", 1),
        ("０５", None),
        ("５", 5),  # a fullwidth digit
        ("0", None),
        ("6", None),
        ("10/10", None),
        ("5/10", None),
        ("3.5", None),
        ("45", None),
        ("⭐⭐⭐⭐⭐⭐", None),
        ("five", None),
        ("YES", None),
        ("", None),
    ],
)
def test_parse_rating(body: str, expected: int | None) -> None:
    assert parse_rating(body) == expected


def test_a_bare_1_or_2_is_an_answer_to_an_offer_and_also_a_rating() -> None:
    assert parse("1").kind is ACCEPT
    assert parse_rating("1") == 1
    assert parse("2").kind is DECLINE
    assert parse_rating("2") == 2
    assert parse("1 star").kind is RATING


@pytest.mark.parametrize(
    "body",
    [
        "YE\u200bS",  # zero-width space
        "\ufeffyes",  # byte-order mark
        "y\u200des",  # zero-width joiner
        "yes\u2060",  # word joiner
        "\u202eyes",  # right-to-left override
        "ＹＥＳ",  # fullwidth letters
        "\tYes\r\n",
        "हाँ\u200d",
    ],
)
def test_invisible_and_lookalike_characters_are_ignored(body: str) -> None:
    assert parse(body) == Reply(ACCEPT)


def test_every_keyword_survives_normalisation() -> None:
    words = [*replies.KEYWORDS, *replies.DONE_WORDS, *replies.POLITE, *replies.CANCEL_WORDS, *replies.RESCHEDULE_WORDS]
    words += list(replies.FILLER)
    assert [w for w in words if replies.normalise(w) != w] == []


CANCEL, RESCHEDULE = ReplyKind.CANCEL, ReplyKind.RESCHEDULE


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("CANCEL 1234567", Reply(CANCEL, number="1234567")),
        ("cancel", Reply(CANCEL)),
        ("Cancel 1234567 2", Reply(CANCEL, number="1234567", reason=2)),
        ("रद्द १२३४५६७ २", Reply(CANCEL, number="1234567", reason=2)),
        ("radd karo 1234567", Reply(CANCEL, number="1234567")),
        ("रद्द करो जी", Reply(CANCEL)),
        ("cancel 1234567 9", Reply(UNKNOWN)),  # no ninth reason: nothing is cancelled on a guess
        ("cancel 123", Reply(UNKNOWN)),
        ("cancel 1234567 7654321", Reply(UNKNOWN)),  # which one?
        ("cancel the plumber", Reply(UNKNOWN)),
        ("change time 1234567", Reply(RESCHEDULE, number="1234567")),
        ("समय बदलें 1234567", Reply(RESCHEDULE, number="1234567")),
        ("badlo", Reply(RESCHEDULE)),
        ("change 1234567 2", Reply(RESCHEDULE, number="1234567")),  # a reason is a cancel's only
        ("no cancel", Reply(UNKNOWN)),
    ],
)
def test_parse_a_citizens_change(body: str, expected: Reply) -> None:
    assert parse(body) == expected


def test_the_reply_kinds_are_strings_for_storage_and_logs() -> None:
    assert ReplyKind.ACCEPT == "accept"
    assert str(ReplyKind.UNKNOWN) == "unknown"


@pytest.mark.parametrize(
    "body",
    [
        "YES " * 400,
        "1" * 1600,
        "१" * 5000,
        "DONE " + "1234567 " * 200,
        "\x00" * 1600,
        "\ud800" * 50 + "yes",  # a lone surrogate
        "\ufdfa" * 1600,  # expands eighteen-fold under NFKC
        "?" * 10000,
        "्" * 1600,
        "{number}" * 200,
    ],
)
def test_hostile_bodies_never_raise(body: str) -> None:
    reply = parse(body)
    assert isinstance(reply, Reply)
    assert parse_rating(body) is None or 1 <= (parse_rating(body) or 0) <= 5


def test_a_long_body_is_unknown_not_read_to_the_end() -> None:
    assert parse("yes " * 13) == Reply(UNKNOWN)
    assert parse("yes" + " " * 1600 + "1234567") == Reply(ACCEPT)  # past 1600 characters nothing counts


def test_a_non_string_body_is_unknown() -> None:
    assert parse(None) == Reply(UNKNOWN)  # type: ignore[arg-type]
    assert parse_rating(5) is None  # type: ignore[arg-type]


def test_random_bodies_never_raise_and_stay_fast() -> None:
    rng = random.Random(155330)
    palette = "yesnoDONE 0123456789१२३४५६७८९०हाँनहींपूराजी?!.,-/⭐\u200b\u200d\x00\n\ud800😀"
    started = time.perf_counter()
    for _ in range(2000):
        body = "".join(rng.choice(palette) for _ in range(rng.randint(0, 1600)))
        reply = parse(body)
        assert reply.number is None or (len(reply.number) == 7 and reply.number.isdigit())
        assert reply.code is None or (len(reply.code) == 4 and reply.code.isdigit())
        assert reply.rating is None or 1 <= reply.rating <= 5
        assert parse_rating(body) in (None, 1, 2, 3, 4, 5)
    assert time.perf_counter() - started < 30
