"""The call simulator keeps Twilio's rules: each test is a call to a tiny helpline written here.

The tiny helplines check every request's signature with Twilio's own RequestValidator over the
public URL, exactly as ours does, so every green call also proves the simulator signs like Twilio.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from email.utils import parsedate_to_datetime

import pytest
from flask import Flask, Response, request
from twilio.request_validator import RequestValidator

from devtools.simulator import (
    APPLICATION_ERROR,
    DEFAULT_HOLD_MUSIC,
    Bridged,
    Callee,
    CallSetup,
    CallSimulator,
    FlaskTransport,
    Heard,
    HttpTransport,
    KeySource,
    Played,
    Pressed,
    Queued,
    Rang,
    Reply,
    Send,
    Silence,
    Talked,
    TerminalKeys,
    Transcript,
    collect_digits,
    drive_async,
    parse_keys,
    simulate_command,
)
from tests.calls import Line
from tests.factories import served

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC_URL = "https://helpline.example.gov.in"
VOICE = "/twilio/voice"
FALLBACK = "/twilio/voice/fallback"
STATUS = "/twilio/voice/status"

Page = str | Response | Callable[[dict[str, str]], "str | Response"]


def twiml(verbs: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{verbs}</Response>'


def helpline(pages: dict[str, Page]) -> Flask:
    """A helpline answering `pages` by path, refusing (403) whatever Twilio did not sign for PUBLIC_URL."""
    app = Flask("tiny_helpline")
    pages = {STATUS: "", **pages}

    @app.route("/<path:path>", methods=["GET", "POST"])
    def answer(path: str) -> Response:
        query = request.query_string.decode()
        url = PUBLIC_URL + request.path + (f"?{query}" if query else "")
        if not RequestValidator(AUTH_TOKEN).validate(url, request.form, request.headers.get("X-Twilio-Signature", "")):
            return Response("invalid Twilio signature", status=403, mimetype="text/plain")
        page = pages.get(request.path)
        if page is None:
            return Response("no such page", status=404, mimetype="text/plain")
        body = page if isinstance(page, str | Response) else page(dict(request.values.items()))
        return body if isinstance(body, Response) else Response(body, mimetype="text/xml")

    return app


def call(
    pages: dict[str, Page], keys: Iterable[str] | KeySource = (), *, token: str = AUTH_TOKEN, **options
) -> Transcript:
    """One simulated call to a tiny helpline, the caller doing `keys` one prompt at a time."""
    transport = FlaskTransport(helpline(pages).test_client(), PUBLIC_URL, token)
    return CallSimulator(transport, public_url=PUBLIC_URL, **options).run(keys)


def posted_to(transcript: Transcript, path: str) -> list[dict[str, str]]:
    return [r.form for r in transcript.requests if r.url.split("?")[0] == PUBLIC_URL + path]


# --- Gather ----------------------------------------------------------------------------------------


def menu(form: dict[str, str]) -> str:
    if "Digits" in form:
        return twiml(f"<Say>You chose {form['Digits']}</Say><Hangup/>")
    say = '<Say language="hi-IN" voice="Polly.Aditi">Hindi ke liye 1, English ke liye 2</Say>'
    return twiml(f'<Gather numDigits="1">{say}</Gather><Redirect/>')


def test_a_gather_without_an_action_posts_the_digits_back_to_the_current_document() -> None:
    transcript = call({VOICE: menu}, ["2"])
    assert transcript.heard == ["Hindi ke liye 1, English ke liye 2", "You chose 2"], transcript.render()
    assert posted_to(transcript, VOICE)[1]["Digits"] == "2"
    assert transcript.events[1] == Heard("Hindi ke liye 1, English ke liye 2", "hi-IN", "Polly.Aditi")
    assert transcript.ended_by == "app"
    assert transcript.errors == []


def pin_pages(gather_attributes: str) -> dict[str, Page]:
    gather = f'<Gather action="/twilio/pin" {gather_attributes}><Say>Enter your PIN code</Say></Gather>'
    return {VOICE: twiml(gather), "/twilio/pin": lambda form: twiml(f"<Say>PIN {form['Digits']}</Say>")}


def test_the_finish_key_ends_the_input_and_is_not_posted() -> None:
    transcript = call(pin_pages(""), ["226001#"])
    assert transcript.said("PIN 226001"), transcript.render()


def test_without_the_finish_key_the_digits_are_posted_when_the_timeout_ends() -> None:
    transcript = call(pin_pages('timeout="7"'), ["2260"])
    assert transcript.said("PIN 2260")
    assert transcript.duration >= 7 + 4


def test_an_empty_finish_key_makes_hash_an_ordinary_digit() -> None:
    assert call(pin_pages('finishOnKey=""'), ["12#"]).said("PIN 12#")


def test_num_digits_takes_only_the_first_keys() -> None:
    assert call(pin_pages('numDigits="1"'), ["23"]).said("PIN 2")


@pytest.mark.parametrize(
    ("keys", "finish_on_key", "num_digits", "expected"),
    [
        ("226001#", "#", None, ("226001", False)),
        ("12", "#", None, ("12", True)),
        ("12#", "", None, ("12#", True)),
        ("1*2", "*", None, ("1", False)),
        ("234", "#", 1, ("2", False)),
        ("2#", "#", 3, ("2", False)),
        ("#", "#", None, ("#", False)),
    ],
)
def test_collect_digits(keys: str, finish_on_key: str, num_digits: int | None, expected: tuple[str, bool]) -> None:
    assert collect_digits(keys, finish_on_key, num_digits) == expected


def test_silence_goes_on_to_the_verb_after_the_gather() -> None:
    pages: dict[str, Page] = {
        VOICE: twiml(
            '<Gather action="/twilio/choice"><Say>Press 1</Say></Gather>'
            "<Say>We did not hear you</Say><Redirect>/twilio/voice</Redirect>"
        ),
        "/twilio/choice": twiml("<Say>Thank you</Say>"),
    }
    transcript = call(pages, ["-", "1"])
    assert transcript.heard == ["Press 1", "We did not hear you", "Press 1", "Thank you"], transcript.render()
    assert Silence(5) in transcript.events


def test_silence_with_no_verb_after_the_gather_ends_the_call() -> None:
    pages: dict[str, Page] = {VOICE: twiml('<Gather action="/twilio/choice"><Say>Press 1</Say></Gather>')}
    transcript = call(pages, [""])
    assert transcript.ended_by == "app"
    assert posted_to(transcript, "/twilio/choice") == []
    assert transcript.duration == 1 + 5  # "Press 1" and the Gather's timeout


def test_action_on_empty_result_posts_empty_digits_on_silence() -> None:
    gather = '<Gather action="/twilio/choice" actionOnEmptyResult="true"><Say>Press 1</Say></Gather>'
    pages: dict[str, Page] = {VOICE: twiml(gather), "/twilio/choice": twiml("<Say>Nothing pressed</Say>")}
    transcript = call(pages, ["-"])
    assert posted_to(transcript, "/twilio/choice")[0]["Digits"] == ""
    assert transcript.said("Nothing pressed")


def test_verbs_after_a_gather_whose_action_fired_are_not_run() -> None:
    gather = '<Gather action="/twilio/choice"><Say>Press 1</Say></Gather><Say>Unreachable</Say>'
    transcript = call({VOICE: twiml(gather), "/twilio/choice": twiml("<Say>Chosen</Say>")}, ["1"])
    assert transcript.heard == ["Press 1", "Chosen"]


# --- Redirect, Hangup, Reject ----------------------------------------------------------------------


def test_a_redirect_resolves_a_relative_url_and_may_use_get() -> None:
    pages: dict[str, Page] = {
        VOICE: twiml('<Redirect method="GET">menu?step=2</Redirect>'),
        "/twilio/menu": lambda form: twiml(f"<Say>Step {form['step']} for {form['From']}</Say>"),
    }
    transcript = call(pages)
    assert transcript.requests[1].url == PUBLIC_URL + "/twilio/menu?step=2"
    assert transcript.requests[1].method == "GET"
    assert transcript.heard == ["Step 2 for +919876543210"], transcript.render(requests=True)


def test_more_than_ten_redirects_in_a_row_fail_like_twilio_11215() -> None:
    pages: dict[str, Page] = {VOICE: twiml("<Redirect/>"), FALLBACK: twiml("<Say>Sorry</Say><Hangup/>")}
    transcript = call(pages)
    assert [error.code for error in transcript.errors] == [11215]
    assert len(posted_to(transcript, VOICE)) == 11
    assert transcript.heard == ["Sorry"]


def test_a_call_that_never_ends_is_stopped_after_max_turns() -> None:
    transcript = call({VOICE: twiml("<Say>Hello</Say><Redirect/>")}, max_turns=5)
    assert len(posted_to(transcript, VOICE)) == 5
    assert transcript.errors[0].code is None
    assert "within 5 requests" in transcript.errors[0].message
    assert transcript.ended_by == "caller"


@pytest.mark.parametrize(("reject", "status"), [('<Reject reason="busy"/>', "busy"), ("<Reject/>", "no-answer")])
def test_a_rejected_call_is_never_answered(reject: str, status: str) -> None:
    transcript = call({VOICE: twiml(reject + "<Say>Unreachable</Say>")})
    assert transcript.heard == []
    assert (transcript.status, transcript.duration) == (status, 0)
    assert posted_to(transcript, STATUS)[0]["CallStatus"] == status


# --- Enqueue, Leave, agents ------------------------------------------------------------------------


def queue_pages(wait: Page, done: Page = "") -> dict[str, Page]:
    enqueue = '<Enqueue action="/twilio/queue/done" waitUrl="/twilio/queue/wait">agents</Enqueue>'
    voice = twiml(f"<Say>Connecting you to an agent</Say>{enqueue}<Say>Unreachable</Say>")
    return {VOICE: voice, "/twilio/queue/wait": wait, "/twilio/queue/done": done}


def test_the_caller_waits_in_the_queue_until_an_agent_answers() -> None:
    def wait(form: dict[str, str]) -> str:
        return twiml(f'<Say>You are caller number {form["QueuePosition"]}</Say><Pause length="20"/>')

    transcript = call(queue_pages(wait, twiml("<Say>Thanks for holding</Say>")), ["-", "-", "agent"])
    assert transcript.heard == ["Connecting you to an agent"] + ["You are caller number 1"] * 2, transcript.render()
    waits = posted_to(transcript, "/twilio/queue/wait")
    assert waits[0]["QueueTime"] == "0"
    assert int(waits[1]["QueueTime"]) > 20
    assert {"QueueSid", "AvgQueueTime", "CurrentQueueSize", "MaxQueueSize"} <= waits[0].keys()
    assert Queued("agents") in transcript.events
    assert Bridged() in transcript.events
    assert posted_to(transcript, "/twilio/queue/done")[0]["QueueResult"] == "bridged"
    assert transcript.ended_by == "agent"
    assert transcript.errors == []


def test_leave_takes_the_caller_to_the_enqueue_action() -> None:
    wait = twiml('<Gather numDigits="1" action="/twilio/queue/choice"><Say>Press 1 for a call back</Say></Gather>')
    pages = queue_pages(wait, lambda form: twiml(f"<Say>We will call you back ({form['QueueResult']})</Say>"))
    pages["/twilio/queue/choice"] = twiml("<Leave/>")
    transcript = call(pages, ["-", "1"])
    assert transcript.heard == [
        "Connecting you to an agent",
        "Press 1 for a call back",
        "Press 1 for a call back",
        "We will call you back (leave)",
    ], transcript.render()
    assert transcript.ended_by == "app"


def test_leave_without_an_action_goes_on_after_the_enqueue() -> None:
    voice = twiml('<Enqueue waitUrl="/twilio/queue/wait">agents</Enqueue><Say>The line is closed</Say>')
    transcript = call({VOICE: voice, "/twilio/queue/wait": twiml("<Leave/>")})
    assert transcript.heard == ["The line is closed"]


def test_a_caller_who_hangs_up_in_the_queue_is_reported_to_the_action() -> None:
    voice = twiml('<Enqueue action="/twilio/queue/done">agents</Enqueue>')
    transcript = call({VOICE: voice, "/twilio/queue/done": ""}, ["-", "5", "hangup"])
    assert transcript.events.count(Played(DEFAULT_HOLD_MUSIC)) == 2
    assert Pressed("5", ignored=True) in transcript.events
    assert posted_to(transcript, "/twilio/queue/done")[0]["QueueResult"] == "hangup"
    assert transcript.ended_by == "caller"


def test_agent_outside_a_queue_is_a_script_error_taken_as_silence() -> None:
    transcript = call({VOICE: twiml("<Gather><Say>Press 1</Say></Gather><Say>Goodbye</Say>")}, ["agent"])
    assert transcript.heard == ["Press 1", "Goodbye"]
    assert "in no queue" in transcript.errors[0].message


# --- Dial, Record ----------------------------------------------------------------------------------


def test_dial_posts_its_action_with_the_dial_status() -> None:
    pages: dict[str, Page] = {
        VOICE: twiml('<Dial action="/twilio/dialed"><Number>+911234567890</Number></Dial>'),
        "/twilio/dialed": lambda form: twiml(f"<Say>Dial {form['DialCallStatus']}</Say>"),
    }
    assert call(pages).heard == ["Dial completed"]


def dial_pages(attributes: str) -> dict[str, Page]:
    dial = f'<Dial action="/twilio/dialled" {attributes}><Number>+919876543210</Number></Dial><Say>unreachable</Say>'
    said = "<Say>{DialCallStatus} {DialCallDuration}</Say>"
    return {
        VOICE: twiml(dial),
        "/twilio/dialled": lambda form: twiml(said.format_map({"DialCallDuration": "-", **form})),
    }


def test_a_dialled_number_rings_with_the_caller_id_and_talks_until_the_time_limit() -> None:
    transcript = call(dial_pages('callerId="+18005550100" timeLimit="900"'), callee=Callee("completed", talks=1200))
    assert transcript.events[1:3] == [Rang("+919876543210", "+18005550100"), Talked("completed", 900, 900)]
    assert transcript.heard == ["completed 900"]
    assert transcript.duration >= 900


def test_a_dialled_phone_that_talks_within_the_default_limit_of_four_hours() -> None:
    transcript = call(dial_pages(""), callee=Callee("completed", talks=5 * 3600), from_number="+919415000001")
    assert transcript.events[1] == Rang("+919876543210", "+919415000001")  # no callerId: the caller's own
    assert transcript.heard == ["completed 14400"]


@pytest.mark.parametrize("answers", ["no-answer", "busy", "failed"])
def test_a_dialled_phone_that_does_not_connect_has_no_duration(answers: str) -> None:
    transcript = call(dial_pages('timeout="20"'), callee=Callee(answers))  # type: ignore[arg-type]
    assert transcript.heard == [f"{answers} -"]
    assert posted_to(transcript, "/twilio/dialled")[0]["DialCallStatus"] == answers
    assert (transcript.duration >= 20) is (answers == "no-answer")  # ringing out takes the timeout


def test_a_dial_without_an_action_goes_on_with_the_next_verb() -> None:
    pages: dict[str, Page] = {VOICE: twiml("<Dial><Number>+919876543210</Number></Dial><Say>after</Say>")}
    assert call(pages).heard == ["after"]


@pytest.mark.parametrize(
    ("keys", "digits", "ended_by"),
    [(["say:8#", "-"], "#", "app"), (["say:8", "-"], "", "app"), (["say:8"], "hangup", "caller")],
)
def test_record_posts_the_recording_and_the_key_that_ended_it(keys: list[str], digits: str, ended_by: str) -> None:
    pages: dict[str, Page] = {
        VOICE: twiml('<Say>Leave a message</Say><Record action="/twilio/recorded" maxLength="30" finishOnKey="#"/>'),
        "/twilio/recorded": twiml("<Say>Message saved</Say>"),
    }
    transcript = call(pages, keys)
    form = posted_to(transcript, "/twilio/recorded")[0]
    assert (form["Digits"], form["RecordingDuration"]) == (digits, "8")
    assert form["RecordingUrl"].startswith("https://api.twilio.com/2010-04-01/Accounts/")
    assert form["RecordingUrl"].endswith("/Recordings/" + form["RecordingSid"])
    assert transcript.ended_by == ended_by
    assert transcript.said("Message saved") == (ended_by == "app")


@pytest.mark.parametrize("keys", [["-"], ["say:0#"], []])
def test_an_empty_recording_requests_no_action_and_goes_on_with_the_next_verb(keys: list[str]) -> None:
    pages: dict[str, Page] = {
        VOICE: twiml('<Record action="/twilio/recorded" maxLength="30" finishOnKey="#"/><Say>Nothing heard</Say>'),
        "/twilio/recorded": twiml("<Say>Message saved</Say>"),
    }
    transcript = call(pages, keys)
    assert posted_to(transcript, "/twilio/recorded") == []
    assert transcript.heard == ["Nothing heard"]


def test_a_recording_the_platform_lost_comes_without_its_id_and_url() -> None:
    pages: dict[str, Page] = {
        VOICE: twiml('<Record action="/twilio/recorded" maxLength="30" finishOnKey="#"/>'),
        "/twilio/recorded": twiml("<Hangup/>"),
    }
    form = posted_to(call(pages, ["say:5!", "-"]), "/twilio/recorded")[0]
    assert ("RecordingSid" in form, "RecordingUrl" in form, form["RecordingDuration"]) == (False, False, "5")


# --- failures, as Twilio treats them ---------------------------------------------------------------


def test_a_500_sends_twilio_to_the_fallback_url() -> None:
    pages: dict[str, Page] = {VOICE: Response("boom", status=500), FALLBACK: twiml("<Say>Sorry</Say><Hangup/>")}
    transcript = call(pages)
    assert [error.code for error in transcript.errors] == [11200]
    assert posted_to(transcript, FALLBACK)[0].items() >= {"ErrorCode": "11200", "ErrorUrl": PUBLIC_URL + VOICE}.items()
    assert transcript.heard == ["Sorry"]


def test_a_failing_action_url_also_falls_back() -> None:
    pages = pin_pages("")
    pages.update({"/twilio/pin": Response("boom", status=502), FALLBACK: twiml("<Say>Sorry</Say>")})
    transcript = call(pages, ["1#"])
    assert posted_to(transcript, FALLBACK)[0]["ErrorUrl"] == PUBLIC_URL + "/twilio/pin"
    assert transcript.heard == ["Enter your PIN code", "Sorry"]


def test_broken_xml_and_a_broken_fallback_leave_the_caller_with_twilios_apology() -> None:
    pages: dict[str, Page] = {VOICE: "<Response><Say>oops</Response>", FALLBACK: Response("down", status=503)}
    transcript = call(pages)
    assert [error.code for error in transcript.errors] == [12100, 11200]
    assert transcript.heard == [APPLICATION_ERROR]
    assert transcript.ended_by == "twilio"


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (Response('{"ok": true}', mimetype="application/json"), 12300),
        (Response("<html><body>hi</body></html>", mimetype="text/html"), 12100),
        (Response("", mimetype="text/xml"), 12100),
    ],
)
def test_answers_that_are_not_twiml_are_errors(answer: Response, code: int) -> None:
    transcript = call({VOICE: answer, FALLBACK: twiml("<Say>Sorry</Say>")})
    assert [error.code for error in transcript.errors] == [code]
    assert transcript.heard == ["Sorry"]


def test_an_unknown_verb_is_reported_and_skipped() -> None:
    transcript = call({VOICE: twiml("<Dance/><Gather><Redirect/></Gather><Say>Still here</Say>")}, ["-"])
    assert [error.code for error in transcript.errors] == [12200, 12200]
    assert transcript.heard == ["Still here"]


def test_a_request_signed_with_another_token_is_refused_and_the_caller_hears_an_error() -> None:
    transcript = call({VOICE: twiml("<Say>Hello</Say>")}, token="someone-elses-token")
    assert [request.status for request in transcript.requests] == [403, 403, 403]
    assert transcript.errors[0].code == 11200
    assert "403" in transcript.errors[0].message
    assert transcript.heard == [APPLICATION_ERROR]


# --- call parameters, the status callback, the transcript ------------------------------------------


def test_every_request_carries_twilios_call_parameters() -> None:
    transcript = call({VOICE: menu}, ["1"], from_number="anonymous")
    first, second, status = (request.form for request in transcript.requests)
    assert first["CallSid"].startswith("CA")
    assert len(first["CallSid"]) == 34
    assert first["AccountSid"].startswith("AC")
    assert (first["From"], first["Caller"], first["To"], first["Called"]) == (
        "anonymous",
        "anonymous",
        "+18005550100",
        "+18005550100",
    )
    assert (first["Direction"], first["ApiVersion"]) == ("inbound", "2010-04-01")
    assert [first["CallStatus"], second["CallStatus"], status["CallStatus"]] == ["ringing", "in-progress", "completed"]
    assert len({form["CallSid"] for form in (first, second, status)}) == 1


def test_the_status_callback_reports_the_simulated_duration() -> None:
    transcript = call({VOICE: twiml(f'<Say>{"x" * 24}</Say><Pause length="3"/><Hangup/>')})
    status = transcript.requests[-1]
    assert status.url == PUBLIC_URL + STATUS
    assert (status.form["CallStatus"], status.form["CallDuration"], status.form["SequenceNumber"]) == (
        "completed",
        "5",
        "0",
    )
    assert parsedate_to_datetime(status.form["Timestamp"]).tzinfo is not None
    assert (transcript.status, transcript.duration) == ("completed", 5)


def test_a_failing_status_callback_is_an_error() -> None:
    transcript = call({VOICE: twiml("<Hangup/>"), STATUS: Response("gone", status=404)})
    assert transcript.errors[0].code == 11200
    assert transcript.errors[0].url == PUBLIC_URL + STATUS


def test_a_caller_out_of_keys_hangs_up_and_unused_keys_are_reported() -> None:
    assert call({VOICE: menu}, []).ended_by == "caller"
    assert call({VOICE: twiml("<Say>Bye</Say>")}, ["1", "2"]).unused_keys == ["1", "2"]


def test_render_tells_the_call_as_a_person_would() -> None:
    text = call({VOICE: menu}, "2").render()
    assert "caller hears (hi-IN): Hindi ke liye 1, English ke liye 2" in text
    assert "caller presses 2" in text
    assert text.endswith("call completed after 5 s")


def test_parse_keys() -> None:
    assert parse_keys("2,1,1,226001#,1") == ["2", "1", "1", "226001#", "1"]
    assert parse_keys("2,,-, Agent ,hangup") == ["2", "-", "-", "agent", "hangup"]
    assert parse_keys("") == []
    with pytest.raises(ValueError, match="not a key item"):
        parse_keys("1,two")


# --- real HTTP --------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[str]:
    with served(helpline({VOICE: menu})) as base_url:
        yield base_url


def test_http_transport_signs_over_the_public_url(server: str) -> None:
    transport = HttpTransport(server, PUBLIC_URL, AUTH_TOKEN, timeout=5)
    transcript = CallSimulator(transport, public_url=PUBLIC_URL).run(["1"])
    assert transcript.heard == ["Hindi ke liye 1, English ke liye 2", "You chose 1"], transcript.render()
    assert transcript.errors == []


def test_http_transport_reports_a_server_that_is_down() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = HttpTransport(f"http://127.0.0.1:{port}", PUBLIC_URL, AUTH_TOKEN, timeout=2)
    transcript = CallSimulator(transport, public_url=PUBLIC_URL).run([])
    assert [error.code for error in transcript.errors][:2] == [11205, 11205]
    assert transcript.heard == [APPLICATION_ERROR]


def test_http_transport_reports_a_server_that_does_not_answer_in_time() -> None:
    def slow(form: dict[str, str]) -> str:
        time.sleep(1)
        return twiml("<Say>Too late</Say>")

    with served(helpline({VOICE: slow})) as base_url:
        transport = HttpTransport(base_url, PUBLIC_URL, AUTH_TOKEN, timeout=0.2)
        transcript = CallSimulator(transport, public_url=PUBLIC_URL, fallback_path=VOICE).run([])
    assert [error.code for error in transcript.errors][:2] == [11205, 11205]
    assert "no answer" in transcript.errors[0].message
    assert transcript.heard == [APPLICATION_ERROR]


def test_simulate_command_tells_a_scripted_call(server: str) -> None:
    out = io.StringIO()
    simulate_command(
        server,
        public_url=PUBLIC_URL,
        auth_token=AUTH_TOKEN,
        from_number="+919999999999",
        keys="2",
        out=out,
        inp=io.StringIO(),
    )
    lines = out.getvalue().splitlines()
    assert lines[:3] == [
        "caller hears (hi-IN): Hindi ke liye 1, English ke liye 2",
        "caller presses 2",
        "caller hears (en-US): You chose 2",
    ]
    assert lines[-1] == "call completed after 5 s, ended by app; 0 error(s)"


def test_simulate_command_reads_keys_typed_at_the_terminal(server: str) -> None:
    out = io.StringIO()
    transcript = simulate_command(
        server,
        public_url=PUBLIC_URL,
        auth_token=AUTH_TOKEN,
        from_number="anonymous",
        keys=None,
        out=out,
        inp=io.StringIO("x\n1\n"),
    )
    assert transcript.said("You chose 1")
    assert out.getvalue().count(TerminalKeys.PROMPT) == 2  # "x" is refused and asked again
    assert "not a key item" in out.getvalue()


# --- the same call from an event loop (the load benchmark's driver) --------------------------------


class AsyncFlask:
    """The Flask test client behind the async transport protocol."""

    def __init__(self, pages: dict[str, Page]) -> None:
        self.sync = FlaskTransport(helpline(pages).test_client(), PUBLIC_URL, AUTH_TOKEN)

    async def post(self, url: str, form: dict[str, str]) -> Reply:
        return self.sync.post(url, form)

    async def get(self, url: str) -> Reply:
        return self.sync.get(url)


def test_an_async_driver_runs_the_same_call_by_the_same_rules() -> None:
    pages: dict[str, Page] = {
        VOICE: twiml(
            '<Gather action="/twilio/choice"><Say>Press 1</Say></Gather><Redirect method="GET">menu</Redirect>'
        ),
        "/twilio/menu": twiml('<Gather action="/twilio/choice"><Say>Press 1 now</Say></Gather>'),
        "/twilio/choice": lambda form: twiml(f"<Say>You chose {form['Digits']}</Say><Hangup/>"),
    }
    sent: list[Send] = []

    async def note(send: Send) -> None:
        sent.append(send)

    setup = CallSetup(public_url=PUBLIC_URL, call_sid="CA" + "0" * 32)
    transcript = asyncio.run(drive_async(setup.steps(["-", "1"]), AsyncFlask(pages), note))
    expected = CallSimulator(
        FlaskTransport(helpline(pages).test_client(), PUBLIC_URL, AUTH_TOKEN),
        public_url=PUBLIC_URL,
        call_sid="CA" + "0" * 32,
    ).run(["-", "1"])

    assert transcript.heard == expected.heard == ["Press 1", "Press 1 now", "You chose 1"], transcript.render()
    assert [r.url for r in transcript.requests] == [r.url for r in expected.requests]
    assert transcript.errors == []
    assert [(s.method, s.turn, s.acted, round(s.played_s * 12)) for s in sent] == [
        ("POST", True, False, 0),  # the call comes in
        ("GET", True, True, 7 + 5 * 12),  # after "Press 1" (12 characters a second) and 5 s of silence, the Redirect
        ("POST", True, True, 11 + (1 + 5) * 12),  # "Press 1 now", a second a key, then the 5 s timeout: no #
        ("POST", False, False, 11),  # "You chose 1", then the status callback: nobody runs its TwiML
    ]


# --- Conference --------------------------------------------------------------------------------------


def test_a_recorded_conference_posts_its_completed_recording_when_the_room_ends() -> None:
    room = '<Conference record="record-from-start" recordingStatusCallback="/rec">room-9</Conference>'
    transcript = call({VOICE: twiml(f"<Dial>{room}</Dial><Say>Bye</Say>"), "/rec": ""})
    assert not transcript.errors, transcript.render(requests=True)
    [made] = posted_to(transcript, "/rec")
    assert (made["RecordingStatus"], made["RecordingSource"], made["RecordingDuration"]) == (
        "completed",
        "DialConference",
        "60",
    )
    assert made["ConferenceSid"].startswith("CF")
    assert made["RecordingUrl"].endswith(made["RecordingSid"])
    assert transcript.heard == ["Bye"]


def test_a_conference_not_recorded_posts_no_recording() -> None:
    room = '<Conference recordingStatusCallback="/rec">room-9</Conference>'
    assert posted_to(call({VOICE: twiml(f"<Dial>{room}</Dial>"), "/rec": ""}), "/rec") == []


# --- a live call moved by the REST API ------------------------------------------------------------


class Moves:
    """The platform's record of REST moves, as a sandbox keeps it: each taken once by its call."""

    def __init__(self) -> None:
        self.waiting: dict[str, str] = {}

    def __call__(self, call_sid: str) -> str | None:
        return self.waiting.pop(call_sid, None)


