"""The helpline computes Plivo's V3 signature itself, as the SDK's `validate_v3_signature` checks it,
for any form and any query of a URL of ASCII."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st
from plivo.utils.signature_v3 import construct_post_url, get_signature_v3, validate_v3_signature

from sewamitra.forms import Fields, parse
from telephony.plivo import signature
from telephony.plivo.signature import is_signed, signature_of

TOKEN = "plivo-test-token-0123456789"
NONCE = "12345678901234567890"
ROOT = "https://helpline.example.gov.in/plivo/voice/step"

names = st.sampled_from(["Digits", "CallUUID", "From", "a", "é", "", "x y"])
pairs = st.lists(st.tuples(names, st.text(max_size=10)), max_size=8)


def sdk(url: str, form: Fields, nonce: str = NONCE) -> str:
    """The SDK's signature, from the parameters the helpline gave its validator."""
    params = {name: form.getlist(name) if len(form.getlist(name)) > 1 else form[name] for name in form}
    return get_signature_v3(TOKEN.encode(), construct_post_url(url, params).decode(), nonce.encode()).decode()


@given(pairs, pairs, st.sampled_from(["", "/", ";v=1", "#end"]))
def test_any_form_and_query_are_signed_as_the_sdk_signs_them(
    form: list[tuple[str, str]], query: list[tuple[str, str]], tail: str
) -> None:
    asked = "&".join(f"{quote(name)}={quote(value)}" for name, value in query)
    path, fragment = (ROOT, tail) if tail == "#end" else (ROOT + tail, "")
    url = path + (f"?{asked}" if query else "") + fragment
    fields = Fields(form)
    assert outcome(signature_of, TOKEN, url, fields, NONCE) == outcome(lambda *_: sdk(url, fields))


def outcome(sign: Callable[..., str], *args: object) -> str:
    """A signature, or the error that refused it: the SDK reads a query as bytes and cannot give back
    a value that was not ASCII once unquoted (`parse_qs`), and the helpline reads it as the SDK does."""
    try:
        return sign(*args)
    except UnicodeError as refused:
        return type(refused).__name__


def test_a_webhook_as_plivo_sends_it() -> None:
    form = Fields(parse("CallUUID=abc&From=919876543210&Digits=2&Digits=1&CallStatus=in-progress"))
    url = ROOT + "?turn=2&token=eJx.abc"
    signed = sdk(url, form)
    params = {name: form.getlist(name) if len(form.getlist(name)) > 1 else form[name] for name in form}
    assert validate_v3_signature("POST", url, NONCE, TOKEN, signed, params)
    assert is_signed(TOKEN, url, form, NONCE, signed)
    assert is_signed(TOKEN, url, form, NONCE, f"someone-else's,{signed}")  # Plivo may list several
    assert not is_signed(TOKEN, url, form, NONCE + "1", signed)
    assert not is_signed(TOKEN, url.replace("turn=2", "turn=3"), form, NONCE, signed)
    assert not is_signed(TOKEN, url, Fields([*form.items(multi=True), ("Digits", "9")]), NONCE, signed)
    assert not is_signed(TOKEN, url, form, "", signed)
    assert is_signed(TOKEN, ROOT, Fields(), NONCE, sdk(ROOT, Fields()))


def test_a_url_the_sdk_refuses_is_not_signed() -> None:
    form = Fields([("CallUUID", "abc")])
    for url in ("ftp://helpline.example.gov.in/plivo/voice", "https://सेवा.example/plivo/voice"):
        assert not is_signed(TOKEN, url, form, NONCE, "anything")


SDK_URL = re.compile(r"(http[s]?://(?:[a-zA-Z]|[0-9]|[$-_@.&+]|[!*\(\),]|(?:%[0-9a-fA-F][0-9a-fA-F]))+|None)")


@given(st.sampled_from(["https://", "http://", "None", "ftp://", "https:/", ""]), st.text(max_size=6))
def test_a_url_passes_the_check_the_sdk_makes_of_it(start: str, rest: str) -> None:
    """The SDK's `is_url`, matched at the start: the helpline's pattern passes the same URLs."""
    url = start + rest
    assert bool(signature._URL.match(url)) == bool(SDK_URL.match(url))
