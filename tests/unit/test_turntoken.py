"""A turn's token: the session back as it was signed, for the call it was signed for, by this
helpline's key; anything else reads as nothing."""

from __future__ import annotations

import base64
import zlib

from flows.engine import Session, Status
from ivr import turntoken

KEY = turntoken.key_of("s" * 40)
CALL, OTHER_CALL = "CA" + "1" * 32, "CA" + "2" * 32
SESSION = Session(
    "helpline",
    "service_menu",
    Status.WAITING_KEYS,
    "hi",
    {"district": "लखनऊ", "slots": [{"digit": "1"}]},
    {},
    0,
    3,
    ("welcome", "language"),
)


def test_a_token_gives_back_its_session_for_its_call() -> None:
    token = turntoken.sign(KEY, CALL, SESSION)
    assert turntoken.read(KEY, CALL, token) == SESSION
    assert turntoken.sign(KEY, CALL, SESSION) == token  # the same session, the same token: a retry's answer is the same


def test_a_token_reads_as_nothing_for_another_call_or_under_another_key() -> None:
    token = turntoken.sign(KEY, CALL, SESSION)
    assert turntoken.read(KEY, OTHER_CALL, token) is None
    assert turntoken.read(turntoken.key_of("another secret key"), CALL, token) is None
    assert turntoken.key_of("s" * 40) != "s" * 40  # the tokens' key is derived, not the secret itself


def test_a_session_changed_under_its_mac_reads_as_nothing() -> None:
    body, _, mac = turntoken.sign(KEY, CALL, SESSION).partition(".")
    other = turntoken.sign(KEY, CALL, Session(**{**SESSION.__dict__, "turn": 9})).partition(".")[0]
    forged = zlib.compressobj(6, zlib.DEFLATED, turntoken.WINDOW_BITS)
    raw = b'{"flow":"helpline","node":"create_request","status":"waiting_keys"}'
    made_up = base64.urlsafe_b64encode(forged.compress(raw) + forged.flush()).rstrip(b"=").decode()
    spoiled_ones = (f"{other}.{mac}", f"{made_up}.{mac}", body, f"{body}.", f"{body}.{mac[:-1]}", "", "é.é", "x" * 9000)
    for spoiled in spoiled_ones:
        assert turntoken.read(KEY, CALL, spoiled) is None, spoiled


def test_a_sessions_body_is_every_calls_and_only_its_mac_is_the_calls_own() -> None:
    body = turntoken.body_of(SESSION)
    for call_id in (CALL, OTHER_CALL):
        token = turntoken.signed(KEY, call_id, body)
        assert token == turntoken.sign(KEY, call_id, SESSION)
        assert turntoken.verified(KEY, call_id, token) == body
        assert turntoken.session_of(body) == SESSION
    assert turntoken.verified(KEY, OTHER_CALL, turntoken.signed(KEY, CALL, body)) is None
    assert turntoken.session_of(b"not deflated json") is None
