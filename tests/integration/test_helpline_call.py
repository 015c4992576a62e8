"""Whole calls to the helpline, placed by the simulator exactly as Twilio would (signed posts,
TwiML executed by Twilio's rules), and again as Plivo would (V3-signed posts, Plivo XML by Plivo's
rules), against the real app, a real database of each kind, the real Redis, and the platform's
sandbox for SMS. The same transcripts on both platforms; each test reads as the call it checks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from time import sleep

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlmodel import Session, select

from core import numbers
from core.clock import FrozenClock
from core.settings import Settings
from devtools.simulator import Heard, Played
from devtools.twilio_sandbox import TwilioSandbox
from sewamitra.app import create_app
from storage.models import CallbackRequest, Caller, CallLog, ServiceRequest, SmsLog
from tests.factories import (
    ALWAYS_OPEN,
    CITIZEN,
    ENGLISH_DIGITS,
    HINDI_DIGITS,
    PUBLIC_URL,
    call,
    call_form,
    in_the_agent_queue,
    run_jobs,
    signed_post,
    simulator,
    spoken_digits,
    with_hours,
    write_call_logs,
)

# Both databases: a call upserts its caller and its call log (INSERT ... ON CONFLICT in each dialect's words).
pytestmark = [pytest.mark.both_databases, pytest.mark.both_platforms]

ENGLISH_PLUMBER_AT_226001 = "2,1,1,226001#,1,9"
# An agent takes the caller waiting in the queue. On Twilio the simulator's "agent" is Twilio's own
# bridge; on Plivo an agent takes the caller with a second call (tests/integration/
# test_plivo_agent_queue.py), so here the caller, having heard the queue, hangs up.
AGENT_TAKES_THE_CALL = {"twilio": "agent", "plivo": "hangup"}


@pytest.fixture
def settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings


def stored(app: Flask) -> list[ServiceRequest]:
    with Session(app.extensions["sewamitra"].engine) as session:
        return list(session.exec(select(ServiceRequest).order_by(ServiceRequest.id)).all())  # type: ignore[arg-type]


def dialect(app: Flask) -> str:
    return str(app.extensions["sewamitra"].engine.dialect.name)


def rows(app: Flask, model: type) -> list:
    with Session(app.extensions["sewamitra"].engine) as session:
        return list(session.exec(select(model)).all())


# -- booking ----------------------------------------------------------------------------------------


def test_an_english_caller_books_a_plumber_at_226001(app: Flask, sandbox: TwilioSandbox) -> None:
    transcript = call(app, ENGLISH_PLUMBER_AT_226001)

    assert transcript.said("Plumber: the standard visit charge is 200 rupees.")
    assert transcript.said("You keyed PIN code two, two, six, zero, zero, one, district Lucknow.")
    [request] = stored(app)
    assert (request.service_code, request.pincode, request.district) == ("plumber", "226001", "LUCKNOW")
    assert request.language == "en"
    assert request.status == "new"
    assert numbers.is_valid(request.number)
    said = spoken_digits(request.number, ENGLISH_DIGITS)
    assert transcript.said(f"Your request number is: {said}.")
    assert transcript.said(f"Once again, your request number is: {said}.")

    run_jobs(app)
    notice, sms = sandbox.messages  # a first call: the privacy notice's link, then the request's number
    assert notice["to"] == CITIZEN
    assert notice["body"].endswith(f"{PUBLIC_URL}/privacy?lang=en")
    assert sms["to"] == CITIZEN
    assert request.number in sms["body"]
    assert "Plumber" in sms["body"]
    [log] = [log for log in rows(app, SmsLog) if log.template == "request_created"]
    assert (log.message_sid, log.status, log.request_id) == (sms["sid"], "queued", request.id)


def test_a_hindi_caller_books_the_same_in_hindi(app: Flask, sandbox: TwilioSandbox) -> None:
    transcript = call(app, "1,1,1,226001#,1,9")

    [request] = stored(app)
    assert (request.service_code, request.pincode, request.district, request.language) == (
        "plumber",
        "226001",
        "LUCKNOW",
        "hi",
    )
    hindi = [e for e in transcript.events if isinstance(e, Heard) and e.language == "hi-IN"]
    assert any("प्लंबर के घर आने का मानक शुल्क 200 रुपये है।" in e.text for e in hindi)
    assert transcript.said(f"आपका अनुरोध नंबर है: {spoken_digits(request.number, HINDI_DIGITS)}।")
    run_jobs(app)
    notice, sms = sandbox.messages  # a first call: the privacy notice's link, then the request's number
    assert notice["body"].endswith(f"{PUBLIC_URL}/privacy")
    assert sms["to"] == CITIZEN
    assert request.number in sms["body"]
    assert "प्लंबर" in sms["body"]


def test_a_first_time_caller_hears_the_privacy_notice_once_and_gets_its_link(
    app: Flask, sandbox: TwilioSandbox
) -> None:
    first = call(app, "2,hangup")
    assert first.said("Before we go on: to serve you, the helpline keeps your phone number and what you tell us")
    assert first.said("until 365 days after your last call. To hear what is kept, or to have it erased, press 5 at")
    assert first.said("the main menu, or ask an agent.")
    run_jobs(app)
    [notice] = sandbox.messages
    assert notice["to"] == CITIZEN
    assert (
        notice["body"] == f"Sewamitra: how your data is kept and erased, and your rights: {PUBLIC_URL}/privacy?lang=en"
    )

    again = call(app, "1,1,226001#,1,9")  # known now: greeted in English, straight to the main menu

    assert not again.said("Before we go on")
    assert again.said("To book a new service, press 1.")
    [request] = stored(app)
    assert request.language == "en"
    run_jobs(app)
    assert len(sandbox.messages) == 2  # the request's number; no second notice


def test_a_key_during_the_notice_answers_the_main_menu(app: Flask) -> None:
    transcript = call(app, "2,1,1,226001#,1,9")  # "1" pressed while the notice plays books a service
    [request] = stored(app)
    assert request.service_code == "plumber"
    assert transcript.said("Please choose a service.")


def test_silence_at_the_language_menu_means_hindi(app: Flask) -> None:
    transcript = call(app, "-,1,1,226001#,1,9")
    [request] = stored(app)
    assert request.language == "hi"
    assert transcript.said("नई सेवा बुक करने के लिए 1 दबाएँ।")


def test_a_withheld_number_books_without_sms_and_hears_the_number_three_times(
    app: Flask, sandbox: TwilioSandbox
) -> None:
    transcript = call(app, ENGLISH_PLUMBER_AT_226001, from_number="anonymous")
    [request] = stored(app)
    assert request.caller_id is None
    assert transcript.said(
        f"Please write it down. Your request number is: {spoken_digits(request.number, ENGLISH_DIGITS)}"
    )
    run_jobs(app)
    assert sandbox.messages == []
    assert rows(app, SmsLog) == []


def test_a_returning_caller_is_greeted_in_their_language_without_the_menu(app: Flask) -> None:
    call(app, "2,9")
    again = call(app, "")
    assert again.heard[:2] == [
        "Welcome to the Sewamitra helpline.",
        "To book a new service, press 1. To know about your request, press 2. To speak to an agent, press 3. "
        "To hear what the helpline holds about you, or to have it erased, press 5. "
        "To hear these choices again, press 9.",
    ]
    [caller] = rows(app, Caller)
    assert (caller.phone, caller.language) == (CITIZEN, "en")


# -- wrong keys and unknown places -------------------------------------------------------------------


def test_an_unknown_pincode_is_explained_and_asked_again(app: Flask) -> None:
    transcript = call(app, "2,1,1,999999#,226001#,1,9")
    assert transcript.said("We could not find the PIN code nine, nine, nine, nine, nine, nine.")
    assert [r.pincode for r in stored(app)] == ["226001"]


def test_a_pincode_outside_uttar_pradesh_is_explained(app: Flask) -> None:
    transcript = call(app, "2,1,1,110001#")
    assert transcript.said("is in New Delhi district. This service is only available in Uttar Pradesh for now.")
    assert stored(app) == []


def test_three_wrong_keys_reach_the_agent_queue_which_announces_the_position(
    app: Flask, telephony_platform: str
) -> None:
    transcript = call(app, f"2,7,-,6,-,{AGENT_TAKES_THE_CALL[telephony_platform]}")
    assert transcript.heard.count("Sorry, that is not one of the choices.") == 3
    assert transcript.said("We are connecting you to one of our agents.")
    assert in_the_agent_queue(transcript)
    assert transcript.said("You are number one in the queue.")
    assert transcript.said("To leave the queue and be called back, press 1.")
    assert transcript.ended_by == ("agent" if telephony_platform == "twilio" else "caller")


def test_zero_reaches_an_agent_in_the_middle_of_a_pincode(app: Flask, telephony_platform: str) -> None:
    transcript = call(app, f"2,1,1,0#,{AGENT_TAKES_THE_CALL[telephony_platform]}")
    assert in_the_agent_queue(transcript)


def test_leaving_the_queue_records_a_callback(app: Flask) -> None:
    transcript = call(app, "2,3,1")
    assert transcript.said("Thank you. An agent will call you back soon.")
    [callback] = rows(app, CallbackRequest)
    assert (callback.phone, callback.reason, callback.language, callback.status) == (
        CITIZEN,
        "left_queue",
        "en",
        "pending",
    )


def test_out_of_hours_a_callback_is_offered_instead_of_the_queue(helpline_settings: Settings) -> None:
    app = create_app(with_hours(helpline_settings, days=()))
    transcript = call(app, "2,3,1")
    assert transcript.said("Our agents are available from 8 in the morning to 8 at night.")
    assert not in_the_agent_queue(transcript)
    [callback] = rows(app, CallbackRequest)
    assert callback.reason == "out_of_hours"


def test_the_views_clock_says_whether_the_call_centre_is_open(helpline_settings: Settings) -> None:
    """Agents work 8 to 8 in Lucknow: the same call at 11 in the morning and at 11 at night, by the
    app's frozen clock (17:30 UTC is 23:00 IST)."""
    morning, night = datetime(2030, 1, 1, 5, 30, tzinfo=UTC), datetime(2030, 1, 1, 17, 30, tzinfo=UTC)
    clock = FrozenClock(morning)
    app = create_app(helpline_settings, clock)
    assert in_the_agent_queue(call(app, "2,3,1"))  # then leaves the queue for a callback

    clock.set(night)
    transcript = call(app, "2,3,1", from_number="+919415000001")  # a new caller: asked for a language too
    assert transcript.said("Our agents are available from 8 in the morning to 8 at night.")
    assert not in_the_agent_queue(transcript)
    callbacks = sorted(rows(app, CallbackRequest), key=lambda c: c.id)
    assert [(c.reason, c.created_at) for c in callbacks] == [("left_queue", morning), ("out_of_hours", night)]


