"""The telephony seam on Plivo: Plivo's webhook forms read into the neutral call types, and the
neutral instructions written as the Plivo XML Plivo documents (as the SDK writes it: test_plivo_xml.py)."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from ivr.instructions import queued_by_app
from telephony.call import (
    Conference,
    Dial,
    DialNumber,
    Enqueue,
    Gather,
    Hangup,
    Instruction,
    Leave,
    Pause,
    Play,
    Redirect,
    Say,
)
from telephony.plivo.xml import PlivoWebhooks

PUBLIC_URL = "https://helpline.example.gov.in"
PLIVO = PlivoWebhooks(PUBLIC_URL)
HINDI = Say("नमस्ते", "hi-IN", "Polly.Aditi")
CALL_UUID = "2f6a1b4c-8d3e-4f5a-9b6c-7d8e9f0a1b2c"


@pytest.mark.parametrize(
    ("instruction", "xml"),
    [
        (HINDI, '<Speak voice="Polly.Aditi" language="hi-IN">नमस्ते</Speak>'),
        (
            Play("/plivo/voice/recordings/hi/welcome.mp3"),
            f"<Play>{PUBLIC_URL}/plivo/voice/recordings/hi/welcome.mp3</Play>",
        ),
        (
            Redirect("/plivo/voice/step?turn=2"),
            f'<Redirect method="POST">{PUBLIC_URL}/plivo/voice/step?turn=2</Redirect>',
        ),
        (Pause(15), '<Wait length="15"/>'),
        (
            Conference(CALL_UUID),
            f'<Conference startConferenceOnEnter="true" endConferenceOnExit="true">{CALL_UUID}</Conference>',
        ),
        (  # a supervisor listening: heard by nobody; the room goes on when they leave
            Conference(CALL_UUID, muted=True, ends_room=False, beep=False),
            f'<Conference muted="true" startConferenceOnEnter="true" endConferenceOnExit="false">'
            f"{CALL_UUID}</Conference>",
        ),
        (Hangup(), "<Hangup/>"),
    ],
)
def test_each_instruction_is_its_plivo_element_with_fully_qualified_urls(instruction: object, xml: str) -> None:
    assert PLIVO.document([instruction]) == f"<Response>{xml}</Response>"  # type: ignore[list-item]


def test_an_agents_recorded_room_records_mp3_and_posts_its_events_to_the_recording_callback() -> None:
    room = Conference(
        CALL_UUID, record=True, recording_callback=f"/plivo/voice/agent/recorded?agent=7&call={CALL_UUID}"
    )
    assert PLIVO.document([room]) == (
        '<Response><Conference startConferenceOnEnter="true" endConferenceOnExit="true" record="true" '
        f'recordFileFormat="mp3" callbackUrl="{PUBLIC_URL}/plivo/voice/agent/recorded?agent=7&amp;call={CALL_UUID}" '
        f'callbackMethod="POST">{CALL_UUID}</Conference></Response>'
    )


@pytest.mark.parametrize(
    "form",
    [
        {"ConferenceAction": "record", "RecordingID": CALL_UUID, "RecordUrl": "https://media.plivo.com/r.mp3"},
        {"recording_id": CALL_UUID, "record_url": "https://media.plivo.com/r.mp3", "recording_duration": "12"},
    ],
    ids=["the room's callbackUrl", "the record API's callback_url"],
)
def test_a_rooms_recording_is_read_from_the_xml_callback_and_from_the_record_apis_callback(
    form: dict[str, str],
) -> None:
    made = PLIVO.recording(form)
    assert (made.recording_id, made.url) == (CALL_UUID, "https://media.plivo.com/r.mp3")


def test_a_bridged_call_is_a_dial_of_the_number_as_plivo_writes_numbers_with_our_caller_id_and_time_limit() -> None:
    dial = DialNumber("+919876543210", "+918035350100", "/plivo/voice/dialled?turn=3", time_limit=900)
    assert PLIVO.document([dial]) == (
        f'<Response><Dial action="{PUBLIC_URL}/plivo/voice/dialled?turn=3" method="POST" timeLimit="900" '
        'timeout="30" callerId="918035350100" redirect="true"><Number>919876543210</Number></Dial></Response>'
    )


@pytest.mark.parametrize(
    ("status", "duration", "heard"),
    [
        ("completed", "95", "completed"),
        ("busy", "", "busy"),
        ("no-answer", "", "no-answer"),
        ("timeout", "", "no-answer"),  # Plivo's other word for a phone nobody picked up
        ("failed", "", "failed"),
    ],
)
def test_the_dials_action_says_how_it_ended_and_how_long_the_b_leg_lasted(
    status: str, duration: str, heard: str
) -> None:
    form = {"CallUUID": CALL_UUID, "DialStatus": status, "DialALegUUID": CALL_UUID, "DialRingStatus": "true"}
    turn = PLIVO.call_turn(form | ({"DialBLegDuration": duration} if duration else {}))
    assert (turn.dial_status, turn.dial_duration) == (heard, duration)


def test_a_flow_wait_is_getdigits_with_its_prompts_inside_and_the_redirect_after_it_for_silence() -> None:
    wait = Gather((HINDI,), "/plivo/voice/step?turn=1", timeout=6, finish_on_key="#", num_digits=6)
    root = ElementTree.fromstring(PLIVO.document([wait, Redirect("/plivo/voice/step?turn=1")]))
    digits, after = list(root)
    assert digits.tag == "GetDigits"
    assert digits.attrib == {
        "action": f"{PUBLIC_URL}/plivo/voice/step?turn=1",
        "method": "POST",
        "timeout": "6",
        "digitTimeout": "6",  # Plivo's own default is 2 s between keys: too short for a PIN code
        "finishOnKey": "#",
        "numDigits": "6",
        "retries": "1",
        "redirect": "true",
    }
    assert [child.tag for child in digits] == ["Speak"]
    assert (after.tag, after.text) == ("Redirect", f"{PUBLIC_URL}/plivo/voice/step?turn=1")


def test_a_wait_without_a_finish_key_says_none() -> None:
    wait = Gather((HINDI,), "/plivo/voice/queue/key", timeout=8, finish_on_key="", num_digits=1)
    [digits] = ElementTree.fromstring(PLIVO.document([wait]))
    assert digits.get("finishOnKey") == "none"


@pytest.mark.parametrize("verb", [Enqueue("helpline", "/w", "/r"), Leave(), Dial("helpline", "/b", "/d", 20)])
def test_queue_verbs_have_no_plivo_xml(verb: object) -> None:
    with pytest.raises(ValueError, match="no Plivo XML"):
        PLIVO.document([verb])  # type: ignore[list-item]


def test_the_helpline_keeps_the_queue_on_plivo() -> None:
    said: list[Instruction] = [
        HINDI,
        Enqueue("helpline", "/plivo/voice/queue/wait", "/plivo/voice/queue/result"),
        Hangup(),
    ]
    assert queued_by_app(said, "/plivo/voice") == [HINDI, Redirect("/plivo/voice/queue/wait")]
    assert queued_by_app([Leave()], "/plivo/voice") == [Redirect("/plivo/voice/queue/result?result=leave")]
    assert not PLIVO.queues


def test_text_that_looks_like_xml_is_only_text() -> None:
    root = ElementTree.fromstring(PLIVO.document([Say("</Speak><Hangup/>", "en-IN", "Polly.Raveena")]))
    assert [child.tag for child in root] == ["Speak"]


def test_a_call_webhook_is_read_into_a_call_turn() -> None:
    form = {
        "CallUUID": CALL_UUID,
        "From": "919876543210",
        "To": "918035350100",
        "Direction": "inbound",
        "CallStatus": "completed",
        "Digits": "226001",
        "Duration": "74",
        "BillDuration": "120",
        "HangupCause": "NORMAL_CLEARING",
    }
    turn = PLIVO.call_turn(form)
    assert (turn.call_id, turn.caller, turn.callee, turn.party) == (
        CALL_UUID,
        "+919876543210",
        "+918035350100",
        "+919876543210",
    )
    assert (turn.inbound, turn.outbound, turn.digits) == (True, False, "226001")
    assert (turn.status, turn.duration, turn.hangup_cause) == ("completed", "74", "NORMAL_CLEARING")


def test_an_outbound_call_that_timed_out_is_unanswered() -> None:
    turn = PLIVO.call_turn({"CallUUID": CALL_UUID, "Direction": "outbound", "CallStatus": "timeout", "To": "9198"})
    assert (turn.outbound, turn.inbound, turn.status) == (True, False, "no-answer")


def test_a_form_missing_every_field_is_a_turn_of_empty_text() -> None:
    turn = PLIVO.call_turn({})
    assert (turn.call_id, turn.caller, turn.digits, turn.status) == ("", "", "", "")


def test_sms_webhooks_are_read_into_messages_and_delivery_reports() -> None:
    message = PLIVO.inbound_message({"MessageUUID": CALL_UUID, "From": "919812345678", "Text": "YES", "Type": "sms"})
    assert (message.message_id, message.sender, message.body) == (CALL_UUID, "+919812345678", "YES")
    report = PLIVO.delivery_report({"MessageUUID": CALL_UUID, "Status": "rejected", "ErrorCode": "450"})
    assert (report.message_id, report.status, report.error_code) == (CALL_UUID, "failed", "450")
    assert PLIVO.message_reply() == "<Response/>"


def test_a_room_member_coaching_another_is_not_plivo_xml_and_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot coach"):
        PLIVO.document([Conference(CALL_UUID, coach="0b5c2f14-4e8c-4a8e-9d31-1b7c0f6f2a10")])
