"""What a worker or a citizen meant by an SMS reply, typed in Hindi, Hinglish or English.

Pure and forgiving of how people text (case, punctuation, Devanagari digits, "haan ji"), but
strict where a wrong guess would commit someone: anything mixed or unexpected is UNKNOWN.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

MAX_BODY = 1600  # Twilio's limit for an inbound body; anything past it is not read
MAX_TOKENS = 12  # a real reply is a few words; a long text is a message for a person
NUMBER_DIGITS = 7
CODE_DIGITS = 4


class ReplyKind(StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"
    DONE = "done"
    RATING = "rating"
    AVAILABLE = "available"
    BUSY = "busy"
    HELP = "help"
    ON_THE_WAY = "on_the_way"  # the worker's day: see parse_visit
    ARRIVED = "arrived"
    START = "start"
    CANCEL = "cancel"  # a citizen calls their request off: CANCEL 1234567 [reason digit]
    RESCHEDULE = "reschedule"  # a citizen asks for another time: answered with the number to call
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Reply:
    kind: ReplyKind
    number: str | None = None  # the 7-digit request number, when the sender gave one
    code: str | None = None  # the 4-digit completion code of a DONE, or the start code of a START
    rating: int | None = None  # 1-5, for RATING
    minutes: int | None = None  # the ETA of an ON_THE_WAY
    reason: int | None = None  # a CANCEL's reason, by its place in `changes.reasons` (1-6)


# Our own templates say "स्वीकार: 1, मना: 2" and "Reply 1 to accept, 2 to decline".
KEYWORDS: dict[str, ReplyKind] = {
    **dict.fromkeys(
        ["yes", "y", "ok", "okay", "accept", "haan", "han", "haa", "हाँ", "हां", "हा", "स्वीकार"], ReplyKind.ACCEPT
    ),
    **dict.fromkeys(
        ["no", "n", "decline", "nahi", "nahin", "nahee", "nhi", "नहीं", "नही", "नहि", "मना"], ReplyKind.DECLINE
    ),
    **dict.fromkeys(["available", "free", "khali", "खाली"], ReplyKind.AVAILABLE),
    **dict.fromkeys(["busy", "vyast", "व्यस्त"], ReplyKind.BUSY),
    **dict.fromkeys(["help", "madad", "मदद"], ReplyKind.HELP),
}
DIGIT_KEYWORDS = {"1": ReplyKind.ACCEPT, "2": ReplyKind.DECLINE}
DONE_WORDS = frozenset(["done", "d", "पूरा", "pura", "poora"])
# A citizen's change of their own request: "CANCEL 1234567", "रद्द 1234567 2", "radd karo 1234567".
CANCEL_WORDS = frozenset(["cancel", "cancelled", "radd", "rad", "radh", "रद्द", "रद", "कैंसल", "केंसल"])
RESCHEDULE_WORDS = frozenset(
    ["reschedule", "change", "time", "move", "samay", "badlo", "badle", "समय", "बदलें", "बदलो", "बदलना"]
)
FILLER = frozenset(["karo", "kare", "karen", "करो", "करें", "करे", "request", "anurodh", "अनुरोध", "please", "pls", "my"])
# Politeness alone ("ji") means yes; next to another word it only softens it ("nahi ji").
POLITE = frozenset(["ji", "जी", "sir", "सर"])
ALONE_MEANS_YES = frozenset(["ji", "जी"])

_DEVANAGARI_DIGITS = str.maketrans("०१२३४५६७८९", "0123456789")
_VARIATION_SELECTORS = frozenset(chr(c) for c in range(0xFE00, 0xFE10))  # "⭐️" is "⭐" + U+FE0F
_RATING = re.compile(r"([1-5])(?:\s*(?:/\s*5|out of 5|stars?|स्टार|अंक))?")
_STARS = frozenset("⭐★")


def parse(body: str) -> Reply:
    """The sender's intent; bare 1 and 2 answer an offer, so a citizen's rating needs `parse_rating`."""
    text = normalise(body)
    rating = _rating(text)
    if rating is not None and _trim(text) not in DIGIT_KEYWORDS:
        return Reply(ReplyKind.RATING, rating=rating)
    tokens = list(_tokens(text))
    if not tokens:
        return Reply(ReplyKind.HELP if "?" in text else ReplyKind.UNKNOWN)
    if len(tokens) > MAX_TOKENS:
        return Reply(ReplyKind.UNKNOWN)
    visit = parse_visit(tokens)
    if visit is not None:
        return visit
    if tokens[0] in DONE_WORDS:
        return _done([t for t in tokens[1:] if t.isdigit()])
    if tokens[0] in CANCEL_WORDS or tokens[0] in RESCHEDULE_WORDS:
        return _change(tokens)
    return _keyword_reply(tokens)


def parse_rating(body: str) -> int | None:
    """A citizen's 1-5 for the service: "5", "५", "5 stars", "5/5" or "⭐⭐⭐"; None otherwise."""
    return _rating(normalise(body))


