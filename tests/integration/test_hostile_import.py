"""Hostile worker files: random cells, formulas, control characters, other scripts' digits, huge
cells, bad encodings and random bytes, read the way `sewamitra import workers` reads them. Nothing
escapes but the documented ImportFileError (and then nothing is written); otherwise every data row
is either imported or reported once by its row number, every good row goes in, and what is stored
is clean: no formula, no control character, a real mobile number, a known PIN code and skill."""

from __future__ import annotations

import csv
import io
import itertools
import unicodedata
from datetime import date

import sqlalchemy as sa
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlmodel import Session, func, select

from core.exceptions import ImportFileError
from core.settings import Settings
from directory.importer import FORMULA_STARTS, OPTIONAL, REQUIRED, ImportReport, import_workers
from storage.db import session_scope
from storage.models import Provider, Worker, WorkerSkill
from tests.hostile import NASTY, junk

TODAY = date(2026, 11, 23)
COLUMNS = list(REQUIRED + OPTIONAL)
MOBILES = (f"94{n:08d}" for n in itertools.count(10_000_000))  # never twice, in any file of any run
CODES = ["plumber", "electrician", "carpenter", "painter", "cleaning", "pest_control", "beautician"]
PINCODES = ["226001", "221001", "208001", "282001", "226 010"]
LETTERS = st.characters(categories=["L", "M"], exclude_characters="\x00")
HOSTILE_CELLS = st.one_of(
    junk(200),
    st.sampled_from(FORMULA_STARTS).map(lambda start: start + "SUM(A1:A9)"),
    st.sampled_from(
        [
            "\t=1+1",
            " =cmd|' /C calc'!A0",
            "\r\n=1",
            "\u00a0@SUM(1)",
            "２２６００１",
            "२२६००१",
            "226001\x00",
            "yes\x00",
            "YES ",
            "Yes",
            "nO",
            "1e400",
            "nan",
            "-0",
            "२५",
            "2026-02-30",
            "२०२६-०१-०१",
            "9999-12-31",
            "plumber;;PLUMBER",
            "plumber; welder",
            ";",
            "x" * 121,
        ]
    ),
)


@st.composite
def good_row(draw: st.DrawFn) -> dict[str, str]:
    """A row a careful agency would send: every cell right, optional ones sometimes left out."""
    name = draw(st.text(LETTERS, min_size=1, max_size=30)) + " " + draw(st.text(LETTERS, min_size=1, max_size=30))
    row = {
        "name": name,
        "phone": next(MOBILES),
        "skills": ";".join(draw(st.lists(st.sampled_from(CODES), min_size=1, max_size=3))),
        "pincode": draw(st.sampled_from(PINCODES)),
        "provider": draw(st.sampled_from(["", "Gomti Home Services", "  gomti HOME services ", "Kashi Care"])),
        "police_verified": draw(st.sampled_from(["yes", "no", "YES", " No "])),
        "available": draw(st.sampled_from(["yes", "no"])),
    }
    if row["police_verified"].strip().lower() == "yes":  # a verified worker comes with the police's reference and date
        row |= {
            "police_reference": draw(st.sampled_from(["LKO/PV/2026/0412", "UP-VNS-2025-004512"])),
            "police_verified_on": draw(st.sampled_from(["2026-01-15", "2025-03-14"])),
        }
    if draw(st.booleans()):
        row |= {
            "service_radius_km": draw(st.sampled_from(["", "5", "12.5", "200"])),
            "language": draw(st.sampled_from(["", "hi", "EN"])),
            "voice_preferred": draw(st.sampled_from(["", "no"])),
            "certification": draw(st.sampled_from(["", "RPL under PMKVY"])),
            "origin": "",
        }
    return row


@st.composite
def spoilt_row(draw: st.DrawFn) -> dict[str, str]:
    """A good row with some cells replaced by junk (it may still be good, by chance)."""
    row = draw(good_row())
    for column in draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=4)):
        row[column] = draw(HOSTILE_CELLS)
    return row


ROWS = st.lists(st.one_of(st.tuples(st.just(True), good_row()), st.tuples(st.just(False), spoilt_row())), max_size=12)


