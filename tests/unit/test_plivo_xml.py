"""The helpline writes Plivo XML itself, as text: held here, character for character, to the document
the SDK's builders (`plivo.plivoxml`, on lxml) write for the same instructions, whatever their text,
URLs and numbers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plivo import plivoxml

from telephony.call import Conference, DialNumber, Gather, Hangup, Instruction, Pause, Play, Record, Redirect, Say
from telephony.plivo.xml import GETDIGITS_RETRIES, PlivoWebhooks
from tests import documents

PLIVO = PlivoWebhooks("https://helpline.example.gov.in")


def sdk_document(platform: PlivoWebhooks, instructions: list[Instruction]) -> str:
    """The document as the SDK's builders write it, each element given what the helpline's rules give it."""
    response = plivoxml.ResponseElement()
    for instruction in instructions:
        if isinstance(instruction, DialNumber) and instruction.recording_callback:
            response.add(
                plivoxml.RecordElement(
                    start_on_dial_answer=True,
                    redirect=False,
                    max_length=instruction.time_limit,
                    callback_url=platform.url(instruction.recording_callback),
                    callback_method="POST",
                )
            )
        response.add(sdk_element(platform, instruction))
    return str(response.to_string(pretty=False))


def sdk_element(platform: PlivoWebhooks, instruction: Any) -> Any:
    return SDK[type(instruction)](platform.url, instruction)


def sdk_get_digits(url: Callable[[str], str], gather: Gather) -> Any:
    element = plivoxml.GetDigitsElement(
        action=url(gather.action),
        method="POST",
        timeout=gather.timeout,
        digit_timeout=gather.timeout,
        finish_on_key=gather.finish_on_key or "none",
        num_digits=gather.num_digits,
        retries=GETDIGITS_RETRIES,
        redirect=True,
    )
    for prompt in gather.prompts:
        element.add(SDK[type(prompt)](url, prompt))
    return element


def sdk_record(url: Callable[[str], str], record: Record) -> Any:
    return plivoxml.RecordElement(
        action=url(record.action),
        method="POST",
        max_length=record.max_length,
        timeout=record.timeout,
        finish_on_key=record.finish_on_key,
        play_beep=record.beep,
        redirect=True,
    )


def sdk_dial(url: Callable[[str], str], dial: DialNumber) -> Any:
    element = plivoxml.DialElement(
        action=url(dial.action),
        method="POST",
        caller_id=dial.caller_id.removeprefix("+"),
        time_limit=dial.time_limit,
        timeout=dial.timeout,
        redirect=True,
    )
    return element.add(plivoxml.NumberElement(dial.number.removeprefix("+")))


def sdk_conference(url: Callable[[str], str], conference: Conference) -> Any:
    options: dict[str, Any] = {"record": True, "record_file_format": "mp3"} if conference.record else {}
    callback = conference.callback or (conference.recording_callback if conference.record else None)
    if callback:
        options |= {"callback_url": url(callback), "callback_method": "POST"}
    return plivoxml.ConferenceElement(
        conference.room,
        muted=conference.muted or None,
        start_conference_on_enter=True,
        end_conference_on_exit=conference.ends_room,
        **options,
    )


SDK: dict[type, Callable[[Callable[[str], str], Any], Any]] = {
    Say: lambda url, say: plivoxml.SpeakElement(say.text, voice=say.voice, language=say.language),
    Play: lambda url, play: plivoxml.PlayElement(url(play.url)),
    Gather: sdk_get_digits,
    Record: sdk_record,
    Redirect: lambda url, redirect: plivoxml.RedirectElement(url(redirect.url), method="POST"),
    Pause: lambda url, pause: plivoxml.WaitElement(length=pause.seconds),
    Hangup: lambda url, hangup: plivoxml.HangupElement(),
    DialNumber: sdk_dial,
    Conference: sdk_conference,
}


instructions = st.one_of(
    documents.common,
    st.builds(
        Conference,
        documents.texts,
        muted=st.booleans(),
        ends_room=st.booleans(),
        beep=st.booleans(),
        callback=st.none() | documents.paths,
        record=st.booleans(),
        recording_callback=st.none() | documents.paths,
    ),
)


def outcome(write: Any, *args: Any) -> str | type[BaseException]:
    try:
        return str(write(*args))
    except ValueError:  # a character XML cannot hold: refused by both
        return ValueError


@given(st.lists(instructions, max_size=6))
def test_any_instructions_are_the_document_the_sdk_writes(said: list[Instruction]) -> None:
    assert outcome(PLIVO.document, said) == outcome(sdk_document, PLIVO, said)


@pytest.mark.parametrize("character", ["\x00", "\x08", "\x0b", "\x1f", "\ud800", "\ufffe", "\uffff"])
def test_a_character_xml_cannot_hold_is_refused_as_the_sdk_refuses_it(character: str) -> None:
    for said in ([Say(f"a{character}", "en-IN", "Polly.Raveena")], [Redirect(f"/plivo/voice/step?x={character}")]):
        assert outcome(PLIVO.document, said) is ValueError
        assert outcome(sdk_document, PLIVO, said) is ValueError


def test_an_sms_reply_is_the_empty_response_the_sdk_writes() -> None:
    assert PLIVO.message_reply() == plivoxml.ResponseElement().to_string(pretty=False)
    assert PLIVO.document([]) == PLIVO.message_reply()
