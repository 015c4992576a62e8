"""The helpline writes TwiML itself, as text: held here, character for character, to the document the
SDK's `VoiceResponse` writes for the same instructions, whatever their text, URLs and numbers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.twiml.voice_response import VoiceResponse

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
    Record,
    Redirect,
    Say,
)
from telephony.twilio.twiml import document
from tests import documents


def sdk_document(instructions: list[Instruction]) -> str:
    """The document as the SDK's verbs write it, each given what the helpline's rules give it."""
    response = VoiceResponse()
    for instruction in instructions:
        SDK[type(instruction)](response, instruction)
    return str(response)


def sdk_gather(parent: Any, gather: Gather) -> None:
    options: dict[str, object] = {
        "action": gather.action,
        "method": "POST",
        "timeout": gather.timeout,
        "finish_on_key": gather.finish_on_key,
    }
    if gather.on_empty:
        options["action_on_empty_result"] = True
    if gather.num_digits:
        options["num_digits"] = gather.num_digits
    verb = parent.gather(**options)
    for prompt in gather.prompts:
        SDK[type(prompt)](verb, prompt)


def sdk_record(parent: Any, record: Record) -> None:
    parent.record(
        action=record.action,
        method="POST",
        max_length=record.max_length,
        timeout=record.timeout,
        finish_on_key=record.finish_on_key,
        play_beep=record.beep,
    )


def sdk_dial(parent: Any, dial: Dial) -> None:
    parent.dial(action=dial.action, method="POST", timeout=dial.timeout).queue(
        dial.queue, url=dial.bridge_url, method="POST"
    )


def sdk_dial_number(parent: Any, dial: DialNumber) -> None:
    recorded: dict[str, str] = {}
    if dial.recording_callback:
        recorded = {
            "record": "record-from-answer",
            "recording_status_callback": dial.recording_callback,
            "recording_status_callback_event": "completed",
            "recording_status_callback_method": "POST",
        }
    verb = parent.dial(
        action=dial.action,
        method="POST",
        caller_id=dial.caller_id,
        time_limit=dial.time_limit,
        timeout=dial.timeout,
        **recorded,
    )
    verb.number(dial.number)


def sdk_conference(parent: Any, conference: Conference) -> None:
    extra: dict[str, Any] = {"muted": True} if conference.muted else {}
    if conference.coach:
        extra["coach"] = conference.coach
    if not conference.beep:
        extra["beep"] = False
    if conference.record:
        extra["record"] = "record-from-start"
    if conference.record and conference.recording_callback:
        extra |= {
            "recording_status_callback": conference.recording_callback,
            "recording_status_callback_event": "completed",
            "recording_status_callback_method": "POST",
        }
    parent.dial().conference(conference.room, end_conference_on_exit=conference.ends_room, **extra)


SDK: dict[type, Callable[[Any, Any], Any]] = {
    Say: lambda parent, say: parent.say(say.text, language=say.language, voice=say.voice),
    Play: lambda parent, play: parent.play(play.url),
    Gather: sdk_gather,
    Record: sdk_record,
    Redirect: lambda parent, redirect: parent.redirect(redirect.url, method="POST"),
    Enqueue: lambda parent, enqueue: parent.enqueue(
        enqueue.queue, action=enqueue.action, method="POST", wait_url=enqueue.wait_url, wait_url_method="POST"
    ),
    Leave: lambda parent, leave: parent.leave(),
    Pause: lambda parent, pause: parent.pause(length=pause.seconds),
    Hangup: lambda parent, hangup: parent.hangup(),
    Dial: sdk_dial,
    DialNumber: sdk_dial_number,
    Conference: sdk_conference,
}


instructions = st.one_of(
    documents.common,
    st.builds(Enqueue, documents.texts, documents.paths, documents.paths),
    st.just(Leave()),
    st.builds(Dial, documents.texts, documents.paths, documents.paths, documents.seconds),
    st.builds(
        Conference,
        documents.texts,
        muted=st.booleans(),
        coach=st.just("") | documents.texts,
        ends_room=st.booleans(),
        beep=st.booleans(),
        record=st.booleans(),
        recording_callback=st.none() | documents.paths,
    ),
)


@given(st.lists(instructions, max_size=6))
def test_any_instructions_are_the_document_the_sdk_writes(said: list[Instruction]) -> None:
    assert document(said) == sdk_document(said)


@pytest.mark.parametrize(
    "said",
    [
        [],
        [Say("", "en-IN", "Polly.Kajal-Neural"), Play(""), Redirect("")],  # no text: an empty element
        [Say('a & b < c > "d"\r\n\t', "hi-IN", 'x"y'), Redirect('/s?a=1&b="2"\n')],
        [Gather((), "/twilio/voice/step?turn=1", 6, "#", None, on_empty=True)],
    ],
)
def test_the_edges_of_the_sdks_document(said: list[Instruction]) -> None:
    assert document(said) == sdk_document(said)