def test_a_move_cuts_into_the_document_before_its_next_verb() -> None:
    """twilio.com/docs/voice/api/call-resource#update-a-call-resource: the live call runs the TwiML at
    the new Url at once; what was left of its document is not run."""
    moves, call_sid = Moves(), "CA" + "1" * 32
    pages: dict[str, Page] = {
        VOICE: twiml('<Gather action="/twilio/choice"><Say>Press 1</Say></Gather><Say>Still here</Say><Hangup/>'),
        "/twilio/elsewhere": twiml("<Say>Moved along</Say>"),
    }

    def moved() -> None:
        moves.waiting[call_sid] = PUBLIC_URL + "/twilio/elsewhere"

    transcript = call(pages, Line(moved, "-"), call_sid=call_sid, moved=moves)  # silent at the prompt meanwhile
    assert transcript.heard == ["Press 1", "Moved along"], transcript.render()
    assert [r.url for r in transcript.requests][1] == PUBLIC_URL + "/twilio/elsewhere"
    assert transcript.errors == []


def test_a_move_of_another_call_is_not_followed() -> None:
    moves, call_sid = Moves(), "CA" + "1" * 32
    moves.waiting["CA" + "2" * 32] = PUBLIC_URL + "/twilio/elsewhere"
    transcript = call({VOICE: menu}, ["-", "2"], call_sid=call_sid, moved=moves)
    assert transcript.said("You chose 2"), transcript.render()
    assert not posted_to(transcript, "/twilio/elsewhere")
    assert moves.waiting == {"CA" + "2" * 32: PUBLIC_URL + "/twilio/elsewhere"}


