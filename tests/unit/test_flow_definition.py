"""A broken flow file is refused at load, with every problem named; the shipped flows load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from flows import definition
from flows import prompts as prompt_files
from flows.definition import ServiceChoice
from flows.exceptions import FlowError
from ivr.effects import EFFECTS, known_effects
from sewamitra.cli import main
from tests.factories import ROOT

SERVICES = [ServiceChoice("plumber", "1", {"hi": "प्लंबर", "en": "Plumber"}, 200)]


def load(tmp_path: Path, flow: dict) -> definition.Flow:
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(flow, allow_unicode=True), encoding="utf-8")
    return definition.load(
        "test", languages=["hi", "en"], effects=known_effects(), services=SERVICES, directory=tmp_path
    )


def small_flow() -> dict:
    return {
        "flow": "test",
        "start": "menu",
        "max_steps": 20,
        "on_fail": {"goto": "bye"},
        "nodes": {
            "menu": {"menu": {"prompt": ["main_menu"], "num_digits": 1, "options": {"1": "bye"}}},
            "bye": {"say": ["goodbye"], "hangup": True},
        },
    }


def problems(tmp_path: Path, flow: dict) -> list[str]:
    with pytest.raises(FlowError) as caught:
        load(tmp_path, flow)
    return caught.value.problems


def test_the_shipped_helpline_flow_loads() -> None:
    flow = definition.load("helpline", languages=["hi", "en"], effects=known_effects(), services=SERVICES)
    assert flow.start == "welcome"
    assert "main_menu" in flow.nodes


def test_a_small_flow_loads(tmp_path: Path) -> None:
    assert set(load(tmp_path, small_flow()).nodes) == {"menu", "bye"}


def test_a_route_to_nowhere(tmp_path: Path) -> None:
    flow = small_flow()
    flow["nodes"]["menu"]["menu"]["options"]["2"] = "nowhere"
    assert "nodes.menu.menu.options.2: no node named 'nowhere'" in problems(tmp_path, flow)


def test_an_unreachable_node(tmp_path: Path) -> None:
    flow = small_flow()
    flow["nodes"]["island"] = {"say": ["goodbye"], "hangup": True}
    assert "nodes.island: unreachable from 'menu'" in problems(tmp_path, flow)


def test_a_prompt_missing_in_a_language(tmp_path: Path) -> None:
    flow = small_flow()
    flow["nodes"]["bye"]["say"] = ["no_such_prompt"]
    found = problems(tmp_path, flow)
    assert "nodes.bye: prompt 'no_such_prompt' is missing in hi" in found
    assert "nodes.bye: prompt 'no_such_prompt' is missing in en" in found


def test_a_prompt_param_left_unfilled(tmp_path: Path) -> None:
    flow = small_flow()
    flow["nodes"]["bye"]["say"] = ["request_created"]
    assert "nodes.bye: prompt 'request_created' in hi needs param 'number'" in problems(tmp_path, flow)


def test_no_step_guard(tmp_path: Path) -> None:
    flow = small_flow()
    del flow["max_steps"]
    assert "max_steps: a guard of at least 1 step is required" in problems(tmp_path, flow)


def test_an_effect_with_an_unhandled_outcome(tmp_path: Path) -> None:
    flow = small_flow()
    flow["nodes"]["menu"]["menu"]["options"]["2"] = "look"
    flow["nodes"]["look"] = {"effect": "lookup_pincode", "outcomes": {"found": "bye"}}
    found = problems(tmp_path, flow)
    assert "nodes.look.outcomes: outcome 'outside' of lookup_pincode is not handled" in found
    assert "nodes.look.outcomes: outcome 'unknown' of lookup_pincode is not handled" in found
    assert set(EFFECTS["lookup_pincode"].outcomes) == {"found", "unknown", "outside"}


def test_typos_in_keys_are_caught(tmp_path: Path) -> None:
    flow = small_flow()
    flow["nodes"]["bye"]["hangupp"] = True
    assert any("nodes.bye: unknown keys ['hangupp']" in p for p in problems(tmp_path, flow))


def test_a_node_that_does_two_things(tmp_path: Path) -> None:
    flow = small_flow()
    flow["nodes"]["bye"]["goto"] = "menu"
    assert any("needs exactly one of" in p for p in problems(tmp_path, flow))


def test_flows_check_passes_the_shipped_flows_and_fails_a_broken_one(tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(main, ["--config", str(ROOT / "config.yaml"), "flows", "check"])
    assert good.exit_code == 0, good.output
    assert "ok" in good.output
    assert "helpline.yaml" in good.output

    broken = yaml.safe_load((definition.DEFINITIONS / "helpline.yaml").read_text(encoding="utf-8"))
    broken["nodes"]["main_menu"]["menu"]["options"]["3"] = "agnet"
    path = tmp_path / "helpline.yaml"
    path.write_text(yaml.safe_dump(broken, allow_unicode=True), encoding="utf-8")
    bad = runner.invoke(main, ["--config", str(ROOT / "config.yaml"), "flows", "check", str(path)])
    assert bad.exit_code == 1
    assert "nodes.main_menu.menu.options.3: no node named 'agnet'" in bad.output


def test_flows_check_fails_when_the_privacy_notice_is_missing_in_a_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first-call notice (DPDP Act s.5) must be spoken in every language the helpline offers."""
    prompts_dir = tmp_path / "prompts"
    prompts_dir.mkdir()
    for language in ("hi", "en"):
        texts = yaml.safe_load((prompt_files.PROMPTS_DIR / f"{language}.yaml").read_text(encoding="utf-8"))
        if language == "hi":
            del texts["privacy_notice"]
        (prompts_dir / f"{language}.yaml").write_text(yaml.safe_dump(texts, allow_unicode=True), encoding="utf-8")
    monkeypatch.setattr(prompt_files, "PROMPTS_DIR", prompts_dir)
    prompt_files.prompts.cache_clear()
    try:
        bad = CliRunner().invoke(main, ["--config", str(ROOT / "config.yaml"), "flows", "check"])
    finally:
        prompt_files.prompts.cache_clear()
    assert bad.exit_code == 1
    assert "FAIL" in bad.output
    assert "nodes.first_main_menu: prompt 'privacy_notice' is missing in hi" in bad.output
    assert "missing in en" not in bad.output


