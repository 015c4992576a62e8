"""The helpline's reading of forms and query strings is Werkzeug's (the standard library's `parse_qsl`)."""

from __future__ import annotations

import io
from urllib.parse import parse_qsl

import flask
import pytest
import werkzeug.urls  # noqa: F401 (registers the "werkzeug.url_quote" error handler)
from flask import Flask, request
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from sewamitra.forms import Fields, Request, parse

FORM = "application/x-www-form-urlencoded"
# What a form or query string may hold: separators, escapes (good, bad, partial, not UTF-8), spaces.
PIECES = st.sampled_from(
    ["&", "=", "+", "%", "%2B", "%2b", "%252B", "%2", "%20", "%E0%A4%B9", "%ff", "%e0%a4", "%zz", "a", "é", " ", ";"]
)


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


def _environ(body: bytes, *, length: int | None = None, content_type: str = FORM) -> dict[str, object]:
    return {
        "REQUEST_METHOD": "POST",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body) if length is None else length),
    }


BODIES = st.tuples(st.lists(PIECES | st.text(max_size=4), max_size=30).map("".join), st.sampled_from([b"", b"\xff"]))


@given(BODIES, st.booleans(), st.sampled_from([FORM, f"{FORM}; charset=UTF-8", "text/plain"]))
def test_a_body_and_its_form_read_as_werkzeug_reads_them(
    body: tuple[str, bytes], read_first: bool, content_type: str
) -> None:
    """A webhook's size check reads its body first (`read_first`), then its form is read; a body that is
    not UTF-8 is an empty form, as Werkzeug's silent parser gives it."""
    data = body[0].encode() + body[1]
    ours, werkzeugs = (
        Request(_environ(data, content_type=content_type)),
        flask.Request(_environ(data, content_type=content_type)),
    )
    with Flask(__name__).app_context():
        if read_first:
            assert ours.get_data(cache=True) == werkzeugs.get_data(cache=True) == data
        assert ours.form.to_dict(flat=False) == werkzeugs.form.to_dict(flat=False)
        assert not ours.files
        assert not werkzeugs.files
        assert ours.stream.read() == werkzeugs.stream.read()
        assert ours.get_data() == werkzeugs.get_data()


def test_a_body_shorter_than_its_length_is_a_client_gone() -> None:
    with Flask(__name__).app_context(), pytest.raises(ClientDisconnected):
        Request(_environ(b"Digits=1", length=20)).get_data(cache=True)


def test_a_body_over_the_limit_is_refused_as_werkzeug_refuses_it() -> None:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 8
    with app.app_context(), pytest.raises(RequestEntityTooLarge):
        Request(_environ(b"Digits=12345")).get_data(cache=True)


def test_a_body_without_a_length_is_read_by_werkzeugs_stream() -> None:
    """A chunked body, from a server that ends its input (as gunicorn does): read to its end, within the limit."""
    environ = _environ(b"Digits=1&From=%2B91")
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    with Flask(__name__).app_context():
        request = Request(environ)
        assert request.get_data(cache=True) == b"Digits=1&From=%2B91"
        assert request.form.to_dict() == {"Digits": "1", "From": "+91"}