def csv_text(rows: list[dict[str, str]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows([[row.get(column, "") for column in columns] for row in rows])
    return out.getvalue()


def data_records(text: str) -> int:
    """Non-blank records after the header, as the standard csv module reads the file."""
    return sum(1 for values in list(csv.reader(io.StringIO(text)))[1:] if any(v.strip() for v in values))


def counts(engine: sa.Engine) -> tuple[int, int, int]:
    with Session(engine) as session:
        return tuple(
            session.exec(select(func.count()).select_from(model)).one() for model in (Worker, Provider, WorkerSkill)
        )  # type: ignore[return-value]


def run(engine: sa.Engine, settings: Settings, source: io.TextIOBase) -> ImportReport | ImportFileError:
    """The import in one transaction, as the CLI and the console run it; the refusal, if refused."""
    try:
        with session_scope(engine) as session:
            return import_workers(session, settings, source, today=TODAY)  # type: ignore[arg-type]
    except ImportFileError as refused:
        return refused


def is_clean(text: str) -> bool:
    """Visible, one line, no formula: nothing hidden or reordered but the joiners Hindi needs."""
    hidden = [c for c in text if unicodedata.category(c) in ("Cc", "Cf") and c not in "\u200c\u200d"]
    return (
        not hidden and text == text.strip() and not text.startswith(FORMULA_STARTS) and bool(text.strip("\u200c\u200d"))
    )


def check_stored(engine: sa.Engine, settings: Settings) -> None:
    """What went in is clean, whatever came in."""
    codes = {service.code for service in settings.services}
    with Session(engine) as session:
        for worker in session.exec(select(Worker)).all():
            texts = [
                worker.name,
                worker.police_reference or "",
                worker.certification or "",
                worker.certification_grade or "",
            ]
            assert all(is_clean(t) for t in texts if t), texts
            assert worker.phone.startswith("+91")
            assert len(worker.phone) == 13
            assert worker.phone[1:].isdigit()
            assert worker.pincode.isascii()
            assert worker.pincode.isdigit()
            assert len(worker.pincode) == 6
        for provider in session.exec(select(Provider)).all():
            assert is_clean(provider.name), provider.name
        assert set(session.exec(select(WorkerSkill.service_code)).all()) <= codes


def test_any_file_of_rows_is_imported_or_refused_row_by_row(engine: sa.Engine, settings: Settings) -> None:
    @hypothesis_settings(max_examples=3 * hypothesis_settings().max_examples)
    @given(rows=ROWS, columns=st.permutations(COLUMNS), extra=st.sampled_from(["", "\r\n", "\n\n", ",,,,\n"]))
    @example(rows=[(False, {"name": "=1+1", "phone": "९४१५०००००१", "pincode": "२२६००१"})], columns=COLUMNS, extra="")
    def hostile(rows: list[tuple[bool, dict[str, str]]], columns: list[str], extra: str) -> None:
        text = csv_text([row for _good, row in rows], columns) + extra
        before = counts(engine)
        result = run(engine, settings, io.StringIO(text, newline=""))
        assert isinstance(result, ImportReport), f"a well-formed file was refused whole: {result}"
        numbers = [error.row for error in result.errors]
        assert numbers == sorted(set(numbers)), result.errors
        assert all(n >= 2 for n in numbers), result.errors
        assert result.imported + len(result.errors) == data_records(text), (result, text)
        assert counts(engine)[0] == before[0] + result.imported
        with Session(engine) as session:
            registered = set(session.exec(select(Worker.phone)).all())
        for good, row in rows:
            assert not good or "+91" + row["phone"] in registered, (row, result.errors)
        check_stored(engine, settings)

    hostile()


def test_any_bytes_in_any_encoding_are_imported_or_refused_whole(engine: sa.Engine, settings: Settings) -> None:
    header = ",".join(COLUMNS).encode()

    @given(
        body=st.one_of(
            st.binary(max_size=300),
            st.tuples(ROWS, st.sampled_from(["utf-8", "utf-16", "latin-1", "cp1252", "utf-8-sig"])).map(
                lambda case: csv_text([row for _good, row in case[0]], COLUMNS).encode(case[1], "replace")
            ),
        ),
        prefix=st.sampled_from([b"", header + b"\n", b"\xef\xbb\xbf", b"\xff\xfe", b"\x00"]),
    )
    @example(body=b"Ram\xe9sh,9415000001,plumber,226001,,yes,yes\n", prefix=header + b"\n")
    @example(body=b"x" * 200_000, prefix=header + b'\n"')
    @example(body=b"Ramesh,9415000001,plumber,226001,,yes,yes\x00\n", prefix=header + b"\n")
    def hostile(body: bytes, prefix: bytes) -> None:
        before = counts(engine)
        source = io.TextIOWrapper(io.BytesIO(prefix + body), encoding="utf-8-sig", newline="")  # as the CLI reads it
        result = run(engine, settings, source)
        if isinstance(result, ImportFileError):
            assert str(result), "a refused file left rows behind"
            assert counts(engine) == before, "a refused file left rows behind"
        else:
            assert counts(engine)[0] == before[0] + result.imported
        check_stored(engine, settings)

    hostile()


def test_cells_past_the_csv_limit_refuse_the_file_and_write_nothing(engine: sa.Engine, settings: Settings) -> None:
    good = csv_text(
        [
            {
                "name": "Ramesh",
                "phone": next(MOBILES),
                "skills": "plumber",
                "pincode": "226001",
                "police_verified": "yes",
                "available": "yes",
            }
        ],
        COLUMNS,
    )
    huge = good + f'"{"x" * 200_000}",9415000009,plumber,226001,,yes,yes\n'
    result = run(engine, settings, io.StringIO(huge, newline=""))
    assert isinstance(result, ImportFileError)
    assert "cannot be read as CSV" in str(result)
    assert counts(engine) == (0, 0, 0)


def test_nasty_values_in_every_column_are_reported_with_their_row(engine: sa.Engine, settings: Settings) -> None:
    rows = [dict.fromkeys(COLUMNS, value) for value in NASTY]
    text = csv_text(rows, COLUMNS)
    result = run(engine, settings, io.StringIO(text, newline=""))
    assert isinstance(result, ImportReport)
    assert result.imported == 0
    numbers = [error.row for error in result.errors]
    assert len(numbers) == data_records(text)
    assert numbers == sorted(set(numbers))
