"""The helpline computes Twilio's signature itself, as the SDK's validator does, for any form."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from sewamitra.forms import Fields, parse
from telephony.twilio.signature import is_signed, signature_of

TOKEN = "12345678901234567890123456789012"
URL = "https://helpline.example.org/twilio/voice/step?turn=2&token=eJx.abc"

fields = st.lists(st.tuples(st.sampled_from(["Digits", "CallSid", "From", "a", "é", ""]), st.text(max_size=12)))


@given(fields, st.text(min_size=1, max_size=40))
def test_any_form_is_signed_as_the_sdk_signs_it(pairs: list[tuple[str, str]], token: str) -> None:
    form = Fields(pairs)
    assert signature_of(token, URL, form) == RequestValidator(token).compute_signature(URL, form)


def test_a_webhook_form_as_read_from_its_body() -> None:
    form = Fields(parse("CallSid=CA1&From=%2B919876543210&Digits=2&Digits=1&Digits=2&Caller=&AccountSid=AC1"))
    sdk = RequestValidator(TOKEN).compute_signature(URL, form)
    assert signature_of(TOKEN, URL, form) == sdk
    assert is_signed(TOKEN, URL, form, sdk)
    assert not is_signed(TOKEN, URL, form, signature_of(TOKEN, URL + "&turn=3", form))
    assert not is_signed(TOKEN, URL, Fields([*form.items(multi=True), ("Digits", "9")]), sdk)
    assert not is_signed(TOKEN, URL, form, "")


def test_the_url_twilio_signed_with_its_port_is_still_ours() -> None:
    """Twilio signs some URLs with the port spelled out: the SDK's own check tries both spellings."""
    form = Fields([("CallSid", "CA1")])
    with_port = "https://helpline.example.org:443/twilio/voice"
    assert is_signed(TOKEN, "https://helpline.example.org/twilio/voice", form, signature_of(TOKEN, with_port, form))
