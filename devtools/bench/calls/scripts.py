"""What the benchmark's callers key, and what each call came to.

The mix follows real paths through the helpline: booking mostly (in English and Hindi, some after
a silence or a PIN code India Post does not know), and callers who booked earlier ringing again to
hear their requests. A call's verdict lists its errors and the request numbers read back to it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core import phones
from devtools.simulator import APPLICATION_ERROR, Failure, Transcript, TwilioError
from flows import prompts

BOOK, BOOK_HINDI, BOOK_AFTER_SILENCE, BOOK_AFTER_WRONG_PIN, TRACK = (
    "book",
    "book_hindi",
    "book_after_silence",
    "book_after_wrong_pin",
    "track",
)
MIX: dict[str, float] = {
    BOOK: 0.60,
    BOOK_HINDI: 0.15,
    BOOK_AFTER_SILENCE: 0.05,
    BOOK_AFTER_WRONG_PIN: 0.05,
    TRACK: 0.15,
}
UNKNOWN_PIN = "999999"  # six digits, but no India Post office has it
LANGUAGES = ("hi", "en")
BOOKED_PROMPT = "request_created"
READ_BACK_PROMPT = "request_status"


@dataclass(frozen=True)
class Script:
    """One caller: the number they ring from and a key item for each prompt ('-' is silence)."""

    kind: str
    from_number: str
    keys: tuple[str, ...]

    @property
    def books(self) -> bool:
        return self.kind != TRACK


class Mix:
    """Draws the next caller; a caller who booked may ring again later to track their request."""

    def __init__(
        self,
        rng: random.Random,
        service_digits: Sequence[str],
        pincodes: Sequence[str],
        taken: Iterable[str] = (),
        places: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.rng = rng
        self.service_digits = service_digits
        self.pincodes = pincodes
        self.taken = set(taken)  # workers' phones: a worker ringing in hears the worker menu
        self.places = places  # (service digit, PIN code) drawn together, when given: a service where it is offered
        self.returning: list[str] = []

    def next(self) -> Script:
        kind = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        if kind == TRACK and self.returning:
            return Script(TRACK, self.rng.choice(self.returning), ("2",))  # language remembered: main menu
        kind = BOOK if kind == TRACK else kind  # nobody has booked yet
        if self.places:
            digit, pin = self.rng.choice(self.places)
            pin += "#"
        else:
            digit, pin = self.rng.choice(self.service_digits), self.rng.choice(self.pincodes) + "#"
        # After the PIN code is confirmed (1), the caller keeps silent at the address's beep (-).
        keys = {
            BOOK: ("2", "1", digit, pin, "1", "9", "-", "2"),
            BOOK_HINDI: ("1", "1", digit, pin, "1", "9", "-", "2"),
            BOOK_AFTER_SILENCE: ("2", "-", "1", digit, pin, "1", "9", "-", "2"),
            BOOK_AFTER_WRONG_PIN: ("2", "1", digit, UNKNOWN_PIN + "#", pin, "1", "9", "-", "2"),
        }[kind]
        return Script(kind, self.new_phone(), keys)

    def booked(self, phone: str) -> None:
        self.returning.append(phone)

    def new_phone(self) -> str:
        """An Indian mobile number nobody in the run has used, and no worker has."""
        while True:
            phone = f"+91{self.rng.randint(6, 9)}{self.rng.randrange(10**9):09d}"
            if phone not in self.taken and phones.indian_mobile(phone) == phone:
                self.taken.add(phone)
                return phone


# -- what a call came to --------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One call: its errors (a kind per occurrence) and the request numbers it heard."""

    call_sid: str
    kind: str
    from_number: str
    errors: tuple[str, ...]
    booked: str | None  # the number read back after booking
    read_back: tuple[str, ...]  # numbers read to a caller tracking their requests
    requests: int  # webhook requests the call made
    error_lines: tuple[str, ...] = ()  # each error in a line, for the report
    call_seconds: int = 0  # how long the call took on the simulator's clock: prompts at speaking pace, keys


def judge(script: Script, transcript: Transcript, *, helpline: bool) -> Verdict:
    """The errors of one call; against the helpline, a booking must end with a number read back."""
    errors = [(error_kind(failure), failure.line()) for failure in transcript.errors]
    errors += [("apology", f"the caller heard {text!r}") for text in transcript.heard if text in APOLOGIES]
    booked = next(iter(numbers_in(transcript.heard, BOOKED_PROMPT)), None)
    read_back = tuple(numbers_in(transcript.heard, READ_BACK_PROMPT))
    if helpline and script.books and booked is None:
        errors.append(("no_request_number", f"{script.kind} {','.join(script.keys)}: no request number read back"))
    if helpline and not script.books and not read_back:
        errors.append(("nothing_read_back", f"{script.kind} {','.join(script.keys)}: no request read back"))
    kinds, lines = tuple(kind for kind, _ in errors), tuple(line for _, line in errors)
    return Verdict(
        transcript.call_sid,
        script.kind,
        script.from_number,
        kinds,
        booked,
        read_back,
        len(transcript.requests),
        lines,
        transcript.duration,
    )


def cut_off(script: Script, call_sid: str) -> Verdict:
    """A call still running when the phase's time ran out."""
    return Verdict(call_sid, script.kind, script.from_number, ("cut_off",), None, (), 0, ("still running at the end",))


def error_kind(failure: Failure) -> str:
    """What Twilio's debugger would call it: no answer in time, an HTTP error, or TwiML it cannot run."""
    if failure.code == TwilioError.HTTP_CONNECTION_FAILURE:
        return "timeout"
    if failure.code == TwilioError.HTTP_RETRIEVAL_FAILURE:
        return "http"
    return "twiml"


# Our own apology ("a technical problem") and Twilio's ("an application error") are errors too.
APOLOGIES = frozenset({*(prompts.text("technical_problem", lang) for lang in LANGUAGES), APPLICATION_ERROR})


def numbers_in(heard: Iterable[str], prompt: str) -> list[str]:
    """The request numbers read digit by digit in the texts of `prompt`, in any language."""
    found = []
    for text in heard:
        for pattern, words in _READERS[prompt]:
            match = pattern.match(text)
            if match:
                found.append("".join(str(words.index(word)) for word in match.group(1).split(", ")))
                break
    return found


def _reader(prompt: str, language: str) -> tuple[re.Pattern[str], list[str]]:
    words = prompts.text("digit_words", language).split()
    word = "(?:" + "|".join(map(re.escape, words)) + ")"
    before, after = prompts.text(prompt, language).split("{number}", 1)
    # What follows the number too: another prompt may begin alike ("अनुरोध नंबर {number} नहीं मिला।").
    then = after.split("{", 1)[0]
    return re.compile(re.escape(before) + f"({word}(?:, {word})*+)" + re.escape(then)), words  # *+: every digit


_READERS = {prompt: [_reader(prompt, lang) for lang in LANGUAGES] for prompt in (BOOKED_PROMPT, READ_BACK_PROMPT)}
