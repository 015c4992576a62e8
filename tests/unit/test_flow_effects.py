"""The effects a flow may name are the ones the helpline performs (ivr/effects.py): a flow naming
any other is refused when it is loaded and by `sewamitra flows check`, not during a live call."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from flows import definition
from flows.exceptions import FlowError
from ivr.effects import EFFECTS, known_effects
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
