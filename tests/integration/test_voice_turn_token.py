"""A menu turn carries the call's session in its step URL, signed by the helpline (`ivr.turntoken`):
a turn that commits nothing touches no shared state; a token tampered with, taken to another call or
another turn is refused with the spoken apology; a replayed one commits nothing twice."""

from __future__ import annotations

from pathlib import Path
from time import sleep
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, func, select

from core.settings import Settings
from flows import prompts
from sewamitra import logs
from sewamitra.app import create_app
from storage.models import ServiceRequest
from tests.factories import ALWAYS_OPEN, CITIZEN, call, redis_sends, signed_post, with_hours

CALL = {"CallSid": "CA" + "7" * 32, "From": CITIZEN, "To": "+18005550100", "Direction": "inbound"}
OTHER_CALL = {**CALL, "CallSid": "CA" + "8" * 32}
APOLOGY = prompts.text("technical_problem", "en")


@pytest.fixture
def app_settings(helpline_settings: Settings) -> Settings:
    return with_hours(helpline_settings, **ALWAYS_OPEN)


def post(client: FlaskClient, path_and_query: str, form: dict[str, str]) -> str:
    """A signed post as the platform makes it; its document."""
    answer = signed_post(client, path_and_query, form)
    assert answer.status_code == 200, answer.data
    return answer.text


def next_step(document: str) -> str:
    """The Gather's action: where the caller's keys go next (path and query)."""
    [gather] = ElementTree.fromstring(document).findall("Gather")
    return gather.get("action", "")


def token_of(step: str) -> str:
    [token] = parse_qs(urlsplit(step).query)["token"]
    return token


def keyed(client: FlaskClient, keys: list[str], form: dict[str, str] = CALL) -> list[str]:
    """The call rung and `keys` keyed one step after another; each step's URL, the last one's next too."""
    steps = [next_step(post(client, "/twilio/voice", form))]
    for digits in keys:
        steps.append(next_step(post(client, steps[-1], {**form, "Digits": digits})))
    return steps


def requests_stored(app: Flask) -> int:
    with Session(app.extensions["sewamitra"].engine) as session:
        return session.exec(select(func.count()).select_from(ServiceRequest)).one()


def test_every_step_url_carries_a_token_of_the_call_and_the_call_still_books(app: Flask) -> None:
    transcript = call(app, "2,1,1,226001#,1,9")
    steps = [r.url for r in transcript.requests if "/step" in r.url]
    assert steps
    assert all(token_of(url) for url in steps)
    assert requests_stored(app) == 1


def test_a_menu_turn_that_commits_nothing_sends_nothing_to_redis(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    client = app.test_client()
    _english, new_request = keyed(client, ["2"])  # the language is remembered: that turn commits
    stored_before = app.extensions["sewamitra"].redis.hgetall("sewamitra:call:" + CALL["CallSid"])
    sent = redis_sends(monkeypatch)
    services = post(client, new_request, {**CALL, "Digits": "1"})  # a new request: the service menu

    assert sent == []
    assert prompts.text("choose_service", "en") in services
    assert token_of(next_step(services)) != token_of(new_request)
    monkeypatch.undo()
    assert app.extensions["sewamitra"].redis.hgetall("sewamitra:call:" + CALL["CallSid"]) == stored_before


def test_the_same_menu_turn_again_is_answered_the_same(app: Flask) -> None:
    client = app.test_client()
    _, new_request = keyed(client, ["2"])
    first = post(client, new_request, {**CALL, "Digits": "1"})
    assert post(client, new_request, {**CALL, "Digits": "1"}) == first


def test_a_menu_every_caller_hears_is_answered_from_memory_with_the_calls_own_token(app: Flask) -> None:
    client = app.test_client()
    first = keyed(client, ["2", "1"])  # English, a new request: the service menu
    turns = app.extensions["ivr"].menu_turns
    hits = turns.hits
    another = {**OTHER_CALL, "From": "+919415000003"}  # another new caller: the same menus, in the same order
    second = keyed(client, ["2", "1"], another)
    assert turns.hits == hits + 1  # the new request's turn, as the first call had it
    assert token_of(second[-1]) != token_of(first[-1])  # each call's own, under its own MAC
    assert second[-1].replace(token_of(second[-1]), "") == first[-1].replace(token_of(first[-1]), "")
    plumber = post(client, second[-1], {**another, "Digits": "1"})  # the token works for that call
    assert prompts.text("enter_pincode", "en") in plumber
    refused = post(client, second[-1], {**CALL, "Digits": "1"})  # and for no other
    assert APOLOGY in refused


def test_a_remembered_turn_is_refused_at_another_turn(app: Flask) -> None:
    client = app.test_client()
    steps = keyed(client, ["2", "1"])
    post(client, steps[-1], {**CALL, "Digits": "1"})  # the service menu's turn, now remembered
    elsewhere = steps[-1].replace("turn=2", "turn=5")
    answer = post(client, elsewhere, {**CALL, "Digits": "1"})
    assert APOLOGY in answer
    assert "Gather" not in answer


def test_a_turn_that_read_the_time_or_anyones_records_is_not_remembered(app: Flask) -> None:
    client = app.test_client()
    turns = app.extensions["ivr"].menu_turns
    steps = keyed(client, ["2", "1", "1", "226001"])  # the PIN code's district read back: remembered
    kept = len(turns)
    slots = post(client, steps[-1], {**CALL, "Digits": "1"})  # right: the slots open now are read out
    assert prompts.text("choose_slot", "en") in slots
    assert len(turns) == kept
    tracking = {**OTHER_CALL, "From": "+919415000003"}
    main_menu = keyed(client, ["2"], tracking)[-1]
    requests_read = post(client, main_menu, {**tracking, "Digits": "2"})  # their requests: anyone's records
    assert prompts.text("enter_request_number", "en") in requests_read  # none yet
    assert len(turns) == kept


def test_a_recording_added_while_the_helpline_runs_is_played_at_a_remembered_menu(
    app_settings: Settings, tmp_path: Path
) -> None:
    recordings = tmp_path / "recordings"
    app = create_app(app_settings.model_copy(update={"recordings_dir": recordings}))
    client = app.test_client()
    before = post(client, keyed(client, ["2"])[-1], {**CALL, "Digits": "1"})
    sleep(0.05)  # directory times are coarse: the recording comes clearly after that first answer
    (recordings / "en").mkdir(parents=True)
    (recordings / "en" / "choose_service.mp3").write_bytes(b"ID3")

    another = {**OTHER_CALL, "From": "+919415000003"}  # another new caller: the same menus
    after = post(client, keyed(client, ["2"], another)[-1], {**another, "Digits": "1"})

    assert "<Play" not in before
    assert "/recordings/en/choose_service.mp3</Play>" in after
    app.extensions["sewamitra"].engine.dispose()


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda token: "x" + token[1:], id="the session changed"),
        pytest.param(lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"), id="the MAC changed"),
        pytest.param(lambda token: token.partition(".")[0], id="no MAC"),
        pytest.param(lambda token: "", id="empty"),
        pytest.param(lambda token: "not a token at all", id="junk"),
    ],
)
def test_a_tampered_token_is_refused_with_the_spoken_apology(app: Flask, spoil: Any) -> None:
    client = app.test_client()
    steps = keyed(client, ["2", "1", "1"])  # English, a new request, a plumber: the PIN code is asked
    pincode = steps[-1]
    spoiled = pincode.replace(token_of(pincode), spoil(token_of(pincode)))
    answer = post(client, spoiled, {**CALL, "Digits": "226001"})
    assert APOLOGY in answer
    assert "226001" not in answer
    assert "Lucknow" not in answer
    assert requests_stored(app) == 0