def test_a_request_filed_by_phone_is_dated_by_the_apps_clock(settings: Settings) -> None:
    clock = FrozenClock(datetime(2030, 1, 1, 5, 30, tzinfo=UTC))
    app = create_app(settings, clock)
    call(app, ENGLISH_PLUMBER_AT_226001)
    [request] = stored(app)
    assert request.created_at == clock.now()


def test_out_of_hours_a_withheld_caller_is_told_we_cannot_call_back(helpline_settings: Settings) -> None:
    app = create_app(with_hours(helpline_settings, days=()))
    transcript = call(app, "2,3,1", from_number="anonymous")
    assert transcript.said("Your number is withheld, so we cannot call you back.")
    assert rows(app, CallbackRequest) == []


# -- tracking ----------------------------------------------------------------------------------------


def test_a_caller_hears_their_open_requests_read_out(app: Flask) -> None:
    call(app, ENGLISH_PLUMBER_AT_226001)
    [request] = stored(app)
    transcript = call(app, "2")
    assert transcript.said("You have 1 open requests.")
    assert transcript.said(
        f"Request number {spoken_digits(request.number, ENGLISH_DIGITS)}, Plumber: registered, we are finding a worker."
    )


def test_someone_else_tracks_a_request_by_its_number(app: Flask) -> None:
    call(app, ENGLISH_PLUMBER_AT_226001)
    [request] = stored(app)
    transcript = call(app, f"2,2,{request.number}#", from_number="+919415000001")
    assert transcript.said("Please key in your seven-digit request number, then press hash.")
    assert transcript.said(f"Request number {spoken_digits(request.number, ENGLISH_DIGITS)}, Plumber:")


