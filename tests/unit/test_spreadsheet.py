"""Every CSV of the console opens right in Excel: a byte-order mark, CRLF rows, Hindi that survives
the round trip, moments on the call centre's clock with the zone named, and no formula run."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from console import spreadsheet

INDIA = ZoneInfo("Asia/Kolkata")


def read(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.removeprefix(spreadsheet.BOM), newline="")))


def test_the_sheet_starts_with_a_bom_and_ends_every_row_with_crlf() -> None:
    text = spreadsheet.text(["district", "note"], [["LUCKNOW", "line one\nline two"], ["AGRA", ""]], INDIA)
    data = text.encode("utf-8")
    assert data.startswith(b"\xef\xbb\xbfdistrict,note\r\n")
    assert data.endswith(b"AGRA,\r\n")
    assert read(text)[1] == ["LUCKNOW", "line one\nline two"]  # a line break inside a cell stays in it


def test_hindi_goes_through_pythons_csv_unchanged() -> None:
    rows = [["लखनऊ", "गौतम बुद्ध नगर", "नल टपक रहा है, जल्दी आइए"]]
    data = spreadsheet.text(["district", "other", "note"], rows, INDIA).encode("utf-8")
    assert list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))[1:] == rows


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("+919812345678", "+919812345678"),  # a phone number, as the agent dials it
        ("नमस्ते", "नमस्ते"),
        (5, "5"),
        (None, ""),
    ],
)
def test_a_cell_a_spreadsheet_would_run_is_defused(value: object, shown: str) -> None:
    assert spreadsheet.cell(value, INDIA) == shown


def test_moments_are_on_the_call_centres_clock_and_the_header_names_it() -> None:
    assert spreadsheet.cell(datetime(2025, 3, 9, 18, 30, tzinfo=UTC), INDIA) == "2025-03-10 00:00:00"
    assert spreadsheet.timed("created_at", INDIA) == "created_at (Asia/Kolkata)"