def normalise(body: object) -> str:
    """Lower-case text with ASCII digits and single spaces, whatever the phone or the sender typed."""
    text = body[:MAX_BODY] if isinstance(body, str) else ""
    text = unicodedata.normalize("NFKC", text)[:MAX_BODY]  # fullwidth "１" is "1"
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cf", "Cs") and c not in _VARIATION_SELECTORS)
    return " ".join(text.translate(_DEVANAGARI_DIGITS).casefold().split())


def _rating(text: str) -> int | None:
    """1-5 from a normalised body, or None."""
    trimmed = _trim(text)
    if trimmed and len(trimmed) <= 5 and set(trimmed) <= _STARS:
        return len(trimmed)
    match = _RATING.fullmatch(trimmed)
    return int(match.group(1)) if match else None


def _trim(text: str) -> str:
    """Without leading or trailing spaces, punctuation and symbols ("5!", "(5)", "५।")."""
    start, end = 0, len(text)
    while start < end and _is_edge_junk(text[start]):
        start += 1
    while end > start and _is_edge_junk(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_edge_junk(char: str) -> bool:
    return char not in _STARS and unicodedata.category(char)[0] in "ZPS"


def _tokens(text: str) -> Iterator[str]:
    """Runs of digits and runs of letters (with their vowel signs); everything else separates."""
    token, kind = "", ""
    for char in text:
        char_kind = "9" if char in "0123456789" else "a" if unicodedata.category(char)[0] in "LM" else ""
        if char_kind != kind and token:
            yield token
            token = ""
        kind = char_kind
        if char_kind:
            token += char
    if token:
        yield token


def _keyword_reply(tokens: list[str]) -> Reply:
    """ACCEPT, DECLINE, AVAILABLE, BUSY or HELP with an optional request number; else UNKNOWN."""
    kinds: set[ReplyKind] = set()
    digits: list[str] = []
    for index, token in enumerate(tokens):
        if index == 0 and token in DIGIT_KEYWORDS:
            kinds.add(DIGIT_KEYWORDS[token])
        elif token.isdigit():
            digits.append(token)
        elif token in KEYWORDS:
            kinds.add(KEYWORDS[token])
        elif token not in POLITE:
            return Reply(ReplyKind.UNKNOWN)
    if not kinds and ALONE_MEANS_YES & set(tokens):
        kinds.add(ReplyKind.ACCEPT)
    number = "".join(digits)
    if len(kinds) != 1 or len(number) not in (0, NUMBER_DIGITS):
        return Reply(ReplyKind.UNKNOWN)
    return Reply(kinds.pop(), number=number or None)


def _change(tokens: list[str]) -> Reply:
    """CANCEL or RESCHEDULE, with the request's number if given and a cancel's reason digit; a word
    that is neither a filler nor the same keyword makes it UNKNOWN (nothing is cancelled on a guess)."""
    kind = ReplyKind.CANCEL if tokens[0] in CANCEL_WORDS else ReplyKind.RESCHEDULE
    words = CANCEL_WORDS if kind is ReplyKind.CANCEL else RESCHEDULE_WORDS
    numbers: list[str] = []
    reasons: list[str] = []
    for token in tokens[1:]:
        if token.isdigit():
            (numbers if len(token) == NUMBER_DIGITS else reasons).append(token)
        elif token not in words and token not in FILLER and token not in POLITE:
            return Reply(ReplyKind.UNKNOWN)
    if len(numbers) > 1 or len(reasons) > 1 or (reasons and not ("1" <= reasons[0] <= "6" and len(reasons[0]) == 1)):
        return Reply(ReplyKind.UNKNOWN)
    reason = int(reasons[0]) if reasons and kind is ReplyKind.CANCEL else None
    return Reply(kind, number=numbers[0] if numbers else None, reason=reason)


def _done(digits: list[str]) -> Reply:
    """DONE with whichever of number and code can be told apart; the caller asks for the rest."""
    number, code = _number_and_code(digits)
    return Reply(ReplyKind.DONE, number=number, code=code)


def _number_and_code(digits: list[str]) -> tuple[str | None, str | None]:
    """The request number and the 4-digit code, from "1234567 4821", "4821 1234567", "123 4567 4821"
    or "12345674821"; whichever can be told apart."""
    lengths = sorted(len(d) for d in digits)
    if lengths == [CODE_DIGITS, NUMBER_DIGITS]:
        number = next(d for d in digits if len(d) == NUMBER_DIGITS)
        code = next(d for d in digits if len(d) == CODE_DIGITS)
        return number, code
    joined = "".join(digits)  # "123 4567 4821" or "12345674821"
    if len(joined) == NUMBER_DIGITS + CODE_DIGITS:
        return joined[:NUMBER_DIGITS], joined[NUMBER_DIGITS:]
    return _first_of_each([joined] if len(joined) in (NUMBER_DIGITS, CODE_DIGITS) else digits)


def _first_of_each(digits: list[str]) -> tuple[str | None, str | None]:
    """The first group of each length, when the groups cannot be read any other way."""
    number = next((d for d in digits if len(d) == NUMBER_DIGITS), None)
    code = next((d for d in digits if len(d) == CODE_DIGITS), None)
    return number, code


# -- the worker's day: on my way, arrived, start -----------------------------------------------------
# "OMW 1234567 30" (or "on my way 30", "रास्ते में 1234567 20 मिनट"), "ARRIVED 1234567" ("पहुँच गया"),
# "START 1234567 4821" ("शुरू 4821"). The keyword comes first; the request number may be left out by a
# worker with one job in hand. No digits-only form: "1234567 4821" could as well be a START as a DONE.

ON_THE_WAY_WORDS = frozenset(
    ["omw", "otw", "onmyway", "ontheway", "enroute", "raste", "raaste", "rasta", "रास्ते", "रास्ता", "nikla", "निकला"]
)
ON_THE_WAY_PHRASES = (("on", "my", "way"), ("on", "the", "way"), ("on", "way"), ("en", "route"))
ARRIVED_WORDS = frozenset(
    ["arrived", "arrive", "reached", "pahuncha", "pahucha", "pahunch", "pahuch", "pahunche", "pahuche"]
) | frozenset(["पहुँचा", "पहुंचा", "पहुँच", "पहुंच", "पहुँचे", "पहुंचे", "पहुँची", "पहुंची"])
START_WORDS = frozenset(["start", "started", "shuru", "suru", "शुरू", "शुरु"])
# Words that may stand around the digits without changing what a visit message means.
VISIT_FILLER = (
    POLITE
    | frozenset(["in", "mein", "me", "main", "में", "gaya", "gya", "गया", "gayi", "गई", "hoon", "hun", "हूँ", "हूं"])
    | frozenset(["ho", "हो", "min", "mins", "minute", "minutes", "m", "minat", "मिनट", "eta", "job", "kaam", "काम"])
    | frozenset(["code", "कोड"])
)
MAX_ETA_DIGITS = 3  # minutes: 1 to 999 (the domain caps it at visit.max_eta_minutes)


def parse_visit(tokens: list[str]) -> Reply | None:
    """ON_THE_WAY, ARRIVED or START when the message starts with one of their words (UNKNOWN when
    what follows does not fit); None when it is no visit message."""
    found = _visit_keyword(tokens)
    if found is None:
        return None
    kind, rest = found
    if any(not token.isdigit() and token not in VISIT_FILLER for token in rest):
        return Reply(ReplyKind.UNKNOWN)
    digits = [token for token in rest if token.isdigit()]
    if kind is ReplyKind.ON_THE_WAY:
        return _on_the_way(digits)
    if kind is ReplyKind.ARRIVED:
        return _arrived(digits)
    number, code = _number_and_code(digits)
    if code is None or len("".join(digits)) != len(code) + len(number or ""):
        return Reply(ReplyKind.UNKNOWN)
    return Reply(ReplyKind.START, number=number, code=code)


def _visit_keyword(tokens: list[str]) -> tuple[ReplyKind, list[str]] | None:
    for phrase in ON_THE_WAY_PHRASES:
        if tuple(tokens[: len(phrase)]) == phrase:
            return ReplyKind.ON_THE_WAY, tokens[len(phrase) :]
    first = tokens[0]
    for words, kind in (
        (ON_THE_WAY_WORDS, ReplyKind.ON_THE_WAY),
        (ARRIVED_WORDS, ReplyKind.ARRIVED),
        (START_WORDS, ReplyKind.START),
    ):
        if first in words:
            return kind, tokens[1:]
    return None


def _on_the_way(digits: list[str]) -> Reply:
    """The ETA (1-3 digits, at least 1 minute) and, optionally, the 7-digit request number."""
    numbers = [d for d in digits if len(d) == NUMBER_DIGITS]
    etas = [d for d in digits if len(d) <= MAX_ETA_DIGITS]
    if len(etas) != 1 or len(numbers) > 1 or len(etas) + len(numbers) != len(digits) or int(etas[0]) < 1:
        return Reply(ReplyKind.UNKNOWN)
    return Reply(ReplyKind.ON_THE_WAY, number=numbers[0] if numbers else None, minutes=int(etas[0]))


def _arrived(digits: list[str]) -> Reply:
    if not digits:
        return Reply(ReplyKind.ARRIVED)
    if len(digits) == 1 and len(digits[0]) == NUMBER_DIGITS:
        return Reply(ReplyKind.ARRIVED, number=digits[0])
    return Reply(ReplyKind.UNKNOWN)