def test_the_helpline_flow_must_play_the_privacy_notice(tmp_path: Path) -> None:
    helpline = yaml.safe_load((definition.DEFINITIONS / "helpline.yaml").read_text(encoding="utf-8"))
    helpline["nodes"]["first_main_menu"]["menu"]["prompt"] = ["main_menu"]
    helpline["nodes"]["first_your_worker"]["menu"]["prompt"] = ["call_your_worker"]
    (tmp_path / "helpline.yaml").write_text(yaml.safe_dump(helpline, allow_unicode=True), encoding="utf-8")
    with pytest.raises(FlowError) as caught:
        definition.load(
            "helpline", languages=["hi", "en"], effects=known_effects(), services=SERVICES, directory=tmp_path
        )
    assert "helpline: prompt 'privacy_notice' is never played, and the flow must play it" in caught.value.problems


def a_dial(**changes: object) -> dict:
    """A flow whose menu's 1 puts the caller through to the worker of a request."""
    flow = small_flow()
    dial = {"dial": "worker", "args": {"request": "{bridge_request}"}}
    dial["outcomes"] = {o: "bye" for o in ("completed", "no_answer", "busy", "failed", "refused")}
    flow["nodes"]["menu"]["menu"]["options"]["1"] = "call"
    flow["nodes"]["call"] = dial | changes
    return flow


def test_a_dial_to_the_other_party_of_a_request_loads(tmp_path: Path) -> None:
    call = load(tmp_path, a_dial()).node("call")
    assert (call.dial, dict(call.args)) == ("worker", {"request": "{bridge_request}"})


def test_a_dial_names_a_party_never_a_number(tmp_path: Path) -> None:
    assert "nodes.call.dial: a party, one of ['citizen', 'worker']" in problems(tmp_path, a_dial(dial="+919876543210"))


def test_a_dial_says_which_request_and_handles_every_way_it_can_end(tmp_path: Path) -> None:
    found = problems(tmp_path, a_dial(args={}, outcomes={"completed": "bye", "answered": "bye"}))
    assert "nodes.call.args: a dial needs `request` (the request whose other party is called)" in found
    assert "nodes.call.outcomes: a dial has no outcome 'answered'" in found
    assert "nodes.call.outcomes: outcome 'busy' of a dial is not handled" in found


def test_a_flow_file_changed_on_disk_is_read_again_by_the_next_load(tmp_path: Path) -> None:
    """Each app reads the flows at start; the parsing is remembered by the file's text, never by its name."""
    assert load(tmp_path, small_flow()).nodes["bye"].say[0].prompt == "goodbye"
    changed = small_flow()
    changed["nodes"]["bye"]["say"] = ["main_menu"]
    assert load(tmp_path, changed).nodes["bye"].say[0].prompt == "main_menu"
    assert load(tmp_path, small_flow()).nodes["bye"].say[0].prompt == "goodbye"


def test_loading_a_flow_twice_gives_equal_flows_and_leaves_the_parsed_file_as_it_was() -> None:
    text = (definition.DEFINITIONS / "helpline.yaml").read_text(encoding="utf-8")
    first = definition.load("helpline", languages=["hi", "en"], effects=known_effects(), services=SERVICES)
    second = definition.load("helpline", languages=["hi", "en"], effects=known_effects(), services=SERVICES)
    assert first == second
    assert definition._document(text) == yaml.safe_load(text)


def test_a_flow_is_built_once_for_its_text_and_what_it_is_checked_against(tmp_path: Path) -> None:
    """Every app of a process (each test's) shares the flows it built; another catalogue, other languages,
    other effects or another text build and check the flow again, and a flow refused is refused every time."""
    first = load(tmp_path, small_flow())
    assert load(tmp_path, small_flow()) is first
    other_services = [ServiceChoice("plumber", "1", {"hi": "प्लंबर", "en": "Plumber"}, 250)]
    again = definition.load(
        "test", languages=["hi", "en"], effects=known_effects(), services=other_services, directory=tmp_path
    )
    assert again is not first
    assert again.services == tuple(other_services)
    hindi = definition.load("test", languages=["hi"], effects=known_effects(), services=SERVICES, directory=tmp_path)
    assert hindi.languages == ("hi",)
    dialled = load(tmp_path, a_dial())
    assert dialled is not first
    assert "call" in dialled.nodes
    looks = small_flow()
    looks["nodes"]["menu"]["menu"]["options"]["1"] = "slots"
    looks["nodes"]["slots"] = {"effect": "find_slots", "outcomes": {"open": "bye", "none": "bye"}}
    with_slots = load(tmp_path, looks)
    without_slots = {name: outcomes for name, outcomes in known_effects().items() if name != "find_slots"}
    for _ in range(2):
        with pytest.raises(FlowError) as caught:
            definition.load(
                "test", languages=["hi", "en"], effects=without_slots, services=SERVICES, directory=tmp_path
            )
        assert caught.value.problems[0].startswith("nodes.slots.effect: unknown effect 'find_slots'")
    assert load(tmp_path, looks) is with_slots
