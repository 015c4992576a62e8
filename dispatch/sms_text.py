"""SMS bodies that fit: every extra segment is paid for, and Hindi (UCS-2) runs out fast.

Pure functions: how a carrier encodes and splits a text, and how a template is filled with
untrusted values (names, addresses) without letting them grow the SMS past its budget.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

from core.settings import Settings

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 default alphabet (ESC itself excluded: it is not a character anyone can send).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each character is sent as ESC + character, two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM7 = GSM7_BASIC | GSM7_EXTENSION

# (one segment, per segment once split): the split loses 6 bytes to the concatenation header.
LIMITS: dict[Encoding, tuple[int, int]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}
MAX_SEGMENTS = 2
SHRINKABLE = ("address", "locality", "worker", "service")
MAX_VALUE_CHARS = 1600  # a value longer than any SMS is cut before any work is done on it

# Worst-case lengths of what fills the templates; Latin text is the longest in UTF-16 units too.
TYPICAL_VALUES: Mapping[str, str] = {
    "number": "1234567",
    "original": "7654321",  # the job a rework visits again
    "service": "Appliance repair",
    "worker": "Santosh Kumar Vishwakarma",
    "helpline": "155330",
    "code": "4821",
    "locality": "Gomti Nagar, Lucknow",
    "address": "House 12A, Lane 4, Vikas Nagar, Near Hanuman Mandir, Lucknow",
    "state": "not available",
    "url": "https://helpline.up.gov.in/privacy?lang=en",
    "date": "28 Nov 2026",
    "slot": "28 Nov afternoon (12:00-16:00)",  # core.slots.describe: a day and a period, its hours
    "level": "District officer",
    "minutes": "240",
    "tries": "4",
}

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KEEP_FORMAT_CHARS = frozenset("\u200c\u200d")  # ZWNJ/ZWJ shape Devanagari conjuncts
_VIRAMA = "\u094d"
_TRAILING_JUNK = " ,;:-/|.(।"


class SmsTooLong(ValueError):
    """A template whose own text leaves no room for its values within the segment budget."""

    def __init__(self, template_length: int, rendered_length: int, encoding: Encoding, max_segments: int) -> None:
        self.template_length = template_length
        self.rendered_length = rendered_length
        self.encoding = encoding
        self.max_segments = max_segments
        super().__init__(
            f"SMS template is {template_length} {_unit(encoding)} without its values and "
            f"{rendered_length} with them shortened; {max_segments} {encoding} segment(s) hold "
            f"{capacity(encoding, max_segments)}"
        )


def encoding(text: str) -> Encoding:
    """GSM-7 only when every character is in the GSM alphabet; one other character costs half the room."""
    return "GSM-7" if _GSM7.issuperset(text) else "UCS-2"


def length(text: str) -> int:
    """Length as the carrier counts it: septets for GSM-7, UTF-16 code units for UCS-2."""
    return _length(text, encoding(text))


def _length(text: str, enc: Encoding) -> int:
    """`sum(_widths(text, enc))`, counted by str's own methods: a text's every character was a step of Python."""
    if enc == "GSM-7":
        return len(text) + sum(map(text.count, GSM7_EXTENSION))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2  # a lone surrogate is one unit, as in _widths


def capacity(enc: Encoding, segments: int) -> int:
    """How much text `segments` parts carry (a lone part has no concatenation header)."""
    single, part = LIMITS[enc]
    return single if segments <= 1 else part * segments


def segments(text: str) -> int:
    """Parts the carrier bills; an escape pair or surrogate pair is never split across two parts."""
    enc = encoding(text)
    single, part = LIMITS[enc]
    units = _length(text, enc)
    if units <= single:
        return 1
    if units == len(text):  # no pair to keep whole: every part is full but the last
        return -(-units // part)
    count, used = 1, 0
    for width in _widths(text, enc):
        if used + width > part:
            count, used = count + 1, 0
        used += width
    return count


def placeholders(template: str) -> list[str]:
    """The `{name}`s a template needs, in order of first use."""
    names = [m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)]
    return list(dict.fromkeys(names))


def clean(value: object) -> str:
    """One line of plain text: an untrusted value may not add lines, controls or invisible marks."""
    text = str(value)[:MAX_VALUE_CHARS]
    if text.isprintable():  # no control, format or separator character but the space: only spaces to even out
        return " ".join(text.split())
    kept = []
    for char in text:
        if char.isspace():
            kept.append(" ")
        elif unicodedata.category(char) not in ("Cc", "Cf", "Cs") or char in _KEEP_FORMAT_CHARS:
            kept.append(char)
    return " ".join("".join(kept).split())


def fill(template: str, values: Mapping[str, str]) -> str:
    """Substitute in one pass, so a value that looks like `{code}` stays literal text."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)[0]
        if name not in values:
            raise KeyError(f"SMS template needs a value for {{{name}}}")
        return values[name]

    return _PLACEHOLDER.sub(substitute, template)