def test_a_token_taken_to_another_call_is_refused(app: Flask) -> None:
    client = app.test_client()
    steps = keyed(client, ["2", "1"])
    post(client, "/twilio/voice", OTHER_CALL)
    answer = post(client, steps[-1], {**OTHER_CALL, "Digits": "1"})  # signed by the platform, for the other call
    assert APOLOGY in answer
    assert "Gather" not in answer


def test_a_token_taken_to_another_turn_is_refused(app: Flask) -> None:
    client = app.test_client()
    steps = keyed(client, ["2", "1"])
    elsewhere = steps[-1].replace("turn=2", "turn=5")
    assert elsewhere != steps[-1]
    answer = post(client, elsewhere, {**CALL, "Digits": "1"})
    assert APOLOGY in answer


def test_a_whole_booking_replayed_from_its_old_tokens_books_once(app: Flask) -> None:
    client = app.test_client()
    keys = ["2", "1", "1", "226001", "1"]  # English, a new request, a plumber, the PIN code, right
    steps = keyed(client, keys)
    slot = steps.pop()  # the slot menu: 9, as soon as possible; then the address is recorded
    [record] = ElementTree.fromstring(post(client, slot, {**CALL, "Digits": "9"})).findall("Record")
    nothing_said = record.get("action", "") + "&empty=1"
    booked = post(client, nothing_said, CALL)
    assert "request number" in booked
    # The same steps posted again, every one signed anew by the platform: the menus answer again,
    # the turns that commit answer as they did, and nothing is filed twice.
    for url, digits in zip([*steps, slot], [*keys, "9"], strict=True):
        post(client, url, {**CALL, "Digits": digits})
    assert post(client, nothing_said, CALL) == booked
    assert requests_stored(app) == 1


def test_without_a_secret_key_the_session_stays_in_redis(app_settings: Settings) -> None:
    app = create_app(app_settings.model_copy(update={"secret_key": None}))
    client = app.test_client()
    steps = keyed(client, ["2", "1"])
    assert all("token=" not in urlsplit(step).query for step in steps)
    transcript = call(app, "2,1,1,226001#,1,9", from_number="+919415000002")
    assert not transcript.errors
    assert requests_stored(app) == 1
    app.extensions["sewamitra"].engine.dispose()


def test_the_access_log_hides_the_token(app: Flask) -> None:
    """What the session holds (a PIN code, a request number, a worker's name) stays out of the logs."""
    step = keyed(app.test_client(), ["2", "1", "1", "226001"])[-1]
    line = logs.scrub(f'127.0.0.1 - - "POST {step} HTTP/1.1" 200 512 "-" "TwilioProxy/1.1"')
    assert token_of(step) not in line
    assert "&token=[hidden] HTTP/1.1" in line
