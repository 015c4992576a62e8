"""`telephony.http` encodes a form, a query and credentials as `requests` does, and reads an answer's
text in the charset it names."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from requests.models import RequestEncodingMixin

from telephony.http import Answer, basic_auth, form, query

FIELDS: list[dict[str, Any]] = [
    {"To": "+919876543210", "Body": "नमस्ते & 100% = ok?"},
    {"StatusCallbackEvent": ["initiated", "completed"], "Timeout": 30, "Record": True},
    {"Left": None, "Empty": "", "Bytes": b"a b"},
    {"Tuple": ("x", None, "y")},
    {},
]


@pytest.mark.parametrize("fields", FIELDS)
def test_a_form_is_encoded_as_requests_encodes_a_dict(fields: dict[str, Any]) -> None:
    assert form(fields) == RequestEncodingMixin._encode_params(fields)


def test_a_query_is_appended_as_requests_appends_params() -> None:
    fields: dict[str, Any] = {"FriendlyName": "room 7/ok", "PageSize": 1, "Status": None}
    for url in ("https://api.example/x.json", "https://api.example/x.json?a=1"):
        prepared = requests.Request("GET", url, params=fields).prepare()
        assert query(url, fields) == prepared.url
    assert query("https://api.example/x", {}) == "https://api.example/x"


def test_basic_credentials_are_those_requests_sends() -> None:
    prepared = requests.Request("GET", "https://api.example/", auth=("ACabc", "tökén")).prepare()
    assert basic_auth("ACabc", "tökén") == prepared.headers["Authorization"]


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        ("application/json; charset=utf-8", "नमस्ते".encode(), "नमस्ते"),
        ("application/json", "नमस्ते".encode(), "नमस्ते"),
        ('text/plain; charset="latin-1"', "café".encode("latin-1"), "café"),
        ("text/plain; charset=no-such-charset", b"ok", "ok"),
        ("application/json", b"\xff{}", "\ufffd{}"),
    ],
)
def test_an_answers_text_is_read_in_the_charset_it_names(content_type: str, body: bytes, text: str) -> None:
    assert Answer(200, {"content-type": content_type}, body).text == text
