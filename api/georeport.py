"""Open311 GeoReport v2's two formats: XML (its required one) and JSON, the same data by the
Spark convention: a list is a JSON array and, in XML, a root element holding one element per item."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from xml.etree import ElementTree

from flask import Response

Format = Literal["json", "xml"]
# In XML, the element each item of a list is wrapped in, by the list's name.
ITEMS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
}
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")  # characters XML 1.0 cannot hold
CONTENT_TYPES = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}


Data = Sequence[Mapping[str, Any]] | Mapping[str, Any]


def answer(fmt: Format, root: str, data: Data, status: int = 200) -> Response:
    """`data` (a list of items, or one object) in `fmt`, under `root` in XML."""
    body = _json(data) if fmt == "json" else _xml(root, data)
    return Response(body, status=status, content_type=CONTENT_TYPES[fmt])


def errors(fmt: Format, status: int, problems: Mapping[str, str]) -> Response:
    """GeoReport's error list: one error a field at fault (`field` names it), code = the HTTP status."""
    items = [{"code": status, "description": text, "field": field or None} for field, text in problems.items()]
    return answer(fmt, "errors", items, status)


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _xml(root: str, data: Data) -> bytes:
    element = ElementTree.Element(root)
    _fill(element, data)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(element, encoding="utf-8")


def _fill(element: ElementTree.Element, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _fill(ElementTree.SubElement(element, key), inner)
    elif isinstance(value, list | tuple):
        item = ITEMS.get(element.tag, "item")
        for inner in value:
            _fill(ElementTree.SubElement(element, item), inner)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = NOT_XML.sub("", str(value))
