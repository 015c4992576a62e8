"""The console's labels: English msgids, translated through the gettext catalogues in console/translations.

The Hindi catalogue translates every label; the English one only turns the codes the views hand to
t() (reasons, outcomes, channels, roles) into words. The language is the one the user chose (kept
in the session), English until they choose."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, session
from flask_babel import Babel, gettext

LANGUAGES = ("en", "hi")
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
DOMAIN = "messages"


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=language, default_translation_directories=str(TRANSLATIONS),
          default_domain=DOMAIN)  # fmt: skip


def language() -> str:
    chosen = session.get("language")
    return chosen if chosen in LANGUAGES else "en"


def translate(text: str, **values: object) -> str:
    """The label in the console's language, with `values` put in; a text the catalogue does not know, as it is."""
    if not isinstance(text, str) or not text:  # gettext("") is the catalogue's header
        return text
    return gettext(text, **values)


def N_(text: str) -> str:
    """Marks a label for the catalogue where it is made; t() translates it where it is shown."""
    return text
