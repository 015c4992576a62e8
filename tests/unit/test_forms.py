"""The helpline's reading of forms and query strings is Werkzeug's (the standard library's `parse_qsl`)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import werkzeug.urls  # noqa: F401 (registers the "werkzeug.url_quote" error handler)
from flask import Flask, request
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import ImmutableMultiDict

from sewamitra.forms import Fields, Request, parse

FORM = "application/x-www-form-urlencoded"
# What a form or query string may hold: separators, escapes (good, bad, partial, not UTF-8), spaces.
PIECES = st.sampled_from(["&", "=", "+", "%", "%2B", "%20", "%E0%A4%B9", "%ff", "%e0%a4", "%zz", "a", "é", " ", ";"])


@given(st.lists(PIECES | st.text(max_size=4), max_size=30).map("".join))
def test_a_form_reads_as_parse_qsl_reads_it(text: str) -> None:
    assert parse(text) == parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote")


def test_a_twilio_webhook_reads_its_form_and_query_string() -> None:
    app = Flask(__name__)
    app.request_class = Request
    body = "CallSid=CA0123&From=%2B919812345678&Digits=&SpeechResult=ghar+ka+nal&Caller=%E0%A4%B9&Bad=%ff"
    path = "/twilio/voice/step?turn=3&token=ab.cd&x"
    with app.test_request_context(path, method="POST", data=body, content_type=FORM):
        assert request.form.to_dict() == {
            "CallSid": "CA0123",
            "From": "+919812345678",
            "Digits": "",
            "SpeechResult": "ghar ka nal",
            "Caller": "ह",
            "Bad": "%FF",  # not UTF-8: kept escaped, as Werkzeug keeps it
        }
        assert request.args.to_dict() == {"turn": "3", "token": "ab.cd", "x": ""}


KEYS = st.sampled_from(["turn", "Digits", "From", "missing", ""])
VALUES = st.sampled_from(["3", "-1", "", "x", "²", " 7 ", "1e3"])


@given(st.lists(st.tuples(KEYS, VALUES), max_size=6), KEYS, st.sampled_from([None, int, str, float]))
def test_a_field_is_got_as_werkzeug_gets_it(pairs: list[tuple[str, str]], key: str, convert: type | None) -> None:
    """`Fields.get` answers a field the form lacks without Werkzeug's exception, and the same as Werkzeug."""
    assert Fields(pairs).get(key, "default", convert) == ImmutableMultiDict(pairs).get(key, "default", convert)  # type: ignore[arg-type]


def test_the_request_reads_its_form_and_query_string_into_fields() -> None:
    app = Flask(__name__)
    app.request_class = Request
    with app.test_request_context("/step?turn=3", method="POST", data="Digits=1", content_type=FORM):
        assert isinstance(request.args, Fields)
        assert isinstance(request.form, Fields)
        assert request.args.get("turn", -1, int) == 3
        assert request.form.get("CallStatus") is None
