"""A log line is scrubbed only by the passes that can find something in it: the scans that skip a pass
never let through what the pass would have hidden."""

from __future__ import annotations

import re
import sys

from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.phones import mask_all
from sewamitra import logs
from storage.tokens import PREFIX

# What a number, a secret or a token in a log line is made of, encoded or not, in any case (the
# Kelvin sign and the long s match k and s when case is ignored).
PIECES = st.sampled_from(
    [
        *"0123456789",
        "98765",
        "+",
        "%2B",
        "%2b",
        "%252B",
        " ",
        "-",
        "%20",
        "%2520",
        "=",
        "%3D",
        "%253D",
        "&",
        "%26",
        "?",
        "_",
        "api_key",
        "ApiKey",
        "TOKEN",
        "tOkEn",
        "passwd",
        "PASSWORD",
        "secret",
        "\u212aey",
        "\u017fecret",
        PREFIX,
        "abcd",
        '"',
        "%",
        "x",
    ]
)


def every_pass(text: str) -> str:
    """The four passes, each run whatever the line holds."""
    text = logs._SECRET_PARAMETER.sub(lambda found: found.group(1) + logs.HIDDEN, text)
    text = logs._TOKEN.sub(PREFIX + logs.HIDDEN, text)
    return logs._NUMBER.sub(logs._masked, mask_all(text))


@settings(max_examples=3000)
@example("q=%2B1%202%203%204%205%206%207%208%209%200")  # encoded, its digits spaced: no five in a row
@given(st.lists(PIECES | st.text(max_size=3), max_size=40).map("".join))
def test_a_line_scrubs_as_every_pass_would(text: str) -> None:
    assert logs.scrub(text) == every_pass(text)


def test_an_access_log_line_with_nothing_to_hide_is_kept_as_it_is() -> None:
    line = '127.0.0.1 - - [06/Dec/2026:17:11:47 +0000] "POST /twilio/voice/step?turn=3 HTTP/1.1" 200 402 "-" "-"'
    assert logs.scrub(line) == line


def test_what_each_pass_hides_is_still_hidden() -> None:
    line = f"GET /x?\u017fecret=hunter2&next=%252B91%25209876543210 token {PREFIX}abcdefgh caller +91 98765-43210"
    hidden = f"GET /x?\u017fecret=[hidden]&next=+91 98xxxxx210 token {PREFIX}[hidden] caller +91 98xxxxx210"
    assert logs.scrub(line) == hidden


def test_every_character_a_secrets_name_matches_folds_to_its_letter() -> None:
    """Why a secret's name is looked for in the folded line: whatever character the pass, ignoring
    case, takes for a letter of those names (the Kelvin sign for k, the long s for s) folds to it."""
    every = "".join(chr(code) for code in range(sys.maxunicode + 1) if not 0xD800 <= code <= 0xDFFF)
    for letter in set("".join(logs._SECRET_WORDS)):
        taken = set(re.findall(f"(?i){letter}", every))
        assert {char.casefold() for char in taken} == {letter}, letter