def test_a_mistyped_request_number_is_not_found(app: Flask) -> None:
    call(app, ENGLISH_PLUMBER_AT_226001)
    [request] = stored(app)
    wrong = request.number[:-1] + str((int(request.number[-1]) + 1) % 10)
    transcript = call(app, f"2,2,{wrong}#", from_number="+919415000001")
    assert transcript.said("We could not find request number")


# -- Twilio's retries, failures and the call log ------------------------------------------------------


def test_a_retried_step_answers_the_same_and_stores_one_request(app: Flask, telephony_platform: str) -> None:
    client, voice = app.test_client(), f"/{telephony_platform}/voice"
    form = call_form(telephony_platform, "5")
    signed_post(client, voice, form)
    for turn, digits in enumerate(["2", "1", "1", "226001", "1", "9"]):
        signed_post(client, f"{voice}/step?turn={turn}", {**form, "Digits": digits})
    # Nothing said at the beep: the platform goes on to the Redirect after the Record.
    first = signed_post(client, f"{voice}/record?turn=6&empty=1", form)
    retry = signed_post(client, f"{voice}/record?turn=6&empty=1", form)  # signed anew, as platforms retry
    assert first.status_code == retry.status_code == 200
    assert first.data == retry.data
    assert len(stored(app)) == 1


