"""The simulated caller on Plivo runs Plivo XML by Plivo's documented rules (GetDigits, Speak, Play,
Wait, Redirect, Conference, Hangup, the hangup callback) against a tiny helpline that checks each
request with the `plivo` SDK's own V3 validation."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
from flask import Flask, Response, request
from plivo.utils.signature_v3 import validate_v3_signature

from devtools.plivo_simulator import NONCE_HEADER, SIGNATURE_HEADER, PlivoCallSimulator, plivo_headers
from devtools.simulator import Bridged, Callee, Dialed, FlaskTransport, Heard, Paused, Rang, Silence, Talked, Transcript
from tests.calls import Line

AUTH_TOKEN = "plivo-test-token-0123456789"
PUBLIC_URL = "https://helpline.example.gov.in"
VOICE, STATUS = "/plivo/voice", "/plivo/voice/status"

Page = str | Callable[[dict[str, str]], str]


def xml(elements: str) -> str:
    return f"<Response>{elements}</Response>"


def helpline(pages: dict[str, Page]) -> Flask:
    """A helpline answering `pages` by path, refusing (403) what Plivo did not sign for PUBLIC_URL."""
    app = Flask("tiny_plivo_helpline")
    pages = {STATUS: "", **pages}

    @app.route("/<path:path>", methods=["POST"])
    def answer(path: str) -> Response:
        query = request.query_string.decode()
        url = PUBLIC_URL + request.path + (f"?{query}" if query else "")
        nonce, signature = request.headers.get(NONCE_HEADER, ""), request.headers.get(SIGNATURE_HEADER, "")
        if not validate_v3_signature("POST", url, nonce, AUTH_TOKEN, signature, dict(request.form.items())):
            return Response("invalid Plivo signature", status=403)
        page = pages[request.path]
        body = page if isinstance(page, str) else page(dict(request.form.items()))
        return Response(body, mimetype="application/xml")

    return app


def call(pages: dict[str, Page], keys: Iterable[str] = (), callee: Callee | None = None) -> Transcript:
    transport = FlaskTransport(helpline(pages).test_client(), PUBLIC_URL, AUTH_TOKEN, sign=plivo_headers)
    simulator = PlivoCallSimulator(
        transport, public_url=PUBLIC_URL, from_number="+919876543210", callee=callee or Callee()
    )
    return simulator.run(keys)


def posted_to(transcript: Transcript, path: str) -> list[dict[str, str]]:
    return [r.form for r in transcript.requests if r.url.split("?")[0] == PUBLIC_URL + path]


def menu(form: dict[str, str]) -> str:
    if "Digits" in form:
        return xml(f"<Speak>You chose {form['Digits']}</Speak><Hangup/>")
    prompt = '<Speak language="hi-IN" voice="WOMAN">1 ya 2</Speak>'
    digits = f'<GetDigits action="{PUBLIC_URL}{VOICE}" numDigits="1">{prompt}</GetDigits>'
    return xml(digits + "<Speak>We did not hear you</Speak><Hangup/>")


def test_keys_go_to_the_action_signed_as_plivo_signs_with_plivos_parameters() -> None:
    transcript = call({VOICE: menu}, ["2"])
    assert transcript.heard == ["1 ya 2", "You chose 2"], transcript.render()
    assert transcript.events[1] == Heard("1 ya 2", "hi-IN", "WOMAN")
    first, keyed = posted_to(transcript, VOICE)
    assert (first["From"], first["Direction"], first["CallUUID"]) == ("919876543210", "inbound", transcript.call_sid)
    assert keyed["Digits"] == "2"
    assert transcript.errors == []


def test_silence_goes_on_to_the_next_element_without_posting_to_the_action() -> None:
    transcript = call({VOICE: menu}, ["-"])
    assert transcript.heard == ["1 ya 2", "We did not hear you"], transcript.render()
    assert Silence(5) in transcript.events
    assert len(posted_to(transcript, VOICE)) == 1


def test_the_finish_key_ends_the_digits_and_digit_timeout_ends_them_otherwise() -> None:
    def pin(form: dict[str, str]) -> str:
        if "Digits" in form:
            return xml(f"<Speak>PIN {form['Digits']}</Speak>")
        return xml(f'<GetDigits action="{PUBLIC_URL}{VOICE}" digitTimeout="3"><Speak>PIN</Speak></GetDigits>')

    assert call({VOICE: pin}, ["226001#"]).said("PIN 226001")
    waited = call({VOICE: pin}, ["226001"])
    assert waited.said("PIN 226001")
    assert waited.duration > call({VOICE: pin}, ["226001#"]).duration  # the 3 s between keys waited out


def test_a_redirect_must_be_a_fully_qualified_url() -> None:
    pages: dict[str, Page] = {VOICE: xml("<Redirect>/plivo/voice/step</Redirect>"), "/plivo/voice/fallback": ""}
    transcript = call(pages)
    assert any("fully qualified URL" in failure.message for failure in transcript.errors)


def test_wait_and_a_conference_then_the_next_element_and_the_hangup_callback() -> None:
    pages: dict[str, Page] = {VOICE: xml('<Wait length="3"/><Conference>room-9</Conference><Speak>Bye</Speak>')}
    transcript = call(pages)
    assert [Paused(3), Dialed("room-9", "conference"), Bridged()] == [
        e for e in transcript.events if isinstance(e, Paused | Dialed | Bridged)
    ]
    assert transcript.heard == ["Bye"]
    [hangup] = posted_to(transcript, STATUS)
    assert (hangup["CallStatus"], hangup["HangupCause"]) == ("completed", "NORMAL_CLEARING")
    assert hangup["Duration"] == str(transcript.duration)


def test_a_recorded_conference_posts_its_recording_to_the_callback_url_when_the_room_ends() -> None:
    room = f'<Conference record="true" callbackUrl="{PUBLIC_URL}/plivo/rec" callbackMethod="POST">room-9</Conference>'
    transcript = call({VOICE: xml(room + "<Speak>Bye</Speak>"), "/plivo/rec": ""})
    assert not transcript.errors, transcript.render(requests=True)
    events = posted_to(transcript, "/plivo/rec")  # the room's one callback: the member's entry and exit too
    assert [e["ConferenceAction"] for e in events] == ["enter", "exit", "record"]
    made = events[-1]
    assert (made["ConferenceName"], made["RecordingDuration"]) == ("room-9", "60")
    assert made["RecordUrl"].endswith(f"/Recording/{made['RecordingID']}.mp3")
    assert transcript.heard == ["Bye"]


def test_a_conference_not_recorded_posts_no_recording() -> None:
    room = f'<Conference callbackUrl="{PUBLIC_URL}/plivo/rec">room-9</Conference>'
    events = posted_to(call({VOICE: xml(room), "/plivo/rec": ""}), "/plivo/rec")
    assert [e["ConferenceAction"] for e in events] == ["enter", "exit"]


def dial_pages(attributes: str) -> dict[str, Page]:
    number = "<Number>919415000001</Number>"
    dial = f'<Dial action="{PUBLIC_URL}/plivo/dialled" {attributes}>{number}</Dial><Speak>unreachable</Speak>'
    said = "<Speak>{DialStatus} {DialBLegDuration}</Speak>"
    return {VOICE: xml(dial), "/plivo/dialled": lambda form: xml(said.format_map({"DialBLegDuration": "-", **form}))}


def test_a_dialled_number_rings_with_the_caller_id_and_talks_until_the_time_limit() -> None:
    transcript = call(dial_pages('callerId="918035350100" timeLimit="900"'), callee=Callee("completed", talks=1200))
    assert [e for e in transcript.events if isinstance(e, Rang | Talked)] == [
        Rang("919415000001", "918035350100"),
        Talked("completed", 900, 900),
    ]
    assert transcript.heard == ["completed 900"]
    [action] = posted_to(transcript, "/plivo/dialled")
    assert (action["DialRingStatus"], action["DialHangupCause"]) == ("true", "NORMAL_CLEARING")
    assert action["DialALegUUID"] == transcript.call_sid
    assert action["DialBLegUUID"]


@pytest.mark.parametrize(("answers", "cause"), [("no-answer", "NO_ANSWER"), ("busy", "USER_BUSY")])
def test_a_dialled_phone_that_does_not_connect_has_no_b_leg(answers: str, cause: str) -> None:
    transcript = call(dial_pages('timeout="20"'), callee=Callee(answers))  # type: ignore[arg-type]
    assert transcript.heard == [f"{answers} -"]
    [action] = posted_to(transcript, "/plivo/dialled")
    assert (action["DialHangupCause"], action["DialBLegUUID"]) == (cause, "")


def test_a_dial_action_must_be_a_fully_qualified_url() -> None:
    transcript = call({VOICE: xml('<Dial action="/plivo/dialled"><Number>919415000001</Number></Dial>')})
    assert any("Dial action needs a fully qualified URL" in f.message for f in transcript.errors)


def test_an_element_plivo_does_not_know_is_an_error() -> None:
    transcript = call({VOICE: xml("<Enqueue>helpline</Enqueue>")})
    assert [f.message for f in transcript.errors] == ["Plivo: <Enqueue> is not a Plivo XML element"]


def test_a_request_signed_with_another_token_is_refused() -> None:
    headers = plivo_headers("another-token", PUBLIC_URL + VOICE, {"CallUUID": "x"})
    answer = helpline({VOICE: menu}).test_client().post(VOICE, data={"CallUUID": "x"}, headers=headers)
    assert answer.status_code == 403


def test_a_transfer_cuts_into_the_xml_before_its_next_element() -> None:
    """plivo.com/docs/voice/api/call/transfer-a-call: the live call fetches and runs the XML at
    aleg_url; what was left of its XML is not run."""
    waiting: dict[str, str] = {}
    call_uuid = "11111111-1111-4111-8111-111111111111"

    def transferred() -> None:
        waiting[call_uuid] = f"{PUBLIC_URL}/plivo/elsewhere"

    pages: dict[str, Page] = {VOICE: menu, "/plivo/elsewhere": xml("<Speak>Moved along</Speak>")}
    transport = FlaskTransport(helpline(pages).test_client(), PUBLIC_URL, AUTH_TOKEN, sign=plivo_headers)
    simulator = PlivoCallSimulator(
        transport, public_url=PUBLIC_URL, call_sid=call_uuid, moved=lambda call: waiting.pop(call, None)
    )
    transcript = simulator.run(Line(transferred, "-"))  # the caller keeps silent at the prompt meanwhile
    assert transcript.heard == ["1 ya 2", "Moved along"], transcript.render()
    assert posted_to(transcript, "/plivo/elsewhere")[0]["CallUUID"] == call_uuid
    assert transcript.errors == []
