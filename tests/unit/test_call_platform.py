"""The telephony seam for calls: Twilio's webhook forms read into the neutral call types, and the
neutral instructions written as the TwiML Twilio documents."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from core.settings import Settings
from telephony import call_platform
from telephony.call import (
    CallTurn,
    Conference,
    DeliveryReport,
    Dial,
    DialNumber,
    Enqueue,
    Gather,
    Hangup,
    InboundMessage,
    Leave,
    Pause,
    Play,
    Redirect,
    Say,
)
from telephony.twilio.twiml import TwilioWebhooks

XML = '<?xml version="1.0" encoding="UTF-8"?>'
TWILIO = TwilioWebhooks()
HINDI = Say("नमस्ते", "hi-IN", "Polly.Aditi")


@pytest.mark.parametrize(
    ("instruction", "twiml"),
    [
        (HINDI, '<Say language="hi-IN" voice="Polly.Aditi">नमस्ते</Say>'),
        (Play("/twilio/voice/recordings/hi/welcome.mp3"), "<Play>/twilio/voice/recordings/hi/welcome.mp3</Play>"),
        (Redirect("/twilio/voice/step?turn=2"), '<Redirect method="POST">/twilio/voice/step?turn=2</Redirect>'),
        (
            Enqueue("helpline", wait_url="/twilio/voice/queue/wait", action="/twilio/voice/queue/result"),
            '<Enqueue action="/twilio/voice/queue/result" method="POST" waitUrl="/twilio/voice/queue/wait" '
            'waitUrlMethod="POST">helpline</Enqueue>',
        ),
        (Leave(), "<Leave />"),
        (Conference("room-1"), '<Dial><Conference endConferenceOnExit="true">room-1</Conference></Dial>'),
        (  # a supervisor listening: heard by nobody, and the room goes on without them, unannounced
            Conference("room-1", muted=True, ends_room=False, beep=False),
            '<Dial><Conference beep="false" endConferenceOnExit="false" muted="true">room-1</Conference></Dial>',
        ),
        (  # a supervisor whispering: only the agent's leg hears them
            Conference("room-1", coach="CA" + "a" * 32, ends_room=False, beep=False),
            f'<Dial><Conference beep="false" coach="CA{"a" * 32}" endConferenceOnExit="false">'
            "room-1</Conference></Dial>",
        ),
        (Pause(15), '<Pause length="15" />'),
        (Hangup(), "<Hangup />"),
        (
            Dial(
                "helpline",
                bridge_url="/twilio/voice/agent/bridging?user=3",
                action="/twilio/voice/agent/done",
                timeout=20,
            ),
            '<Dial action="/twilio/voice/agent/done" method="POST" timeout="20">'
            '<Queue method="POST" url="/twilio/voice/agent/bridging?user=3">helpline</Queue></Dial>',
        ),
    ],
)
def test_each_instruction_is_its_twiml_verb(instruction: object, twiml: str) -> None:
    assert TWILIO.document([instruction]) == f"{XML}<Response>{twiml}</Response>"  # type: ignore[list-item]


def test_a_bridged_call_is_a_dial_of_the_number_with_our_caller_id_and_its_time_limit() -> None:
    dial = DialNumber("+919876543210", "+18005550100", "/twilio/voice/dialled?turn=3", time_limit=900)
    assert TWILIO.document([dial]) == (
        f'{XML}<Response><Dial action="/twilio/voice/dialled?turn=3" callerId="+18005550100" method="POST" '
        'timeLimit="900" timeout="30"><Number>+919876543210</Number></Dial></Response>'
    )


@pytest.mark.parametrize(
    ("status", "duration"), [("completed", "95"), ("busy", ""), ("no-answer", ""), ("failed", ""), ("canceled", "")]
)
def test_the_dials_action_says_how_it_ended_and_how_long_it_lasted(status: str, duration: str) -> None:
    form = {"CallSid": "CA" + "1" * 32, "DialCallStatus": status, "DialCallSid": "CA" + "2" * 32}
    turn = TWILIO.call_turn(form | ({"DialCallDuration": duration} if duration else {}))
    assert (turn.dial_status, turn.dial_duration) == (status, duration)


def test_a_flow_wait_goes_to_its_action_even_after_silence_and_speaks_its_prompts_inside() -> None:
    wait = Gather((HINDI, Play("/r.mp3")), "/twilio/voice/step?turn=1", timeout=5, finish_on_key="#", on_empty=True)
    assert TWILIO.document([wait, Redirect("/twilio/voice/step?turn=1")]) == (
        f'{XML}<Response><Gather action="/twilio/voice/step?turn=1" actionOnEmptyResult="true" finishOnKey="#" '
        'method="POST" timeout="5"><Say language="hi-IN" voice="Polly.Aditi">नमस्ते</Say><Play>/r.mp3</Play>'
        '</Gather><Redirect method="POST">/twilio/voice/step?turn=1</Redirect></Response>'
    )


def test_a_one_key_wait_without_action_on_silence() -> None:
    wait = Gather((HINDI,), "/twilio/voice/queue/key", timeout=8, finish_on_key="", num_digits=1)
    assert TWILIO.document([wait]) == (
        f'{XML}<Response><Gather action="/twilio/voice/queue/key" finishOnKey="" method="POST" numDigits="1" '
        'timeout="8"><Say language="hi-IN" voice="Polly.Aditi">नमस्ते</Say></Gather></Response>'
    )


def test_nothing_to_do_is_an_empty_response_and_an_sms_gets_an_empty_reply() -> None:
    assert TWILIO.document([]) == f"{XML}<Response />"
    assert TWILIO.message_reply() == f"{XML}<Response />"
    assert TWILIO.mimetype == "text/xml"


def test_text_that_looks_like_twiml_is_only_text() -> None:
    hostile = Say('</Say><Dial>+15550100</Dial> & "quotes"', "en-IN", "Polly.Raveena")
    response = ElementTree.fromstring(TWILIO.document([hostile]).removeprefix(XML))
    assert [e.tag for e in response] == ["Say"]
    assert response[0].text == hostile.text


def test_a_call_webhook_is_read_into_a_call_turn() -> None:
    form = {
        "CallSid": "CA" + "a" * 32,
        "From": "+919876543210",
        "To": "+911204567890",
        "Direction": "inbound",
        "Digits": "12#",
        "CallStatus": "in-progress",
        "CallDuration": "40",
        "QueuePosition": "2",
        "QueueResult": "leave",
        "QueueTime": "33",
        "DialCallStatus": "completed",
        "ErrorUrl": "https://example.org/twilio/voice/step?turn=1",
        "AccountSid": "AC" + "b" * 32,
    }
    assert TWILIO.call_turn(form) == CallTurn(
        call_id="CA" + "a" * 32,
        caller="+919876543210",
        callee="+911204567890",
        outbound=False,
        inbound=True,
        digits="12#",
        status="in-progress",
        duration="40",
        queue_position="2",
        queue_result="leave",
        queue_time="33",
        dial_status="completed",
        failed_url="https://example.org/twilio/voice/step?turn=1",
    )


@pytest.mark.parametrize(
    ("direction", "outbound", "inbound", "party"),
    [
        ("inbound", False, True, "+919876543210"),
        (None, False, True, "+919876543210"),  # no Direction: a caller ringing in, as before
        ("outbound-api", True, False, "+911204567890"),  # we rang them: the party is who we rang
        ("outbound-dial", True, False, "+911204567890"),
        ("sideways", False, False, "+919876543210"),  # neither: no callback is promised to it
    ],
)
def test_which_way_a_call_goes(direction: str | None, outbound: bool, inbound: bool, party: str) -> None:
    form = {"CallSid": "CA" + "a" * 32, "From": "+919876543210", "To": "+911204567890"}
    if direction is not None:
        form["Direction"] = direction
    turn = TWILIO.call_turn(form)
    assert (turn.outbound, turn.inbound, turn.party) == (outbound, inbound, party)


def test_a_form_missing_every_field_is_a_turn_of_empty_text() -> None:
    turn = TWILIO.call_turn({})
    assert (turn.call_id, turn.caller, turn.callee, turn.digits, turn.status, turn.queue_position) == ("",) * 6


def test_sms_webhooks_are_read_into_messages_and_delivery_reports() -> None:
    inbound = {"MessageSid": "SM" + "c" * 32, "From": "+919876543210", "Body": "हाँ 1", "To": "+911204567890"}
    assert TWILIO.inbound_message(inbound) == InboundMessage("SM" + "c" * 32, "+919876543210", "हाँ 1")
    status = {"MessageSid": "SM" + "c" * 32, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert TWILIO.delivery_report(status) == DeliveryReport("SM" + "c" * 32, "undelivered", "30003")
    assert TWILIO.delivery_report({}) == DeliveryReport("", "", "")


def test_the_configured_platform_is_twilio(settings: Settings) -> None:
    assert isinstance(call_platform(settings), TwilioWebhooks)