# --- the terminal ----------------------------------------------------------------------------------


@pytest.fixture
def terminal() -> Iterator[tuple[io.TextIOWrapper, io.FileIO]]:
    """What a person types, through a pipe as a terminal delivers it: the reader, and the keyboard."""
    read, write = os.pipe()
    with os.fdopen(read) as typed, os.fdopen(write, "wb", buffering=0) as keyboard:
        yield typed, keyboard


def test_keys_typed_at_the_terminal_are_read_a_line_at_a_time(
    terminal: tuple[io.TextIOWrapper, io.FileIO],
) -> None:
    typed, keyboard = terminal
    keyboard.write(b"1\n\nsay:5#\n22")
    keyboard.close()
    keys = TerminalKeys(typed, io.StringIO(), cut_short=lambda: False)
    assert [keys.next_key() for _ in range(5)] == ["1", "-", "say:5#", "22", None]


def test_a_move_cuts_the_wait_at_the_terminals_prompt_short_as_silence(
    terminal: tuple[io.TextIOWrapper, io.FileIO],
) -> None:
    typed, keyboard = terminal
    out, asked = io.StringIO(), []

    def moved() -> bool:
        asked.append(True)
        return len(asked) > 2  # nobody types: the platform moves the call while the caller waits

    keys = TerminalKeys(typed, out, cut_short=moved)
    assert keys.next_key() == "-"
    assert out.getvalue() == TerminalKeys.PROMPT + "\n"
    keyboard.write(b"3\n")
    assert keys.next_key() == "3"  # a line typed is read before anything is asked
