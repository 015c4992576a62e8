"""`sewamitra import workers FILE.csv`: an agency's spreadsheet goes in; every bad row comes back
with its row number and the reason, and nothing else is lost."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from core import pincodes
from core.exceptions import ImportFileError
from core.settings import Settings
from directory.importer import ImportReport, RowError, WorkerRow, import_workers, parse_row
from storage.db import session_scope
from storage.models import Origin, Provider, VerificationStatus, Worker, WorkerSkill

TODAY = date(2026, 11, 23)
HEADER = "name,phone,skills,pincode,provider,police_verified,available"
FULL_HEADER = (
    f"{HEADER},service_radius_km,language,voice_preferred,certification,certification_grade,"
    "police_reference,police_verified_on,origin"
)
VALID_CODES = "plumber, electrician, carpenter, painter, cleaning, pest_control, beautician, appliance_repair"


def csv_file(*lines: str) -> io.StringIO:
    return io.StringIO("\n".join(lines) + "\n")


def run_import(engine: sa.Engine, settings: Settings, *lines: str) -> ImportReport:
    with session_scope(engine) as session:
        return import_workers(session, settings, csv_file(*lines), today=TODAY)


def registered(engine: sa.Engine) -> dict[str, Worker]:
    with session_scope(engine) as session:
        return {worker.phone: worker for worker in session.exec(select(Worker)).all()}


def skills_of(engine: sa.Engine, phone: str) -> list[str]:
    with session_scope(engine) as session:
        query = select(WorkerSkill.service_code).join(Worker).where(Worker.phone == phone)
        return sorted(session.exec(query).all())


def agencies(session: Session) -> dict[str, int]:
    return {p.name: p.id or 0 for p in session.exec(select(Provider)).all()}


def test_an_agency_file_goes_in_with_skills_providers_and_verification(engine: sa.Engine, settings: Settings) -> None:
    report = run_import(
        engine,
        settings,
        f"{HEADER},police_reference,police_verified_on",
        "Ramesh Kumar Yadav,98390 12345,plumber;electrician,226001,Gomti Home Services,yes,yes,LKO/PV/2026/0412,"
        "2026-01-15",
        "Sunita Devi,+91 94150 67890,beautician,221001,Kashi Urban Care Pvt Ltd,no,yes,,",
        "Mohd. Irfan Ansari,9935011223,Electrician,208001,  gomti home  services ,YES,No,KNP/PV/2025/0077,2025-11-02",
        "Kamla Devi,7007012345,cleaning,282 001,,no,yes,,",
    )

    assert report == ImportReport(
        imported=4, providers_created=["Gomti Home Services", "Kashi Urban Care Pvt Ltd"], errors=[]
    )
    workers = registered(engine)
    ramesh, sunita = workers["+919839012345"], workers["+919415067890"]
    irfan, kamla = workers["+919935011223"], workers["+917007012345"]
    assert (ramesh.name, ramesh.pincode, ramesh.district) == ("Ramesh Kumar Yadav", "226001", "LUCKNOW")
    lucknow_gpo = pincodes.lookup("226001")
    assert lucknow_gpo is not None
    assert (ramesh.latitude, ramesh.longitude) == (lucknow_gpo.latitude, lucknow_gpo.longitude)
    assert skills_of(engine, ramesh.phone) == ["electrician", "plumber"]
    assert ramesh.police_verification == VerificationStatus.VERIFIED
    assert ramesh.available
    assert sunita.police_verification == VerificationStatus.PENDING
    assert sunita.district == "VARANASI"
    assert irfan.provider_id == ramesh.provider_id
    assert not irfan.available
    assert skills_of(engine, irfan.phone) == ["electrician"]
    assert (kamla.provider_id, kamla.pincode, kamla.district) == (None, "282001", "AGRA")
    assert (ramesh.language, ramesh.voice_preferred, ramesh.origin, ramesh.service_radius_km) == (
        "hi",
        False,
        Origin.LOCAL,
        None,
    )
    with session_scope(engine) as session:
        assert agencies(session) == {
            "Gomti Home Services": ramesh.provider_id,
            "Kashi Urban Care Pvt Ltd": sunita.provider_id,
        }


def test_each_bad_row_is_reported_by_its_row_number_and_skipped(engine: sa.Engine, settings: Settings) -> None:
    report = run_import(
        engine,
        settings,
        HEADER,
        "Ramesh Kumar Yadav,98390 12345,plumber,226001,Gomti Home Services,no,yes",
        ",9935011224,plumber,226001,,no,yes",
        "Kamlesh Verma,12345,plumber,226001,,no,yes",
        "Kamlesh Verma,0522 2614587,plumber,226001,,no,yes",
        "Anil Kumar,9935011225,plumber,999999,,no,yes",
        "Anil Kumar,9935011226,plumber,110001,,no,yes",
        "Anil Kumar,9935011227,plumber,2260,,no,yes",
        "Vinod Pal,9935011228,plumber;welder,226001,,no,yes",
        "Vinod Pal,9935011229, ; ,226001,,no,yes",
        "Rekha Devi,9935011230,cleaning,226001,,maybe,yes",
        "Rekha Devi,9935011231,cleaning,226001,,no,",
        "Suman Gupta,+91 98390 12345,cleaning,226010,,no,yes",
        "Sunita Devi,9415000001,beautician,221001,Kashi Urban Care Pvt Ltd,no,yes",
        "Nobody,123,welder,999999,,y,yes",
    )

    assert report.errors == [
        RowError(3, "name is empty"),
        RowError(4, "phone '12345' is not a valid Indian mobile number"),
        RowError(5, "phone '0522 2614587' is not a valid Indian mobile number"),
        RowError(6, "unknown pincode 999999"),
        RowError(7, "pincode 110001 is in DELHI, outside UTTAR PRADESH"),
        RowError(8, "pincode '2260' is not a 6-digit PIN code"),
        RowError(9, f"unknown skill 'welder'; valid codes are {VALID_CODES}"),
        RowError(10, f"no skills given; name one or more of {VALID_CODES} separated by ';'"),
        RowError(11, "police_verified must be yes or no, not 'maybe'"),
        RowError(12, "available is empty; write yes or no"),
        RowError(13, "phone +919839012345 is already on row 2"),
        RowError(
            15,
            "phone '123' is not a valid Indian mobile number; "
            f"unknown skill 'welder'; valid codes are {VALID_CODES}; "
            "unknown pincode 999999; police_verified must be yes or no, not 'y'",
        ),
    ]
    assert report.imported == 2
    assert report.providers_created == ["Gomti Home Services", "Kashi Urban Care Pvt Ltd"]
    assert sorted(registered(engine)) == ["+919415000001", "+919839012345"]


def test_a_phone_already_registered_is_refused_and_the_rest_go_in(engine: sa.Engine, settings: Settings) -> None:
    run_import(engine, settings, HEADER, "Ramesh Kumar Yadav,9839012345,plumber,226001,Gomti Home Services,no,yes")

    report = run_import(
        engine,
        settings,
        HEADER,
        "Ramesh Yadav,+91-98390-12345,electrician,226001,Gomti Home Services,no,yes",
        "Geeta Verma,8400012345,cleaning,226010,gomti home services,no,yes",
    )

    assert report == ImportReport(
        imported=1,
        providers_created=[],
        errors=[RowError(2, "phone +919839012345 already belongs to a registered worker")],
    )
    workers = registered(engine)
    assert workers["+919839012345"].name == "Ramesh Kumar Yadav"
    assert workers["+918400012345"].provider_id == workers["+919839012345"].provider_id


def test_optional_columns_are_read_and_checked(engine: sa.Engine, settings: Settings) -> None:
    report = run_import(
        engine,
        settings,
        FULL_HEADER,
        "Sunita Devi,9415000001,beautician,221001,,yes,yes,7.5,en,yes,RPL (PMKVY),A,UP/VNS/2025/004512,2025-03-14,"
        "returned_migrant",
        "Kiran Devi,9415000002,cleaning,221001,,no,yes,,,,,,,,",
        "Anil Kumar,9415000003,plumber,226001,,no,yes,far,ta,perhaps,,,,,abroad",
        "Anil Kumar,9415000004,plumber,226001,,yes,yes,0,,,,B,LKO/PV/2026/0413,2026-12-01,",
        "Anil Kumar,9415000005,plumber,226001,,no,yes,250,,,,,,23/11/2025,",
        "Anil Kumar,9415000006,plumber,226001,,no,yes,nan,,,,,,2025-02-30,",
        "Anil Kumar,9415000007,plumber,226001,,no,yes,,,,,,,2025-02-03,",
    )

    radius = "service_radius_km must be a number of kilometres above 0 and up to 200, not"
    assert report.errors == [
        RowError(
            4,
            f"{radius} 'far'; language must be one of hi, en, not 'ta'; "
            "voice_preferred must be yes or no, not 'perhaps'; "
            "origin must be one of local, returned_migrant, not 'abroad'",
        ),
        RowError(
            5,
            f"{radius} '0'; police_verified_on 2026-12-01 is in the future; "
            "certification_grade is given without a certification",
        ),
        RowError(6, f"{radius} '250'; police_verified_on must be a date written YYYY-MM-DD, not '23/11/2025'"),
        RowError(7, f"{radius} 'nan'; police_verified_on must be a date written YYYY-MM-DD, not '2025-02-30'"),
        RowError(8, "police_verified_on is given but police_verified is no"),
    ]
    sunita, kiran = registered(engine)["+919415000001"], registered(engine)["+919415000002"]
    assert (sunita.service_radius_km, sunita.language, sunita.voice_preferred, sunita.origin) == (
        7.5,
        "en",
        True,
        Origin.RETURNED_MIGRANT,
    )
    assert (sunita.certification, sunita.certification_grade) == ("RPL (PMKVY)", "A")
    assert (sunita.police_reference, sunita.police_verified_on) == ("UP/VNS/2025/004512", date(2025, 3, 14))
    assert (kiran.service_radius_km, kiran.language, kiran.voice_preferred, kiran.origin) == (
        None,
        "hi",
        False,
        Origin.LOCAL,
    )
    assert kiran.police_verification == VerificationStatus.PENDING
    assert kiran.certification is None


def test_a_file_missing_a_required_column_is_refused_whole(engine: sa.Engine, settings: Settings) -> None:
    rows = ("name,phone,skills,pincode,provider,police_verified", "Ramesh,9839012345,plumber,226001,Gomti,yes")

    with pytest.raises(ImportFileError, match=r"^missing required column\(s\): available$"):
        run_import(engine, settings, *rows)

    with session_scope(engine) as session:
        assert session.exec(select(Worker)).all() == []
        assert session.exec(select(Provider)).all() == []


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (f"{HEADER},colour", r"^unknown column 'colour'; the columns are name, phone, .* origin$"),
        (f"{HEADER},Phone", r"^column 'phone' appears twice in the header$"),
        (f"{HEADER},", r"^column 8 of the header has no name$"),
    ],
)
def test_a_header_we_do_not_understand_is_refused(
    engine: sa.Engine, settings: Settings, header: str, message: str
) -> None:
    with pytest.raises(ImportFileError, match=message):
        run_import(engine, settings, header, "Ramesh,9839012345,plumber,226001,Gomti,yes,yes,x")

    assert registered(engine) == {}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_a_spreadsheet_saved_as_csv_utf8_with_a_bom_imports(
    engine: sa.Engine, settings: Settings, tmp_path: Path, encoding: str
) -> None:
    path = tmp_path / "workers.csv"
    path.write_text(
        " Name , PHONE,Skills,PinCode,Provider,Police_Verified,Available\r\n"
        "Shabnam Ansari,9415000001,beautician,226001,Awadh Sewa Samiti,no,yes\r\n",
        encoding="utf-8-sig",
    )

    with path.open(encoding=encoding, newline="") as source, session_scope(engine) as session:
        report = import_workers(session, settings, source, today=TODAY)

    assert report == ImportReport(imported=1, providers_created=["Awadh Sewa Samiti"], errors=[])
    assert registered(engine)["+919415000001"].name == "Shabnam Ansari"


def test_hostile_cells_are_refused_never_run(engine: sa.Engine, settings: Settings) -> None:
    report = run_import(
        engine,
        settings,
        HEADER,
        '"=HYPERLINK(""http://evil.example"",""click"")",9415000001,plumber,226001,,no,yes',
        "Ramesh,=9415000002,plumber,226001,,no,yes",
        "Ramesh,9415000003,plumber,226001,@SUM(A1:A9),no,yes",
        f"{'R' * 121},9415000004,plumber,226001,,no,yes",
        "Ram\x07esh,9415000005,plumber,226001,,no,yes",
        "Ramesh,9415000006,plumber,226001,,no,yes,surplus",
        "  Ramesh   Kumar  ,9415000007,plumber,226001,,no,yes,,",
    )

    assert report.errors == [
        RowError(2, "name starts with '=', which a spreadsheet would run as a formula"),
        RowError(3, "phone '=9415000002' is not a valid Indian mobile number"),
        RowError(4, "provider starts with '@', which a spreadsheet would run as a formula"),
        RowError(5, "name is longer than 120 characters"),
        RowError(6, "name contains control characters"),
        RowError(7, "the row has 8 values but the header names 7 columns"),
    ]
    assert [w.name for w in registered(engine).values()] == ["Ramesh Kumar"]


def test_rows_are_numbered_as_the_operator_counts_lines(engine: sa.Engine, settings: Settings) -> None:
    report = run_import(
        engine,
        settings,
        HEADER,
        "",
        '"Ramesh Kumar Yadav",9415000001,"plumber;',
        'electrician",226001,,no,yes',
        "",
        "Kamlesh Verma,12345,plumber,226001,,no,yes",
    )

    assert report.errors == [RowError(6, "phone '12345' is not a valid Indian mobile number")]
    assert skills_of(engine, "+919415000001") == ["electrician", "plumber"]


def test_a_file_over_50000_rows_is_refused(engine: sa.Engine, settings: Settings) -> None:
    rows = [f"Worker {n},{9400000000 + n},plumber,226001,,yes,yes" for n in range(50_001)]

    with pytest.raises(ImportFileError, match="more than 50,000 rows"):
        run_import(engine, settings, HEADER, *rows)

    assert registered(engine) == {}


def test_the_callers_rollback_leaves_nothing_behind(engine: sa.Engine, settings: Settings) -> None:
    progress: list[tuple[int, int]] = []
    with pytest.raises(RuntimeError), session_scope(engine) as session:  # noqa: PT012 (import, then fail)
        source = csv_file(HEADER, "Ramesh,9415000001,plumber,226001,Gomti Home Services,no,yes")
        report = import_workers(session, settings, source, today=TODAY, progress=lambda *p: progress.append(p))
        assert report.imported == 1
        assert progress == [(1, 1)]
        raise RuntimeError("the operator's terminal closed before the commit")

    with session_scope(engine) as session:
        assert session.exec(select(Worker)).all() == []
        assert session.exec(select(Provider)).all() == []
        assert session.exec(select(WorkerSkill)).all() == []


def test_one_row_is_checked_without_a_database(settings: Settings) -> None:
    cells = {
        "name": " Ramesh  Kumar ",
        "phone": "098390 12345",
        "skills": "Plumber; plumber;electrician",
        "pincode": "226001",
        "provider": "",
        "police_verified": "Yes",
        "available": "no",
        "police_reference": "LKO/PV/2026/0412",
        "police_verified_on": "2026-01-15",
    }

    row = parse_row(2, cells, settings, TODAY)

    assert isinstance(row, WorkerRow)
    assert (row.name, row.phone, row.skills, row.district, row.provider) == (
        "Ramesh Kumar",
        "+919839012345",
        ("plumber", "electrician"),
        "LUCKNOW",
        None,
    )
    assert row.police_verified
    assert not row.available
    assert parse_row(3, {**cells, "skills": "", "name": ""}, settings, TODAY) == [
        "name is empty",
        f"no skills given; name one or more of {VALID_CODES} separated by ';'",
    ]


def test_invisible_and_text_reversing_characters_are_not_stored(engine: sa.Engine, settings: Settings) -> None:
    """A name that shows agents and citizens other text than it holds is refused; invisible marks
    are dropped, but the joiners Hindi is written with are kept."""
    report = run_import(
        engine,
        settings,
        f"{HEADER},police_reference",
        "Ramesh \u202eramuK,9415000001,plumber,226001,,no,yes,",
        "\u200bRamesh\ufeff Kumar,9415000002,plumber,226001,\u2067Gomti\u2069,no,yes,",
        "लक्ष्\u200dमी देवी,9415000003,plumber,226001,,no,yes,\ufeff",
        "\u200b\ufeff,9415000004,plumber,226001,,no,yes,",
    )

    assert report.errors == [
        RowError(2, "name contains characters that reverse or reorder the text"),
        RowError(3, "provider contains characters that reverse or reorder the text"),
        RowError(5, "name is empty"),
    ]
    [lakshmi] = registered(engine).values()
    assert lakshmi.name == "लक्ष्\u200dमी देवी"
    assert lakshmi.police_reference is None
    assert run_import(engine, settings, HEADER, "\u200bRamesh\ufeff Kumar,9415000002,plumber,226001,,no,yes").imported
    assert registered(engine)["+919415000002"].name == "Ramesh Kumar"