def test_the_status_callback_keeps_a_call_log(app: Flask) -> None:
    transcript = call(app, ENGLISH_PLUMBER_AT_226001)
    assert write_call_logs(app) == 1  # the call's last status callback left its log for the writer
    [log] = rows(app, CallLog)
    [request] = stored(app)
    assert (log.call_sid, log.status, log.outcome, log.request_id) == (
        transcript.call_sid,
        "completed",
        "request_created",
        request.id,
    )
    assert log.duration_s == transcript.duration
    assert log.duration_s > 0
    # a new caller: on PostgreSQL the statement that remembers them says so, and no worker is looked up
    looked_up = [] if dialect(app) == "postgresql" else ["first_find_your_worker"]
    assert log.path[: 7 + len(looked_up)] == [
        "welcome",
        "language",
        "privacy_notice",
        "first_caller",
        *looked_up,
        "first_main_menu",
        "service_menu",
        "ask_pincode",
    ]
    assert log.language == "en"


def test_a_request_booked_by_phone_is_on_the_call_log_though_the_status_callback_never_comes(app: Flask) -> None:
    """The platform's status callback at the call's end never reaches the helpline (the web worker it
    came to was killed; the platform does not send it again): the call that booked is logged anyway."""
    transcript = simulator(app.test_client(), status_path="/nowhere").run(ENGLISH_PLUMBER_AT_226001)
    [log] = rows(app, CallLog)
    [request] = stored(app)
    assert (log.call_sid, log.status, log.outcome, log.request_id, log.language) == (
        transcript.call_sid,
        "in-progress",
        "request_created",
        request.id,
        "en",
    )


def test_a_database_outage_gets_an_apology_and_an_agent_not_an_error(
    settings: Settings, postgres_server_url: str
) -> None:
    no_such_db = (
        sa.engine.make_url(postgres_server_url).set(database="no_such_db").render_as_string(hide_password=False)
    )
    broken = settings.model_copy(update={"database_url": no_such_db})
    transcript = call(create_app(broken), AGENT_TAKES_THE_CALL[broken.telephony.platform])
    assert transcript.said("Sorry, we have a technical problem.")
    assert in_the_agent_queue(transcript)


def recording_url(settings: Settings, path: str) -> str:
    """Where the platform fetches a recording: Twilio resolves our path against our URL, Plivo is
    given it fully qualified."""
    platform = settings.telephony.platform
    return ("" if platform == "twilio" else PUBLIC_URL) + f"/{platform}/voice/recordings/{path}"


