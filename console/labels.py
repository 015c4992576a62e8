"""The console's labels: English msgids, translated through the gettext catalogues in console/translations.

The Hindi catalogue translates every label; the English one only turns the codes the views hand to
t() (reasons, outcomes, channels, roles) into words. The language is the one the user chose (kept
in the session), English until they choose."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask, session
from flask_babel import Babel, gettext

LANGUAGES = ("en", "hi")
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
DOMAIN = "messages"


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=language, default_translation_directories=str(TRANSLATIONS), default_domain=DOMAIN)


def language() -> str:
    chosen = session.get("language")
    return chosen if chosen in LANGUAGES else "en"


def translate(text: str, **values: object) -> str:
    """The label in the console's language, with `values` put in; a text the catalogue does not know, as it is."""
    if not isinstance(text, str) or not text:  # gettext("") is the catalogue's header
        return text
    if values:
        return gettext(text, **values)
    translated = gettext(text)
    return translated if translated != text else _by_shape(text)


def N_(text: str) -> str:
    """Marks a label for the catalogue where it is made; t() translates it where it is shown."""
    return text


# Texts the domain writes with a value in them (reasons on a timeline, refusals an agent is shown),
# as the catalogue has them: a value named `code` is a code and is translated too, a name or number is not.
SHAPED = (
    N_("rated %(stars)s"),
    N_("the worker was stood down: %(code)s"),
    N_("a request that is %(code)s cannot be cancelled"),
    N_("a request that is %(code)s cannot be moved"),
    N_("a request that is %(code)s cannot be dispatched again"),
    N_("a request that is %(code)s cannot be assigned"),
    N_("a request that is %(code)s cannot be handed to an agency"),
    N_("%(name)s is deactivated"),
    N_("%(name)s is not police-verified"),
    N_("%(name)s does not do %(service)s"),
    N_("%(name)s already has job %(number)s in hand"),
    N_("Rework visit %(number)s booked."),
    N_("rework of %(number)s: %(code)s"),
    N_("%(name)s is suspended (%(reason)s): lift it first"),
    N_("%(name)s's police verification has expired: verify them again first"),
    N_("the citizen asked for another worker than %(name)s for this rework"),
    N_("its rework %(number)s is already open"),
    N_("the job was done more than %(days)s days ago"),
    N_("a request that is %(code)s cannot be visited again"),
    N_("the rework is %(code)s: a worker already has it"),
    N_("average rating %(average)s over the last %(count)s rated jobs, under %(floor)s"),
    N_("%(count)s complaints in %(days)s days"),
    N_("ETA %(minutes)s min"),
    N_("a request that is %(code)s has no code to send"),
    N_("%(name)s has job %(number)s in that slot"),
)
_PLACE = re.compile(r"%\\\((\w+)\\\)s")  # a value's place, once re.escape has been through the label
SHAPES = tuple((re.compile(_PLACE.sub(r"(?P<\1>.+)", re.escape(label))), label) for label in SHAPED)


def _by_shape(text: str) -> str:
    """A text of one of the SHAPED forms, translated with its values in place; any other text as it is."""
    for shape, label in SHAPES:
        found = shape.fullmatch(text)
        if found:
            values = found.groupdict()
            if "code" in values:
                values["code"] = translate(values["code"])
            return gettext(label, **values)
    return text