def render(
    template: str,
    values: Mapping[str, str],
    *,
    max_segments: int = MAX_SEGMENTS,
    shrinkable: Sequence[str] = SHRINKABLE,
) -> str:
    """The SMS for `values`, shortening the least needed values when it would cost extra segments."""
    current = {name: clean(values[name]) for name in placeholders(template) if name in values}
    text = fill(template, current)
    for name in shrinkable:
        if _fits(text, max_segments):
            return text
        if name in current:
            current[name] = _shrink(template, current, name, max_segments)
            text = fill(template, current)
    if _fits(text, max_segments):
        return text
    fixed = fill(template, dict.fromkeys(current, ""))
    raise SmsTooLong(length(fixed), length(text), encoding(text), max_segments)


def compose(settings: Settings, template: str, language: str, values: Mapping[str, str]) -> str:
    """A configured template in `language`, fitted: `{helpline}` is the helpline's public number, the
    one number an SMS gives (citizen and worker reach each other only through it)."""
    text = settings.sms.templates[template].text(language)
    return render(text, {"helpline": settings.helpline_public_number, **values})


def check_templates(templates: Mapping[str, tuple[str, str]], sample: Mapping[str, str]) -> list[str]:
    """Problems to fix in config before an SMS is cut short or billed twice; empty when all fit."""
    problems: list[str] = []
    for name, texts in templates.items():
        for language, template in zip(("hi", "en"), texts, strict=True):
            problems.extend(f"{name}.{language}: {p}" for p in _template_problems(template, sample, language))
    return problems


def _template_problems(template: str, sample: Mapping[str, str], language: str) -> Iterator[str]:
    """One template's problems, the fatal ones first."""
    missing = [name for name in placeholders(template) if name not in sample]
    if missing:
        yield f"error: no sample value for {', '.join('{' + n + '}' for n in missing)}"
        return
    fixed = fill(template, dict.fromkeys(placeholders(template), ""))
    enc, limit = encoding(fixed), capacity(encoding(fixed), MAX_SEGMENTS)
    if length(fixed) > limit:
        yield f"error: fixed text alone is {length(fixed)} {_unit(enc)}, over {MAX_SEGMENTS} {enc} segments ({limit})"
        return
    if language == "en" and enc == "UCS-2":
        odd = "".join(dict.fromkeys(c for c in fixed if c not in GSM7_BASIC and c not in GSM7_EXTENSION))
        yield f"warning: English text is sent as UCS-2 (70 a segment) because of {odd!r}"
    full = fill(template, {name: clean(value) for name, value in sample.items()})
    if not _fits(full, MAX_SEGMENTS):
        yield (
            f"warning: {length(full)} {_unit(encoding(full))} with typical values, over "
            f"{MAX_SEGMENTS} segments ({capacity(encoding(full), MAX_SEGMENTS)}); values will be shortened"
        )


def _fits(text: str, max_segments: int) -> bool:
    return segments(text) <= max_segments


def _unit(enc: Encoding) -> str:
    return "GSM-7 characters" if enc == "GSM-7" else "UTF-16 units"


def _widths(text: str, enc: Encoding) -> Iterator[int]:
    """Per character: 2 for a GSM escape pair or a UTF-16 surrogate pair, else 1."""
    if enc == "GSM-7":
        return (2 if c in GSM7_EXTENSION else 1 for c in text)
    return (2 if ord(c) > 0xFFFF else 1 for c in text)


def _shrink(template: str, values: Mapping[str, str], name: str, max_segments: int) -> str:
    """The longest word-bounded prefix of one value (plus an ellipsis) that lets the SMS fit."""
    value = values[name]

    def candidate(keep: int) -> str:
        prefix = value[:keep].rstrip(_TRAILING_JUNK)
        text = fill(template, {**values, name: prefix})
        return prefix + ("..." if encoding(text) == "GSM-7" else "…")

    def fits(keep: int) -> bool:
        return _fits(fill(template, {**values, name: candidate(keep)}), max_segments)

    low, high = 0, len(value) - 1  # keep == len(value) was tried by the caller
    if not value:
        return value
    if not fits(0):
        return candidate(0)
    while low < high:  # the largest `keep` that fits: fewer characters never need more room
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return candidate(_word_cut(value, low))


def _word_cut(value: str, keep: int) -> int:
    """Back off to the end of a word, or for one long word at least to the start of a letter."""
    if 0 < keep < len(value) and _in_word(value[keep - 1]) and _in_word(value[keep]):
        end = next((i for i in range(keep - 1, 0, -1) if not _in_word(value[i])), 0)
        if end > 0:
            return end
    while 0 < keep < len(value) and _joins_previous(value, keep):
        keep -= 1
    return keep


def _in_word(char: str) -> bool:
    return unicodedata.category(char)[0] in "LMN" or char in _KEEP_FORMAT_CHARS


def _joins_previous(value: str, index: int) -> bool:
    """Whether cutting before `value[index]` would split a Devanagari letter from its marks."""
    char, previous = value[index], value[index - 1]
    return unicodedata.category(char).startswith("M") or char in _KEEP_FORMAT_CHARS or previous == _VIRAMA
