"""The effects a flow may name are the ones the helpline performs (ivr/effects.py): a flow naming
any other is refused when it is loaded and by `sewamitra flows check`, not during a live call."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from core.clock import FrozenClock
from core.settings import Settings, SlotPeriod, load_settings
from flows import definition
from flows.exceptions import FlowError
from ivr.effects import EFFECTS, CallContext, find_slots, known_effects, picked_slot
from sewamitra.cli import main
from tests.factories import ROOT

UNKNOWN = "send_fax"


def flow_naming(effect: str) -> dict:
    return {
        "flow": "faxing",
        "start": "fax",
        "max_steps": 20,
        "on_fail": {"goto": "bye"},
        "nodes": {
            "fax": {"effect": effect, "outcomes": {"sent": "bye"}},
            "bye": {"say": ["goodbye"], "hangup": True},
        },
    }


def written(tmp_path: Path, flow: dict) -> Path:
    path = tmp_path / f"{flow['flow']}.yaml"
    path.write_text(yaml.safe_dump(flow, allow_unicode=True), encoding="utf-8")
    return path


def test_a_flow_naming_an_effect_the_helpline_cannot_perform_is_refused_at_load(tmp_path: Path) -> None:
    path = written(tmp_path, flow_naming(UNKNOWN))
    with pytest.raises(FlowError) as caught:
        definition.load("faxing", languages=["hi", "en"], effects=known_effects(), directory=path.parent)
    unknown = [p for p in caught.value.problems if p.startswith("nodes.fax.effect:")]
    assert len(unknown) == 1
    assert f"unknown effect {UNKNOWN!r}" in unknown[0]
    assert "lookup_pincode" in unknown[0]  # it says which effects there are


def test_flows_check_fails_a_flow_naming_an_unknown_effect(tmp_path: Path) -> None:
    path = written(tmp_path, flow_naming(UNKNOWN))
    answer = CliRunner().invoke(main, ["--config", str(ROOT / "config.yaml"), "flows", "check", str(path)])
    assert answer.exit_code == 1
    assert f"nodes.fax.effect: unknown effect {UNKNOWN!r}" in answer.output
    assert "1 of 1 flow file(s) are broken" in answer.output


def test_the_same_flow_loads_once_its_effect_is_among_those_the_edge_performs(tmp_path: Path) -> None:
    """What refused it was the effect's name alone (here, a copy of the table with the effect added)."""
    flow = flow_naming(UNKNOWN)
    with_fax = {**known_effects(), UNKNOWN: frozenset({"sent"})}
    loaded = definition.load(
        "faxing", languages=["hi", "en"], effects=with_fax, directory=written(tmp_path, flow).parent
    )
    assert loaded.nodes["fax"].effect == UNKNOWN
    assert UNKNOWN not in EFFECTS


def test_every_effect_the_shipped_flows_name_has_a_handler() -> None:
    named = {
        node.effect
        for name in ("helpline", "worker", "feedback")
        for node in definition.load(name, languages=["hi", "en"], effects=known_effects()).nodes.values()
        if node.effect
    }
    assert named
    assert named <= set(EFFECTS)
    assert all(callable(EFFECTS[name].perform) and EFFECTS[name].outcomes for name in named)


def test_an_effect_that_reads_no_ones_records_touches_neither_store() -> None:
    """A menu turn whose read effects are all of this kind is answered again, on Plivo, without the
    nonce's replay check (ivr/voice.py): what they read must be what any caller may hear. With a
    database and a Redis that cannot answer, each still performs."""
    ctx = CallContext(
        load_settings(ROOT / "config.yaml", {}),
        sa.create_engine("sqlite:////nonexistent/nowhere.db"),
        redis.Redis(port=1),
        "CA" + "1" * 32,
        "+919876543210",
        3,
        "en",
        FrozenClock(datetime(2026, 12, 3, 6, 0, tzinfo=UTC)),
    )
    with pytest.raises(sa.exc.OperationalError):
        ctx.engine.connect().close()
    with pytest.raises(redis.ConnectionError):
        ctx.redis.ping()
    public = {name for name, effect in EFFECTS.items() if effect.reads_only and not effect.reads_records}
    assert public == {"lookup_pincode", "find_slots", "agents_available"}
    for name in sorted(public):
        assert EFFECTS[name].perform(ctx, {"pincode": "226001"}).name in EFFECTS[name].outcomes, name


# -- the slot menu's list -----------------------------------------------------------------------------


def slot_context(settings: Settings, now: datetime, language: str = "en") -> CallContext:
    """find_slots reads only the calendar and the clock: the connections are never used."""
    return CallContext(
        settings, sa.create_engine("sqlite://"), redis.Redis(), "CA" + "1" * 32, None, 0, language, FrozenClock(now)
    )


def test_the_slot_menu_lists_at_most_eight_slots_in_order_keyed_one_to_eight() -> None:
    settings = load_settings(ROOT / "config.yaml", {})
    periods = (
        *settings.slots.periods,
        SlotPeriod(key="night", starts=time(20), ends=time(22), name_en="night", name_hi="रात"),
    )
    wide = settings.model_copy(
        update={"slots": settings.slots.model_copy(update={"days_ahead": 3, "periods": periods})}
    )
    found = find_slots(slot_context(wide, datetime(2026, 12, 3, 0, 0, tzinfo=UTC)), {})  # 05:30 in Lucknow
    assert found.name == "open"
    rows = found.values["slots"]
    assert [row["digit"] for row in rows] == [str(n) for n in range(1, 9)]
    assert rows[0] == {"digit": "1", "slot": "2026-12-03/morning", "slot_words": "today morning, 08:00 to 12:00"}
    assert rows[-1]["slot"] == "2026-12-04/night"
    assert (found.values["slot"], found.values["slot_words"]) == ("", "as soon as possible")


def test_with_nothing_open_the_slot_menu_is_skipped() -> None:
    settings = load_settings(ROOT / "config.yaml", {})
    one_day = settings.model_copy(update={"slots": settings.slots.model_copy(update={"days_ahead": 1})})
    found = find_slots(slot_context(one_day, datetime(2026, 12, 3, 17, 0, tzinfo=UTC), "hi"), {})  # 22:30
    assert (found.name, found.values["slot"], found.values["slot_words"]) == ("none", "", "जल्द से जल्द")


def test_a_slot_picked_is_kept_while_it_has_not_ended_even_within_the_lead_time() -> None:
    settings = load_settings(ROOT / "config.yaml", {})
    at_1130 = slot_context(settings, datetime(2026, 12, 3, 6, 0, tzinfo=UTC))  # 11:30 in Lucknow
    kept = picked_slot(at_1130, "2026-12-03/afternoon")  # begins in 30 minutes: no longer offered, still theirs
    assert kept is not None
    assert kept.starts_at == datetime(2026, 12, 3, 6, 30, tzinfo=UTC)
    assert picked_slot(at_1130, "2026-12-03/morning") is not None  # under way: the caller chose it as such
    at_1230 = slot_context(settings, datetime(2026, 12, 3, 7, 0, tzinfo=UTC))
    assert picked_slot(at_1230, "2026-12-03/morning") is None  # ended at noon: as soon as possible
    assert picked_slot(at_1130, "2027-06-01/morning") is None  # further than the calendar reaches
    assert picked_slot(at_1130, "") is None
    assert picked_slot(at_1130, "9") is None
