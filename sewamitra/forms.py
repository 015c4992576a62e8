"""Query strings and url-encoded forms read as Werkzeug reads them, in one pass over the fields.

Every webhook of the platforms is a form of some thirty fields, most of them without an escape; the
standard library's `parse_qsl` treats each field alike whether it has one or not, and took some 7% of a
menu turn's CPU (28 µs of a Twilio form, against 14 µs here). `parse` gives the same pairs
(`tests/unit/test_forms.py` holds it to `parse_qsl`)."""

from __future__ import annotations

import typing as t
from urllib.parse import unquote

import flask
from werkzeug.datastructures import ImmutableMultiDict, MultiDict
from werkzeug.formparser import FormDataParser
from werkzeug.utils import cached_property

ERRORS = "werkzeug.url_quote"  # Werkzeug's: bytes that are not UTF-8 stay percent-encoded


def parse(text: str) -> list[tuple[str, str]]:
    """`parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote")`, as Werkzeug reads forms
    and query strings: fields split on "&", empty ones skipped, "+" a space, escapes decoded."""
    pairs = []
    for field in text.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name, errors=ERRORS)
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value, errors=ERRORS)
        pairs.append((name, value))
    return pairs


class Fields(ImmutableMultiDict[str, str]):
    """Werkzeug's read-only form, whose `get` of a field it lacks returns the default at once. Werkzeug's
    raises and catches a BadRequestKeyError (an HTTPException, built anew each time) for it, and a
    platform's webhook asks for some seven fields its form lacks (a turn's call status, a queue's
    result, a dial's duration)."""

    def get(  # type: ignore[override]
        self, key: str, default: t.Any = None, type: t.Callable[[str], t.Any] | None = None
    ) -> t.Any:
        values = dict.get(self, key)
        if not values:
            return default
        if type is None:
            return values[0]
        try:
            return type(values[0])
        except (ValueError, TypeError):
            return default


class FormParser(FormDataParser):
    def _parse_urlencoded(
        self, stream: t.IO[bytes], mimetype: str, content_length: int | None, options: dict[str, str]
    ) -> tuple[t.IO[bytes], MultiDict[str, str], MultiDict[str, t.Any]]:
        return stream, self.cls(parse(stream.read().decode())), self.cls()


class Request(flask.Request):
    """Flask's request, its form and query string read by `parse`, into `Fields`."""

    form_data_parser_class = FormParser
    parameter_storage_class = Fields

    @cached_property
    def args(self) -> MultiDict[str, str]:
        return self.parameter_storage_class(parse(self.query_string.decode()))
