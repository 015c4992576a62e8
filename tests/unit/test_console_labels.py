"""Every label the console shows has its Hindi: each entry of the Hindi catalogue is translated, and
every label the templates and views hand to t() (literal or marked with N_ or flashed), every status,
role, reason and code shown through t(), is in it. The committed .mo files are the .po files compiled."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir

from console import catalogue, worklist
from console.labels import DOMAIN, TRANSLATIONS
from console.workers import MAX_NOTE, MAX_REFERENCE, ORIGINS, parse_verdict
from core.settings import load_settings
from dispatch import visit
from dispatch.lifecycle import LATE_REASON
from dispatch.offers import COMPLETION_CODE, DONE_UNSTARTED
from storage.models import (
    CallbackOutcome,
    CallbackStatus,
    Channel,
    CitizenCallStatus,
    Direction,
    OfferChannel,
    OfferStatus,
    RequestStatus,
    Role,
    VerificationStatus,
)

CONSOLE = Path(catalogue.__file__).resolve().parent
KEYWORDS = {"t": None, "translate": None, "N_": None, "flash": None}
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def catalogue_of(language: str) -> Catalog:
    return catalogue.read(TRANSLATIONS / language / "LC_MESSAGES" / f"{DOMAIN}.po")


def known(language: str) -> set[str]:
    ids: set[str] = set()
    for message in catalogue_of(language):
        if message.id:
            assert isinstance(message.id, str), message.id  # the console has no plural messages
            ids.add(message.id)
    return ids


def extracted(method_map: list[tuple[str, str]]) -> set[str]:
    found = extract_from_dir(str(CONSOLE), method_map, keywords=KEYWORDS, comment_tags=())
    ids: set[str] = set()
    for _file, _line, message, _comments, _context in found:
        if message:
            assert isinstance(message, str), message  # the console has no plural messages
            ids.add(message)
    return ids


def test_the_catalogues_are_english_and_hindi() -> None:
    assert [po.parent.parent.name for po in catalogue.sources()] == ["en", "hi"]


def test_every_label_of_the_hindi_catalogue_is_translated() -> None:
    messages = [message for message in catalogue_of("hi") if message.id]
    assert len(messages) > 300
    untranslated = [message.id for message in messages if not str(message.string).strip() or message.fuzzy]
    assert untranslated == []
    for message in messages:  # the values put into a label, the same in both languages
        assert sorted(PLACEHOLDER.findall(str(message.string))) == sorted(PLACEHOLDER.findall(str(message.id)))
    devanagari = [m.id for m in messages if re.search(r"[\u0900-\u097F]", str(m.string))]
    assert len(devanagari) > 0.9 * len(messages)  # not English copied over (IVR, API, SMS stay as they are)


def test_every_code_the_english_catalogue_words_has_its_hindi_too() -> None:
    english = [message for message in catalogue_of("en") if message.id]
    assert {"out_of_hours", "voice", "agent"} <= {message.id for message in english}
    assert [message.id for message in english if not str(message.string).strip()] == []
    assert sorted(known("en") - known("hi")) == []


def test_every_literal_label_of_the_templates_is_in_the_catalogue() -> None:
    used = extracted([("templates/**.html", "jinja2.ext:babel_extract")])
    assert len(used) > 150
    assert {"Timeline", "History", "Sign out", "km"} <= used
    assert sorted(used - known("hi")) == []


def test_every_label_the_views_mark_or_flash_is_in_the_catalogue() -> None:
    used = extracted([("*.py", "python")])
    assert len(used) > 60
    assert {"Not found", "Marked busy.", "Callback scheduled.", "Low rating", "s", "min"} <= used
    assert sorted(used - known("hi")) == []


def test_every_status_role_channel_and_reason_shown_has_its_hindi() -> None:
    enums = (
        RequestStatus,
        OfferStatus,
        VerificationStatus,
        CallbackStatus,
        CallbackOutcome,
        Role,
        Channel,
        OfferChannel,
        Direction,
        worklist.Outcome,
        CitizenCallStatus,
    )
    shown = {member.value for enum in enums for member in enum}
    shown |= {"out_of_hours", "left_queue", "queue_unavailable", "queue_full", "asked", "agent_scheduled"}
    shown |= {"change_asked"}  # a callback owed about a change the citizen asked for (dispatch/changes.py)
    shown |= {"missed"}  # a caller who hung up in the queue (dispatch/callbacks.py)
    shown |= {"available", "busy", "active", "inactive"}  # a worker's availability and activity in the history
    shown |= set(ORIGINS.values())
    assert sorted(shown - known("hi")) == []


def test_every_sms_template_has_its_hindi_name_for_the_timeline() -> None:
    templates = set(load_settings().sms.templates)
    assert len(templates) > 10
    assert sorted(templates - known("hi")) == []


def test_every_error_of_the_verification_form_is_in_the_catalogue() -> None:
    today = date(2026, 12, 3)
    forms = [
        {},
        {"outcome": "rejected"},
        {"outcome": "rejected", "reason": "x" * (MAX_NOTE + 1)},
        {"outcome": "verified"},
        {"outcome": "verified", "reference": "r" * (MAX_REFERENCE + 1)},
        {"outcome": "verified", "reference": "UP-1", "verified_on": "2027-01-01"},
    ]
    errors = set()
    for form in forms:
        verdict = parse_verdict(form, today)
        assert isinstance(verdict, dict), form
        errors |= set(verdict.values())
    assert len(errors) == 7
    assert sorted(errors - known("hi")) == []


def test_every_action_on_a_timeline_or_in_a_history_has_its_hindi() -> None:
    request_actions = [
        "request.created",
        "request.offered",
        "offer.sent",
        "offer.expired",
        "request.assigned",
        "offer.declined",
        "request.completed",
        "request.completion_refused",
        "request.closed",
        "request.redispatched",
        "offer.withdrawn",
        "request.escalated",
        "request.cancelled",
        "request.note",
        "request.followup",
        "feedback.call_unanswered",
        "request.call_bridged",
        "request.level_raised",
        "request.citizen_call_placed",
        "request.citizen_call_ended",
        "request.escalation_closed",
        "request.on_the_way",
        "request.arrived",
        "request.started",
        "request.start_refused",
        "request.code_sent",
        "request.code_reset",
        "request.late",
        "request.rescheduled",
        "request.released",
        "request.change_refused",
    ]
    shown = {action.replace("request.", "").replace(".", " ") for action in request_actions}
    shown |= {
        "worker.created",
        "worker.availability",
        "worker.deactivated",
        "worker.reactivated",
        "worker.verified",
        "worker.rejected",
    }
    shown |= {"dispatch", "ivr", "ivr:feedback", "worker", "caller", "citizen", "api", "phone"}  # who did it
    shown |= {"completed", "no_answer", "busy", "failed"}  # how a bridged call ended
    shown |= {"unassigned", "unresolved", "level", "placed", "officer_no_answer", "officer_busy", "officer_failed"}
    shown |= {"district_officer", "state_officer", "system"}  # the escalation ladder: why it climbed, to whom
    # the worker's day: the reasons dispatch/visit.py and dispatch/offers.py write
    shown |= {visit.START_CODE, visit.WRONG_START, visit.TOO_MANY, COMPLETION_CODE, DONE_UNSTARTED}
    shown |= {visit.LATE_FLAG, LATE_REASON, f"offered again: {LATE_REASON}"}
    assert sorted(shown - known("hi")) == []


@pytest.mark.parametrize("po", catalogue.sources(), ids=lambda po: po.parent.parent.name)
def test_the_committed_mo_is_its_po_compiled(po: Path) -> None:
    """After changing a .po: python -m console.catalogue."""
    assert po.with_suffix(".mo").read_bytes() == catalogue.compiled(po)
