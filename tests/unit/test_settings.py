"""An operator edits config.yaml or sets SEWAMITRA_* variables; mistakes are named clearly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from core.exceptions import ConfigError
from core.settings import load_settings
from tests.factories import ROOT


def write_config(tmp_path: Path, change: dict) -> Path:
    """The repository's config.yaml with `change` merged in one level deep."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def test_the_shipped_config_loads_with_the_whole_catalogue() -> None:
    settings = load_settings(ROOT / "config.yaml", {})
    codes = {s.code for s in settings.services}
    assert {
        "plumber",
        "electrician",
        "carpenter",
        "painter",
        "cleaning",
        "pest_control",
        "beautician",
        "appliance_repair",
    } <= codes
    assert settings.service("plumber").name_hi == "प्लंबर"
    assert settings.service("plumber").visit_charge == 200
    assert [lang.tts_language for lang in settings.languages] == ["hi-IN", "en-IN"]
    assert settings.dispatch.offer_timeout == 300
    assert settings.data_dir == ROOT / "var"
    assert settings.sqlalchemy_url == f"sqlite:///{ROOT / 'var' / 'sewamitra.db'}"
    assert settings.redis_url is None


def test_environment_overrides_nested_keys(tmp_path: Path) -> None:
    env = {
        "SEWAMITRA_DATABASE_URL": "postgresql+psycopg://db.example/sewamitra",
        "SEWAMITRA_REDIS_URL": "redis://cache.example:6379/0",
        "SEWAMITRA_PUBLIC_URL": "https://helpline.example.gov.in/",
        "SEWAMITRA_TWILIO__API_BASE_URL": "http://127.0.0.1:9999",
        "SEWAMITRA_DISPATCH__OFFER_TIMEOUT": "120",
    }
    settings = load_settings(ROOT / "config.yaml", env)
    assert settings.database_url == "postgresql+psycopg://db.example/sewamitra"
    assert settings.redis_url == "redis://cache.example:6379/0"
    assert settings.public_url == "https://helpline.example.gov.in"
    assert settings.twilio.api_base_url == "http://127.0.0.1:9999"
    assert settings.dispatch.offer_timeout == 120
    assert settings.dispatch.max_offers == 5  # untouched siblings keep the file's value


def test_one_loads_environment_never_reaches_the_next_load_of_the_same_file() -> None:
    """The file is parsed once per process: each load overrides its own copy of it."""
    plain = load_settings(ROOT / "config.yaml", {})
    changed = load_settings(
        ROOT / "config.yaml", {"SEWAMITRA_DISPATCH__OFFER_TIMEOUT": str(plain.dispatch.offer_timeout + 7)}
    )
    again = load_settings(ROOT / "config.yaml", {})
    assert changed.dispatch.offer_timeout == plain.dispatch.offer_timeout + 7
    assert again.dispatch.offer_timeout == plain.dispatch.offer_timeout


def test_secrets_come_from_the_environment() -> None:
    env = {"TWILIO_ACCOUNT_SID": "AC123", "TWILIO_AUTH_TOKEN": "tok", "SEWAMITRA_SECRET_KEY": "k" * 40}
    settings = load_settings(ROOT / "config.yaml", env)
    assert (settings.twilio.account_sid, settings.twilio.auth_token, settings.secret_key) == ("AC123", "tok", "k" * 40)


def test_a_secret_written_into_the_file_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"twilio": {"auth_token": "leaked"}})
    with pytest.raises(ConfigError, match=r"twilio\.auth_token is a secret .* TWILIO_AUTH_TOKEN"):
        load_settings(path, {})


def test_a_bad_value_names_the_key_and_what_was_given(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"dispatch": {"offer_timeout": "soon"}})
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert "dispatch.offer_timeout: Input should be a valid integer" in str(caught.value)
    assert "'soon'" in str(caught.value)


def test_a_bad_environment_override_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"dispatch\.offer_timeout \(from SEWAMITRA_DISPATCH__OFFER_TIMEOUT\)"):
        load_settings(ROOT / "config.yaml", {"SEWAMITRA_DISPATCH__OFFER_TIMEOUT": "-5"})


def test_a_misspelt_key_is_an_unknown_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"dispatch": {"offer_timout": 30}})
    with pytest.raises(ConfigError, match=r"dispatch\.offer_timout: unknown key"):
        load_settings(path, {})


def test_two_services_on_one_key_are_refused(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    config["services"][1]["digit"] = config["services"][0]["digit"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"services: .*digit '1' appears twice"):
        load_settings(path, {})


def test_call_centre_hours_must_make_sense(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"call_centre": {"opens": "21:00", "closes": "08:00"}})
    with pytest.raises(ConfigError, match="opens must be before"):
        load_settings(path, {})


