"""No SMS the helpline sends carries a phone number (issue 18): a citizen and their worker reach each
other only through the helpline, whose short number is the one number an SMS gives. Every shipped
template, in both languages, rendered with realistic values, is searched for an Indian mobile number
in any of the ways one is written."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import yaml

from core.settings import load_settings
from dispatch import sms_text
from tests.factories import ROOT

# An Indian mobile number (a 10-digit national number starting 6-9), bare, with +91, 91 or a trunk 0,
# its digits grouped by spaces or hyphens; not part of a longer run of digits.
MOBILE = re.compile(r"(?<![\d+])(?:(?:\+|00)?91[\s-]?|0)?[6-9](?:[\s-]?\d){9}(?![\d])")

# What fills the templates in real life: names, places, a request number and code, the notice's link.
REALISTIC: dict[str, dict[str, str]] = {
    "hi": {
        "number": "7482913",
        "service": "प्लंबर",
        "worker": "रमेश कुमार",
        "code": "9076",
        "locality": "लखनऊ 226001",
        "address": "मकान 12, गोमती नगर, लखनऊ",
        "state": "उपलब्ध",
        "url": "https://helpline.up.gov.in/privacy",
        "date": "28 Nov 2026",
        "slot": "कल दोपहर (12:00-16:00)",
    },
    "en": {
        "number": "9876543",
        "service": "Plumber",
        "worker": "Ramesh Kumar",
        "code": "8123",
        "locality": "Lucknow 226001",
        "address": "House 12, Gomti Nagar, Lucknow",
        "state": "available",
        "url": "https://helpline.up.gov.in/privacy?lang=en",
        "date": "28 Nov 2026",
        "slot": "tomorrow afternoon (12:00-16:00)",
    },
}
SETTINGS = load_settings(ROOT / "config.yaml", {})


@pytest.mark.parametrize(
    "written",
    ["9876543210", "+919876543210", "+91 98765 43210", "098765-43210", "91-9876543210", "0091 9876 543 210"],
)
def test_the_search_finds_a_mobile_number_however_it_is_written(written: str) -> None:
    assert MOBILE.search(f"Customer {written}, House 12") is not None


@pytest.mark.parametrize(
    "text", ["call 155330", "job 9876543 is yours", "DONE 9876543 8123", "toll-free 1800 180 1551", "PIN 226001"]
)
def test_the_search_leaves_the_helplines_own_numbers_alone(text: str) -> None:
    assert MOBILE.search(text) is None


@pytest.mark.parametrize(
    ("name", "language"), [(name, language) for name in SETTINGS.sms.templates for language in ("hi", "en")]
)
def test_no_sms_template_carries_a_phone_number(name: str, language: str) -> None:
    template = SETTINGS.sms.templates[name].text(language)
    assert not [p for p in sms_text.placeholders(template) if "phone" in p or "mobile" in p]
    body = sms_text.compose(SETTINGS, name, language, REALISTIC[language])
    assert MOBILE.search(body) is None, body


def test_the_helplines_number_is_what_the_texts_give_to_call() -> None:
    worker = sms_text.compose(SETTINGS, "assigned_worker", "en", REALISTIC["en"])
    assert worker == (
        "Job 9876543: Plumber at Lucknow 226001. To hear the address or call the customer, call 155330. "
        "When done, text DONE 9876543 CODE."
    )
    citizen = sms_text.compose(SETTINGS, "assigned_citizen", "en", REALISTIC["en"])
    assert citizen == (
        "Sewamitra: Ramesh Kumar will visit for request 9876543. To speak to your worker call 155330. "
        "Give code 8123 when done."
    )
    elsewhere = SETTINGS.model_copy(update={"helpline_public_number": "1076"})
    assert sms_text.compose(elsewhere, "reply_help_citizen", "en", {}).endswith("call 1076.")


def _params(node: object) -> Iterator[str]:
    """Every value a flow hands to a prompt, wherever in the flow it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "params" and isinstance(value, dict):
                yield from (str(v) for v in value.values())
            else:
                yield from _params(value)
    elif isinstance(node, list):
        for item in node:
            yield from _params(item)


@pytest.mark.parametrize("flow", ["worker", "feedback"])
def test_nothing_said_to_a_worker_or_on_our_calls_out_is_a_phone_number(flow: str) -> None:
    definition = yaml.safe_load((ROOT / "flows" / "definitions" / f"{flow}.yaml").read_text(encoding="utf-8"))
    said = list(_params(definition))
    assert said, "the flow says nothing with a value: the search would find nothing"
    variables = {name for value in said for name in re.findall(r"\{([a-z_]+)\}", value)}
    assert not [v for v in variables if any(word in v for word in ("phone", "mobile", "caller", "citizen"))]
    prompts = yaml.safe_load((ROOT / "flows" / "prompts" / "en.yaml").read_text(encoding="utf-8"))
    for text in prompts.values():
        assert not [p for p in sms_text.placeholders(str(text)) if "phone" in p or "mobile" in p]
