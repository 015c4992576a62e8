"""Every label the console shows has its Hindi: the literal ones in templates, the messages the
views flash, and the statuses and reasons shown through t()."""

from __future__ import annotations

import re
from pathlib import Path

from console.labels import HINDI
from storage.models import CallbackStatus, OfferStatus, RequestStatus, Role, VerificationStatus
from tests.factories import ROOT

CONSOLE = ROOT / "console"  # the console package: its views and templates
LITERAL = re.compile(r"""\bt\((["'])(.+?)\1\)""")
FLASHED = re.compile(r"""flash\((["'])(.+?)\1\)""")


def labels_in(pattern: re.Pattern[str], files: list[Path]) -> set[str]:
    return {match[1] for file in files for match in pattern.findall(file.read_text(encoding="utf-8"))}


def test_every_literal_label_of_the_templates_has_its_hindi() -> None:
    used = labels_in(LITERAL, sorted(CONSOLE.glob("templates/**/*.html")))
    assert len(used) > 100
    assert sorted(used - HINDI.keys()) == []


def test_every_flashed_message_has_its_hindi() -> None:
    used = labels_in(FLASHED, sorted(CONSOLE.glob("*.py")))
    assert sorted(used - HINDI.keys()) == []


def test_every_status_and_role_shown_has_its_hindi() -> None:
    shown = {member.value for enum in (RequestStatus, OfferStatus, VerificationStatus, CallbackStatus, Role)
             for member in enum}  # fmt: skip
    assert sorted(shown - HINDI.keys()) == []