def test_a_recorded_prompt_is_played_instead_of_spoken(settings: Settings, tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    (recordings / "hi").mkdir(parents=True)
    (recordings / "hi" / "welcome.mp3").write_bytes(b"ID3")
    app = create_app(settings.model_copy(update={"recordings_dir": recordings}))
    transcript = call(app, "")
    played = [e.url for e in transcript.events if isinstance(e, Played)]
    assert played == [recording_url(settings, "hi/welcome.mp3")]
    assert app.test_client().get(f"/{settings.telephony.platform}/voice/recordings/hi/welcome.mp3").data == b"ID3"


def test_a_recording_added_while_the_helpline_runs_is_played_from_the_next_call(
    settings: Settings, tmp_path: Path
) -> None:
    recordings = tmp_path / "recordings"
    app = create_app(settings.model_copy(update={"recordings_dir": recordings}))
    before = call(app, "", from_number="+919800000001")
    sleep(0.05)  # directory times are coarse: the recording comes clearly after that first answer
    (recordings / "hi").mkdir(parents=True)
    (recordings / "hi" / "welcome.mp3").write_bytes(b"ID3")

    after = call(app, "", from_number="+919800000002")

    assert not [e for e in before.events if isinstance(e, Played)]
    assert [e.url for e in after.events if isinstance(e, Played)] == [recording_url(settings, "hi/welcome.mp3")]


def test_the_session_is_kept_in_redis_with_a_ttl(app: Flask) -> None:
    transcript = call(app, "2,1")
    connection = app.extensions["sewamitra"].redis
    ttl = connection.ttl(f"sewamitra:call:{transcript.call_sid}")
    assert 0 < ttl <= 4 * 3600


def test_nine_repeats_menus_and_leads_back_from_the_services(app: Flask) -> None:
    transcript = call(app, "2,9,1,9,1,2,226001#,1,9,1")
    main_menu = "To book a new service, press 1. To know about your request, press 2."
    assert sum(1 for text in transcript.heard if text.startswith(main_menu)) == 4  # first, 9, back from services, after
    assert transcript.said("Electrician: the standard visit charge is 200 rupees.")
    [request] = stored(app)
    assert request.service_code == "electrician"


def test_a_full_queue_records_a_callback(app: Flask, telephony_platform: str) -> None:
    client, voice = app.test_client(), f"/{telephony_platform}/voice"
    form = call_form(telephony_platform, "7")
    signed_post(client, voice, form)
    if telephony_platform == "twilio":  # Twilio's Enqueue says so in its action
        answer = signed_post(client, f"{voice}/queue/result", {**form, "QueueResult": "queue-full"})
    else:  # the helpline's own queue sends the caller on with what became of them
        answer = signed_post(client, f"{voice}/queue/result?result=queue-full", form)
    assert answer.status_code == 200
    assert "धन्यवाद। हमारा सहायक आपको जल्द ही वापस कॉल करेगा।" in answer.text
    assert answer.text.replace(" />", "/>").endswith("<Hangup/></Response>")
    [callback] = rows(app, CallbackRequest)
    assert (callback.phone, callback.reason) == (CITIZEN, "queue_unavailable")


def test_a_step_out_of_turn_repeats_where_the_caller_is(app: Flask, telephony_platform: str) -> None:
    client, voice = app.test_client(), f"/{telephony_platform}/voice"
    form = call_form(telephony_platform, "8")
    signed_post(client, voice, form)
    current = signed_post(client, f"{voice}/step?turn=0", {**form, "Digits": "2"})
    stray = signed_post(client, f"{voice}/step?turn=99", {**form, "Digits": "1"})
    assert stray.data == current.data
    assert "step?turn=1" in stray.text
    assert stored(app) == []


def test_a_step_whose_state_is_gone_starts_the_call_over(app: Flask, telephony_platform: str) -> None:
    client, voice = app.test_client(), f"/{telephony_platform}/voice"
    answer = signed_post(client, f"{voice}/step?turn=3", {**call_form(telephony_platform, "9"), "Digits": "1"})
    assert answer.status_code == 200
    start = voice if telephony_platform == "twilio" else PUBLIC_URL + voice  # Plivo takes only full URLs
    assert f'<Redirect method="POST">{start}</Redirect>' in answer.text
