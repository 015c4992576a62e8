"""Every CSV the console hands out, made one way so that Excel opens it right: UTF-8 with a
byte-order mark (else Excel reads Hindi as Windows-1252), CRLF rows, times in the call centre's
zone with the zone named in the header, and no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Response

BOM = "\ufeff"
# A cell starting so is a formula to Excel, LibreOffice and Google Sheets (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
E164 = re.compile(r"^\+\d{8,15}$")  # a phone number is data, not a formula: kept as the agent dials it
MOMENT = "%Y-%m-%d %H:%M:%S"  # what Excel reads as a date and time


def cell(value: object, zone: ZoneInfo) -> str:
    """One value as a spreadsheet should show it: a moment in the call centre's zone, text defused."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(zone).strftime(MOMENT)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) and not E164.match(text) else text


def timed(column: str, zone: ZoneInfo) -> str:
    """A header of a column of moments, naming the zone they are in: 'created_at (Asia/Kolkata)'."""
    return f"{column} ({zone.key})"


def text(header: Sequence[str], rows: Iterable[Sequence[object]], zone: ZoneInfo) -> str:
    """The sheet as text: a BOM, then the header and each row, CRLF-terminated, every cell made safe."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([cell(name, zone) for name in header])
    for row in rows:
        writer.writerow([cell(value, zone) for value in row])
    return out.getvalue()


def response(name: str, header: Sequence[str], rows: Iterable[Sequence[object]], zone: ZoneInfo) -> Response:
    """A download of the sheet, as UTF-8 bytes (the BOM first)."""
    return Response(
        text(header, rows, zone).encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename={name}"},
    )