def test_an_agent_may_not_widen_a_round_to_less_than_the_default_radius(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"dispatch": {"default_radius_km": 20, "max_radius_km": 15}})
    with pytest.raises(ConfigError, match=r"max_radius_km must be at least dispatch\.default_radius_km"):
        load_settings(path, {})


def test_missing_or_broken_files_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        load_settings(tmp_path / "nowhere.yaml", {})
    broken = tmp_path / "broken.yaml"
    broken.write_text("services: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(broken, {})


def test_settings_are_frozen() -> None:
    settings = load_settings(ROOT / "config.yaml", {})
    with pytest.raises(ValueError, match="frozen"):
        settings.dispatch.offer_timeout = 1  # type: ignore[misc]


def test_call_centre_is_open_by_indian_time() -> None:
    hours = load_settings(ROOT / "config.yaml", {}).call_centre
    assert hours.is_open(datetime(2026, 11, 23, 4, 0, tzinfo=UTC))  # 09:30 IST
    assert not hours.is_open(datetime(2026, 11, 23, 15, 0, tzinfo=UTC))  # 20:30 IST


# -- the telephony platform -----------------------------------------------------------------------------

PLIVO_ID = "MA" + "A1B2C3D4E5F6G7H8I9"


def test_the_platform_is_twilio_unless_plivo_is_chosen() -> None:
    assert load_settings(ROOT / "config.yaml", {}).telephony.platform == "twilio"
    env = {"SEWAMITRA_TELEPHONY__PLATFORM": "plivo", "PLIVO_AUTH_ID": PLIVO_ID, "PLIVO_AUTH_TOKEN": "t" * 40}
    settings = load_settings(ROOT / "config.yaml", env)
    assert settings.telephony.platform == "plivo"
    assert (settings.plivo.auth_id, settings.plivo.auth_token) == (PLIVO_ID, "t" * 40)
    assert settings.plivo.dlt_header == "SEWAMT"


def test_an_unknown_platform_is_named() -> None:
    with pytest.raises(ConfigError, match=r"telephony.platform \(from SEWAMITRA_TELEPHONY__PLATFORM\)"):
        load_settings(ROOT / "config.yaml", {"SEWAMITRA_TELEPHONY__PLATFORM": "exotel"})


def test_plivo_without_credentials_is_local_development() -> None:
    settings = load_settings(ROOT / "config.yaml", {"SEWAMITRA_TELEPHONY__PLATFORM": "plivo"})
    assert settings.plivo.missing() == []


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"PLIVO_AUTH_ID": PLIVO_ID}, "PLIVO_AUTH_TOKEN"),
        ({"PLIVO_AUTH_TOKEN": "t" * 40}, "PLIVO_AUTH_ID"),
        ({"PLIVO_AUTH_ID": PLIVO_ID, "PLIVO_AUTH_TOKEN": "t", "SEWAMITRA_PLIVO__FROM_NUMBER": ""}, "plivo.from_number"),
        ({"PLIVO_AUTH_ID": PLIVO_ID, "PLIVO_AUTH_TOKEN": "t", "SEWAMITRA_PLIVO__DLT_HEADER": ""}, "plivo.dlt_header"),
        (
            {"PLIVO_AUTH_ID": PLIVO_ID, "PLIVO_AUTH_TOKEN": "t", "SEWAMITRA_PLIVO__DLT_ENTITY_ID": "null"},
            "plivo.dlt_entity_id",
        ),
    ],
)
def test_a_half_configured_plivo_is_refused_at_start_naming_what_is_missing(env: dict, missing: str) -> None:
    with pytest.raises(ConfigError, match=f"telephony.platform is plivo, but {missing} is not set"):
        load_settings(ROOT / "config.yaml", {"SEWAMITRA_TELEPHONY__PLATFORM": "plivo", **env})


def test_a_plivo_auth_id_that_is_not_one_is_refused() -> None:
    env = {"SEWAMITRA_TELEPHONY__PLATFORM": "plivo", "PLIVO_AUTH_ID": "AC123", "PLIVO_AUTH_TOKEN": "t"}
    with pytest.raises(ConfigError, match="PLIVO_AUTH_ID is not a Plivo Auth ID"):
        load_settings(ROOT / "config.yaml", env)


def test_plivo_credentials_in_the_file_are_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"plivo": {"auth_token": "leaked"}})
    with pytest.raises(ConfigError, match=r"plivo\.auth_token is a secret .* PLIVO_AUTH_TOKEN"):
        load_settings(path, {})


def test_a_dlt_header_is_what_dlt_registers() -> None:
    env = {"SEWAMITRA_PLIVO__DLT_HEADER": "SEWA-MITRA!"}
    with pytest.raises(ConfigError, match=r"plivo\.dlt_header"):
        load_settings(ROOT / "config.yaml", env)


