"""The helpline flow, run by the pure engine: keys and effect outcomes in, what the caller hears
and what the edge must do out. No Flask, no Redis, no database."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows import definition
from flows.definition import ServiceChoice
from flows.engine import (
    Dial,
    Effect,
    Enqueue,
    Event,
    Gather,
    Hangup,
    Keys,
    Outcome,
    Record,
    Say,
    Session,
    Status,
    Trigger,
    pending_dial,
    resume,
    start,
)
from ivr.effects import known_effects

SERVICES = [
    ServiceChoice("plumber", "1", {"hi": "प्लंबर", "en": "Plumber"}, 200),
    ServiceChoice("electrician", "2", {"hi": "इलेक्ट्रीशियन", "en": "Electrician"}, 250),
]
TWO_SLOTS = (
    ("2026-12-03/evening", "today evening, 16:00 to 20:00"),
    ("2026-12-04/morning", "tomorrow morning, 08:00 to 12:00"),
)
FLOW = definition.load("helpline", languages=["hi", "en"], effects=known_effects(), services=SERVICES)


def heard(events: list[Event]) -> list[str]:
    """Everything spoken, in order, including the prompts inside a keypad wait."""
    texts: list[str] = []
    for event in events:
        if isinstance(event, Say):
            texts.append(event.text)
        elif isinstance(event, Gather):
            texts += [say.text for say in event.prompts]
    return texts


class Call:
    """A caller working through the flow; effects are answered by the test."""

    def __init__(self, language: str | None = None) -> None:
        """A returning caller (`language`) is first looked up for a worker to ring: here they have none."""
        self.session, self.events = start(FLOW, Trigger(language, {"known_language": language or ""}))
        if self.session.status is Status.WAITING_EFFECT and self.effect().name == "find_worker_to_call":
            self.session, more = resume(FLOW, self.session, Outcome("none"))
            self.events = [*self.events[:-1], *more]

    def press(self, digits: str) -> list[str]:
        self.session, self.events = resume(FLOW, self.session, Keys(digits))
        return heard(self.events)

    def effect(self) -> Effect:
        assert self.session.status is Status.WAITING_EFFECT, self.events
        effect = self.events[-1]
        assert isinstance(effect, Effect)
        return effect

    def outcome(self, name: str, **values: object) -> list[str]:
        self.session, self.events = resume(FLOW, self.session, Outcome(name, values))
        return heard(self.events)

    def noticed(self, name: str, **values: object) -> list[str]:
        """The privacy notice's SMS went (or not); then, on a first call, a worker to ring is looked
        up (unless the caller is `new_caller`): here the caller has none, and hears the notice and the
        main menu."""
        said = self.outcome(name, **values)
        if values.get("new_caller") == "yes":
            return said
        assert self.effect() == Effect("find_worker_to_call", {})
        return self.outcome("none")

    def slot_menu(self, *rows: tuple[str, str]) -> list[str]:
        """The open slots are looked up (`rows`: key and words); what the caller hears of them."""
        assert self.effect() == Effect("find_slots", {})
        slots = [{"digit": str(place), "slot": key, "slot_words": words} for place, (key, words) in enumerate(rows, 1)]
        return self.outcome("open", slots=slots, slot="", slot_words="as soon as possible")

    def recording(self) -> Record:
        assert self.session.status is Status.WAITING_RECORDING, self.events
        record = self.events[-1]
        assert isinstance(record, Record)
        return record

    @property
    def node(self) -> str:
        return self.session.node


def test_a_new_caller_is_welcomed_in_both_languages_then_asked_to_choose() -> None:
    call = Call()
    assert heard(call.events) == [
        "सेवामित्र हेल्पलाइन में आपका स्वागत है।",
        "Welcome to the Sewamitra helpline.",
        "हिंदी के लिए 1 दबाएँ।",
        "For English, press 2.",
    ]
    gather = call.events[-1]
    assert isinstance(gather, Gather)
    assert gather.num_digits == 1


def test_english_plumber_at_226001_books_a_request() -> None:
    call = Call()
    call.press("2")
    assert call.effect() == Effect("send_privacy_notice", {})
    spoken = call.noticed("sent", retention_days="365")
    assert spoken[0].startswith("Before we go on: to serve you, the helpline keeps your phone number")
    assert "until 365 days after your last call" in spoken[0]
    assert spoken[1].startswith("To book a new service, press 1.")
    assert call.press("1")[:3] == ["Please choose a service.", "For Plumber, press 1.", "For Electrician, press 2."]
    assert call.press("1")[0] == "Plumber: the standard visit charge is 200 rupees."
    call.press("226001")
    assert call.effect() == Effect("lookup_pincode", {"pincode": "226001"})
    assert call.outcome("found", district="Lucknow") == [
        "You keyed PIN code two, two, six, zero, zero, one, district Lucknow. "
        "If that is right, press 1. To key it again, press 2."
    ]
    assert call.press("1") == []
    assert call.slot_menu(*TWO_SLOTS) == [
        "When should the worker come?",
        "For today evening, 16:00 to 20:00, press 1.",
        "For tomorrow morning, 08:00 to 12:00, press 2.",
        "For the first worker free, as soon as possible, press 9.",
    ]
    assert call.press("2") == [
        "After the beep, please say your house number, street and a landmark near it, then press hash. "
        "To skip, press hash now."
    ]
    assert call.recording() == Record(max_length=30, timeout=5, finish_on_key="#", beep=True)
    assert call.outcome("recorded", address_recording="recorded") == ["Thank you, your address is recorded."]
    booked = {"service": "plumber", "pincode": "226001", "slot": "2026-12-04/morning", "address_recording": "recorded"}
    assert call.effect() == Effect("create_request", booked)
    words = "tomorrow morning, 08:00 to 12:00"
    spoken = call.outcome("created", request_number="9320413", sms_sent="yes", slot_words=words)
    number = "nine, three, two, zero, four, one, three"
    assert spoken[:4] == [
        f"Thank you. Your request is registered. Your request number is: {number}.",
        f"Once again, your request number is: {number}.",
        "The worker will come tomorrow morning, 08:00 to 12:00.",
        "We are also sending this number to you by SMS.",
    ]
    assert call.session.language == "en"
    assert call.node == "after_request"
    assert call.session.path[:7] == (
        "welcome",
        "language",
        "privacy_notice",
        "first_caller",
        "first_find_your_worker",
        "first_main_menu",
        "service_menu",
    )


UNRECORDED_ASAP = {"service": "plumber", "pincode": "226001", "slot": "", "address_recording": ""}


@pytest.mark.parametrize("outcome", ["empty", "failed"])
def test_an_address_not_recorded_still_books_the_request_and_says_nothing_of_it(outcome: str) -> None:
    call = Call(language="en")
    for keys in ("1", "1", "226001"):
        call.press(keys)
    call.outcome("found", district="Lucknow")
    call.press("1")
    call.slot_menu(*TWO_SLOTS)
    call.press("9")
    turn = call.session.turn
    assert call.outcome(outcome) == []
    assert call.effect() == Effect("create_request", UNRECORDED_ASAP)
    assert call.session.turn == turn + 1  # the recording was the caller's turn: a retry of it is told apart
    assert call.session.vars.get("address_recording") is None


def test_keys_while_the_flow_waits_for_a_recording_change_nothing() -> None:
    call = Call(language="en")
    for keys in ("1", "1", "226001"):
        call.press(keys)
    call.outcome("found", district="Lucknow")
    call.press("1")
    call.slot_menu(*TWO_SLOTS)
    call.press("9")
    waiting = call.session
    assert call.press("1") == []
    assert call.session == waiting


def test_hindi_is_the_default_when_the_caller_keys_nothing() -> None:
    call = Call()
    call.press("")
    spoken = call.noticed("no_sms", retention_days="365")
    assert spoken[0].startswith("आगे बढ़ने से पहले:")  # the privacy notice, in Hindi
    assert spoken[1].startswith("नई सेवा बुक करने के लिए 1 दबाएँ।")
    assert call.session.language == "hi"
    assert call.session.vars["remember_language"] == "yes"


def test_a_caller_new_to_the_helpline_hears_the_menu_without_a_worker_looked_up() -> None:
    call = Call()
    call.press("2")
    spoken = call.outcome("sent", retention_days="365", new_caller="yes")
    assert spoken[0].startswith("Before we go on: to serve you, the helpline keeps your phone number")
    assert spoken[1].startswith("To book a new service, press 1.")
    assert call.node == "first_main_menu"
    assert "first_find_your_worker" not in call.session.path


def test_a_returning_caller_skips_the_language_menu() -> None:
    call = Call(language="en")
    assert heard(call.events)[:2] == [
        "Welcome to the Sewamitra helpline.",
        "To book a new service, press 1. To know about your request, press 2. To speak to an agent, press 3. "
        "To hear what the helpline holds about you, or to have it erased, press 5. "
        "To hear these choices again, press 9.",
    ]
    assert call.node == "main_menu"


def test_a_withheld_caller_hears_the_number_a_third_time_instead_of_an_sms() -> None:
    call = Call(language="en")
    for keys in ("1", "2", "226001"):
        call.press(keys)
    call.outcome("found", district="Lucknow")
    call.press("1")
    call.slot_menu(*TWO_SLOTS)
    call.press("9")
    call.outcome("empty")
    spoken = call.outcome("created", request_number="1234566", sms_sent="no", slot_words="as soon as possible")
    assert spoken[2] == "The worker will come as soon as possible."
    assert spoken[3] == "Please write it down. Your request number is: one, two, three, four, five, six, six."


def test_a_wrong_key_is_explained_and_the_menu_repeated_three_times_then_an_agent() -> None:
    call = Call(language="en")
    assert call.press("7")[:2] == ["Sorry, that is not one of the choices.", heard(call.events)[1]]
    assert call.node == "main_menu"
    assert call.session.tries == {"main_menu": 1}
    call.press("8")
    assert call.session.tries == {"main_menu": 2}
    spoken = call.press("")
    assert spoken == ["Sorry, that is not one of the choices.", "We are connecting you to one of our agents."]
    assert call.effect().name == "agents_available"
    call.outcome("open")
    assert heard(call.events) == ["Please hold; the next available agent will take your call."]
    assert call.events[-1] == Enqueue("helpline")
    assert call.session.status is Status.ENDED


def test_zero_reaches_an_agent_from_any_menu_even_mid_pincode() -> None:
    call = Call(language="hi")
    call.press("1")
    call.press("1")
    assert call.node == "ask_pincode"
    call.press("0")
    assert call.effect().name == "agents_available"


def test_nine_repeats_the_main_menu_without_counting_a_try() -> None:
    call = Call(language="en")
    for _ in range(5):
        assert call.press("9")[0].startswith("To book a new service")
    assert call.session.tries == {}
    assert call.node == "main_menu"


def test_an_unknown_pincode_is_explained_and_asked_again_three_times_at_most() -> None:
    call = Call(language="en")
    call.press("1")
    call.press("1")
    for attempt in (1, 2):
        call.press("999999")
        assert call.outcome("unknown") == [
            "We could not find the PIN code nine, nine, nine, nine, nine, nine.",
            "Please key in the six-digit PIN code of the address where you need the service, then press hash.",
        ]
        assert call.session.tries == {"ask_pincode": attempt}
    call.press("999999")
    assert call.outcome("unknown")[-1] == "We are connecting you to one of our agents."


def test_a_pincode_outside_the_state_is_explained() -> None:
    call = Call(language="en")
    call.press("1")
    call.press("1")
    call.press("110001")
    spoken = call.outcome("outside", district="New Delhi")
    assert spoken[0].startswith("The PIN code one, one, zero, zero, zero, one is in New Delhi district.")
    assert call.node == "ask_pincode"


def test_a_short_pincode_is_refused_without_a_lookup() -> None:
    call = Call(language="en")
    call.press("1")
    call.press("1")
    assert call.press("2260")[0] == "A PIN code has six digits."
    assert call.session.status is Status.WAITING_KEYS
    assert call.node == "ask_pincode"


def test_two_at_the_confirmation_asks_for_the_pincode_again() -> None:
    call = Call(language="en")
    call.press("1")
    call.press("1")
    call.press("226001")
    call.outcome("found", district="Lucknow")
    assert call.press("2") == [
        "Please key in the six-digit PIN code of the address where you need the service, then press hash."
    ]


def test_tracking_reads_the_callers_open_requests() -> None:
    call = Call(language="en")
    call.press("2")
    assert call.effect().name == "find_open_requests"
    requests = [{"number": "9320413", "service": "plumber", "status": "assigned"}]
    spoken = call.outcome("found", requests=requests, request_count="1")
    assert spoken[:2] == [
        "You have 1 open requests.",
        "Request number nine, three, two, zero, four, one, three, Plumber: a worker is assigned.",
    ]


def test_tracking_by_number_when_the_caller_has_none_open() -> None:
    call = Call(language="hi")
    call.press("2")
    assert call.outcome("none") == ["कृपया अपना सात अंकों का अनुरोध नंबर डालें, फिर हैश दबाएँ।"]
    call.press("9320413")
    assert call.effect() == Effect("find_request", {"number": "9320413"})
    spoken = call.outcome("found", number="9320413", service="electrician", status="new")
    assert spoken[0] == "अनुरोध नंबर नौ, तीन, दो, शून्य, चार, एक, तीन, इलेक्ट्रीशियन: दर्ज हो गया है, कारीगर खोजा जा रहा है।"


def test_out_of_hours_a_callback_is_offered_and_recorded() -> None:
    call = Call(language="en")
    call.press("3")
    assert call.outcome("closed")[0].startswith("Our agents are available from 8 in the morning")
    call.press("1")
    assert call.effect().name == "request_callback"
    assert call.outcome("recorded") == [
        "Thank you. An agent will call you back soon.",
        "Thank you for calling the Sewamitra helpline.",
    ]
    assert call.events[-1] == Hangup()


def test_an_input_the_session_is_not_waiting_for_changes_nothing() -> None:
    call = Call(language="en")
    before = call.session
    call.session, call.events = resume(FLOW, call.session, Outcome("found"))
    assert call.session == before
    assert call.events == []


def test_a_session_survives_a_round_trip_through_json() -> None:
    call = Call(language="en")
    call.press("2")
    call.outcome("found", requests=[{"number": "9320413", "service": "plumber", "status": "new"}], request_count="1")
    assert Session.from_dict(call.session.to_dict()) == call.session


def test_the_step_guard_stops_a_flow_that_loops_without_waiting(tmp_path: Path) -> None:
    looping = {
        "flow": "loop",
        "start": "a",
        "max_steps": 10,
        "on_fail": {"goto": "bye"},
        "nodes": {"a": {"goto": "b"}, "b": {"goto": "a"}, "bye": {"say": ["goodbye"], "hangup": True}},
    }
    (tmp_path / "loop.yaml").write_text(yaml.safe_dump(looping), encoding="utf-8")
    flow = definition.load("loop", languages=["hi", "en"], effects=known_effects(), directory=tmp_path)
    session, events = start(flow, Trigger("en"))
    assert heard(events) == ["Thank you for calling the Sewamitra helpline."]
    assert session.status is Status.ENDED


@pytest.mark.parametrize("garbage", ["1' OR 1=1", "१", "12345678901234567890", "*#*#"])
def test_garbage_keys_are_a_wrong_key(garbage: str) -> None:
    call = Call(language="en")
    assert call.press(garbage)[0] == "Sorry, that is not one of the choices."


# -- a caller put through to their worker -------------------------------------------------------------


def test_a_returning_caller_with_a_worker_presses_1_and_the_flow_waits_on_the_dial() -> None:
    session, events = start(FLOW, Trigger("en", {"known_language": "en"}))
    assert events[-1] == Effect("find_worker_to_call", {})
    session, events = resume(
        FLOW,
        session,
        Outcome("found", {"bridge_request": "41", "bridge_number": "9320413", "bridge_status": "assigned"}),
    )
    assert heard(events)[:2] == [
        "Your request nine, three, two, zero, four, one, three: your worker is assigned and on the way.",
        "To speak to your worker, press 1. For the main menu, press any other key.",
    ]
    session, events = resume(FLOW, session, Keys("1"))
    assert heard(events) == ["Connecting you to your worker through the helpline. Please hold."]
    assert events[-1] == Dial("worker", {"request": "41"})
    assert session.status is Status.WAITING_DIAL
    assert pending_dial(FLOW, session) == Dial("worker", {"request": "41"})

    assert resume(FLOW, session, Keys("5")) == (session, [])  # keys are not what a dial waits for
    session, events = resume(FLOW, session, Outcome("busy", {"bridged_seconds": "0"}))
    assert heard(events)[0] == "Your worker's line is busy. Please try again later."
    assert session.node == "main_menu"
    assert pending_dial(FLOW, session) is None


# -- the visit's slot (`pick_slot`, a node group the booking and a reschedule share) ------------------


def at_the_slot_menu() -> Call:
    call = Call(language="en")
    for keys in ("1", "1", "226001"):
        call.press(keys)
    call.outcome("found", district="Lucknow")
    call.press("1")
    assert call.session.vars["slot_for"] == "booking"
    call.slot_menu(*TWO_SLOTS)
    assert call.node == "choose_slot"
    return call


def test_a_key_of_no_slot_hears_the_menu_again_and_the_third_falls_back_to_as_soon_as_possible() -> None:
    call = at_the_slot_menu()
    again = call.press("5")  # two slots: 5 names none
    assert again[:2] == ["Sorry, that is not one of the choices.", "When should the worker come?"]
    assert call.press("")[:2] == ["Sorry, that is not one of the choices.", "When should the worker come?"]
    assert call.press("7")[:3] == [
        "Sorry, that is not one of the choices.",
        "We will send the first worker free, as soon as possible.",
        "After the beep, please say your house number, street and a landmark near it, then press hash. "
        "To skip, press hash now.",
    ]
    call.outcome("empty")
    assert call.effect() == Effect("create_request", UNRECORDED_ASAP)


def test_zero_at_the_slot_menu_still_reaches_an_agent() -> None:
    call = at_the_slot_menu()
    call.press("0")
    assert call.effect().name == "agents_available"


def test_with_no_slot_open_the_caller_is_told_and_booked_as_soon_as_possible() -> None:
    call = Call(language="en")
    for keys in ("1", "1", "226001"):
        call.press(keys)
    call.outcome("found", district="Lucknow")
    call.press("1")
    assert call.effect() == Effect("find_slots", {})
    spoken = call.outcome("none", slot="", slot_words="as soon as possible")
    assert spoken[0] == (
        "No visit times are open for booking now, so the first worker free will come as soon as possible."
    )
    assert call.recording()


def test_the_slot_menu_in_hindi_reads_each_slot() -> None:
    call = Call(language="hi")
    for keys in ("1", "1", "226001"):
        call.press(keys)
    call.outcome("found", district="लखनऊ")
    call.press("1")
    assert call.slot_menu(("2026-12-04/evening", "कल शाम, 16:00 से 20:00 तक")) == [
        "कारीगर कब आए?",
        "कल शाम, 16:00 से 20:00 तक के लिए 1 दबाएँ।",
        "जो कारीगर सबसे पहले खाली हो, जल्द से जल्द, उसके लिए 9 दबाएँ।",
    ]
    call.press("1")
    assert call.session.vars["slot"] == "2026-12-04/evening"
    assert call.session.vars["slot_words"] == "कल शाम, 16:00 से 20:00 तक"