def test_logs_of_processing_kept_less_than_a_year_are_refused_at_start() -> None:
    """The DPDP Rules 2025 keep logs of processing a year at least: call records and the audit trail."""
    for key in ("CALL_LOGS", "AUDIT_EVENTS"):
        with pytest.raises(ConfigError, match=r"privacy\.retention\.\w+ \(from SEWAMITRA_.*at least 365 days"):
            load_settings(ROOT / "config.yaml", {f"SEWAMITRA_PRIVACY__RETENTION__{key}": "90"})
    kept = load_settings(ROOT / "config.yaml", {"SEWAMITRA_PRIVACY__RETENTION__CALL_LOGS": "365"})
    assert kept.privacy.retention.call_logs == 365
    assert load_settings(ROOT / "config.yaml", {}).privacy.retention.citizens == 365


def test_staffs_notes_about_a_call_go_with_its_recording_and_never_outlive_its_record() -> None:
    """An erasure finds the notes about a citizen's calls through the calls' records (call_logs)."""
    assert load_settings(ROOT / "config.yaml", {}).privacy.retention.call_notes == 90
    with pytest.raises(ConfigError, match=r"call_notes \(400\) must be at most call_logs \(365 days\)"):
        load_settings(ROOT / "config.yaml", {"SEWAMITRA_PRIVACY__RETENTION__CALL_NOTES": "400"})
    longer = {"SEWAMITRA_PRIVACY__RETENTION__CALL_NOTES": "400", "SEWAMITRA_PRIVACY__RETENTION__CALL_LOGS": "400"}
    assert load_settings(ROOT / "config.yaml", longer).privacy.retention.call_notes == 400


def test_the_notice_before_an_erasure_comes_48_hours_ahead_unless_turned_off() -> None:
    """The DPDP Rules 2025 ask for a notice 48 hours before an erasure for lapsed purpose."""
    assert load_settings(ROOT / "config.yaml", {}).privacy.erasure_notice_hours == 48
    off = load_settings(ROOT / "config.yaml", {"SEWAMITRA_PRIVACY__ERASURE_NOTICE_HOURS": "0"})
    assert off.privacy.erasure_notice_hours == 0
    with pytest.raises(ConfigError, match=r"erasure_notice_hours \(48\) must be shorter than retention\.citizens"):
        load_settings(ROOT / "config.yaml", {"SEWAMITRA_PRIVACY__RETENTION__CITIZENS": "2"})


def test_two_sms_templates_under_one_dlt_template_id_are_refused(tmp_path: Path) -> None:
    shared = {"dlt_template_id": "1107160000000000001", "hi": "क", "en": "a"}
    path = write_config(tmp_path, {"sms": {"templates": {"request_created": shared, "offer_busy": shared}}})
    with pytest.raises(ConfigError, match="share DLT template id 1107160000000000001"):
        load_settings(path, {})


def test_the_shipped_config_has_wrap_up_codes_and_a_scorecard_with_a_reachable_pass_mark() -> None:
    settings = load_settings(ROOT / "config.yaml", {})
    assert [d.code for d in settings.agents.dispositions][:2] == ["booked", "tracked"]
    assert settings.agents.disposition_name("wrong_number", "hi") == "गलत नंबर"
    assert settings.agents.disposition_name("retired_code") == "retired_code"
    assert (settings.quality.max_points, settings.quality.pass_mark) == (100, 70)


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"agents": {"dispositions": []}}, "at least one wrap-up code"),
        ({"agents": {"dispositions": [{"code": "none", "name_en": "None", "name_hi": "कोई नहीं"}]}}, "'none' is the"),
        (
            {"agents": {"dispositions": [{"code": "booked", "name_en": "A", "name_hi": "क"}] * 2}},
            "code 'booked' appears twice",
        ),
        ({"agents": {"dispositions": [{"code": "x" * 21, "name_en": "A", "name_hi": "क"}]}}, "dispositions"),
        ({"quality": {"pass_mark": 101}}, r"pass_mark \(101\) is more than the scorecard's 100 points"),
        ({"quality": {"scorecard": []}}, "at least one item"),
        (
            {"quality": {"scorecard": [{"code": "greeting", "name_en": "G", "name_hi": "ग", "max_points": 0}]}},
            "max_points",
        ),
    ],
)
def test_wrap_up_codes_and_scorecards_that_cannot_work_are_refused_at_start(
    tmp_path: Path, change: dict, refusal: str
) -> None:
    with pytest.raises(ConfigError, match=refusal):
        load_settings(write_config(tmp_path, change), {})
