"""Flow definitions: YAML data, loaded into frozen objects and validated before any call uses them.

A flow is a set of named nodes. Each node may speak (`say`), then does one thing:
- `goto`: go on to another node;
- `menu`: wait for one key (or `num_digits` keys) and route by `options` (or by the catalogue,
  `options_from: services`, or a list variable an effect gave, whose rows each have a `digit`);
- `input`: wait for several keys ended by `finish_on_key`, check them against `pattern`, store them;
- `effect`: ask the edge for something only it can do (look up, store, queue) and route by outcome;
- `switch`: route by the value of a variable;
- `dial`: put the caller through to the other party of a request (`citizen` or `worker`), whose number
  only the edge looks up, and route by how the call ended (`DIAL_OUTCOMES`);
- `record`: record what the caller says after a beep (up to `max_length` seconds, ended by
  `finish_on_key` or `timeout` seconds of silence) and route by `outcomes`: recorded, empty, failed;
- `enqueue` / `hangup`: end the flow.
A wrong key or silence at a menu or input counts a try; after `max_tries` the node's `on_fail`
(or the flow's) route is taken, so no caller is ever stuck.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flows import prompts as prompt_files
from flows.exceptions import FlowError

# libyaml's safe loader when PyYAML has it: the same documents read eight times as fast (each app reads the flows).
SAFE_LOADER = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
DEFINITIONS = Path(__file__).with_name("definitions")
PARAM_FORMS = ("digits", "text", "prompt", "service_name")
# Whom a `dial` node may put the caller through to: the other party of a request, never a number.
DIAL_PARTIES = ("citizen", "worker")
# How a dial ends: talked (`completed`), not picked up, busy, not connected, or refused by the edge
# (the request is not the caller's, or no longer open for calls).
DIAL_OUTCOMES = frozenset({"completed", "no_answer", "busy", "failed", "refused"})
# Effects the edge performs, each with the outcomes it can report (name → outcomes). The edge is the
# one that knows them: it passes its list to `load`, which refuses a flow naming any other.
Effects = Mapping[str, Collection[str]]


@dataclass(frozen=True)
class SayItem:
    """One prompt, with its parameters (`{name: "form:var"}`) and an optional fixed language."""

    prompt: str
    params: Mapping[str, str] = field(default_factory=dict)
    language: str | None = None
    each: str | None = None  # say once per item of this list variable
    play: str | None = None  # play the audio at this URL (a template: "{address_url}") instead of a prompt


@dataclass(frozen=True)
class Route:
    say: tuple[SayItem, ...] = ()
    set: Mapping[str, str] = field(default_factory=dict)
    goto: str | None = None
    retry: str | None = None  # go back to this node counting a failed try


@dataclass(frozen=True)
class Wait:
    """A keypad wait: a menu (`options`) or an input (`store` + `pattern`)."""

    prompt: tuple[SayItem, ...]
    options: Mapping[str, Route] = field(default_factory=dict)
    options_from: str | None = None
    option_route: Route | None = None  # for options_from: where any catalogue key leads
    store: str | None = None
    pattern: str | None = None
    then: Route | None = None
    num_digits: int | None = None
    finish_on_key: str = ""
    timeout: int = 5
    on_silence: Route | None = None
    on_invalid: tuple[SayItem, ...] = ()
    on_fail: Route | None = None


@dataclass(frozen=True)
class Node:
    name: str
    say: tuple[SayItem, ...] = ()
    goto: str | None = None
    wait: Wait | None = None
    effect: str | None = None
    args: Mapping[str, str] = field(default_factory=dict)
    outcomes: Mapping[str, Route] = field(default_factory=dict)
    switch: str | None = None
    cases: Mapping[str, Route] = field(default_factory=dict)
    default: Route | None = None
    enqueue: str | None = None
    hangup: bool = False
    dial: str | None = None  # the party to put the caller through to; `args` say about which request
    record: Recording | None = None


@dataclass(frozen=True)
class Recording:
    """A `record` node: what the caller says after the beep, kept by the platform."""

    max_length: int = 30
    timeout: int = 5
    finish_on_key: str = "#"
    beep: bool = True


RECORD_OUTCOMES = frozenset({"recorded", "empty", "failed"})
_RECORD_KEYS = {"max_length", "timeout", "finish_on_key", "beep"}


@dataclass(frozen=True)
class ServiceChoice:
    """A catalogue entry as the flow needs it: its key, names per language and charge."""

    code: str
    digit: str
    names: Mapping[str, str]
    visit_charge: int


@dataclass(frozen=True)
class Flow:
    name: str
    start: str
    languages: tuple[str, ...]
    nodes: Mapping[str, Node]
    max_steps: int
    max_tries: int
    on_fail: Route
    anywhere: Mapping[str, Route] = field(default_factory=dict)  # keys that work at every wait
    services: tuple[ServiceChoice, ...] = ()

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def service(self, code: str) -> ServiceChoice | None:
        return next((s for s in self.services if s.code == code), None)


def load(
    name: str,
    *,
    languages: Iterable[str],
    effects: Effects,
    services: Iterable[ServiceChoice] = (),
    directory: Path = DEFINITIONS,
) -> Flow:
    """Read `<directory>/<name>.yaml` and validate it against the effects the edge performs;
    FlowError lists everything wrong."""
    path = directory / f"{name}.yaml"
    try:
        text = path.read_text(encoding="utf-8")
        raw = _document(text)
    except (OSError, yaml.YAMLError) as exc:
        raise FlowError(path, [f"cannot read: {exc}"]) from None
    languages, services = tuple(languages), tuple(services)
    key = (text, languages, tuple(map(_service_key, services)), _effects_key(effects), _prompts_key(languages))
    flow = _VALID.get(key)
    if flow is not None:
        return flow
    problems: list[str] = []
    flow = _build(raw, languages, services, problems)
    if flow is not None:
        problems += validate(flow, effects)
    if problems or flow is None:
        raise FlowError(path, problems)
    if len(_VALID) >= 64:  # a bound, as `_document`'s: a process loads a handful of flows
        _VALID.clear()
    _VALID[key] = flow
    return flow


# Flows built and found valid, once per process for each text and what `load` checks them against
# (the languages and their prompts, the catalogue, the edge's effects): every app of a process (each
# test's) loads the same three. A flow is frozen and nothing changes it, so the apps share it.
_VALID: dict[tuple[object, ...], Flow] = {}


def _service_key(service: ServiceChoice) -> tuple[object, ...]:
    return (service.code, service.digit, tuple(sorted(service.names.items())), service.visit_charge)


def _effects_key(effects: Effects) -> tuple[tuple[str, frozenset[str]], ...]:
    return tuple(sorted((name, frozenset(outcomes)) for name, outcomes in effects.items()))


def _prompts_key(languages: tuple[str, ...]) -> tuple[object, ...]:
    """The prompts a flow is checked against, in each of its languages (none where a language has none)."""
    try:
        return tuple(frozenset(prompt_files.prompts(language).items()) for language in languages)
    except (OSError, ValueError, yaml.YAMLError):  # `validate` says what is wrong
        return (object(),)  # a key never found again: the flow is built and checked each time


@functools.lru_cache(maxsize=64)
def _document(text: str) -> Any:
    """A flow file's YAML, parsed once per process for each text (every app reads the same flows,
    and the parsing is most of its start); `_build` only reads it."""
    return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 (a safe loader, C or Python)


# -- building from YAML ---------------------------------------------------------------------------

_NODE_KEYS = {
    "say",
    "goto",
    "menu",
    "input",
    "effect",
    "args",
    "outcomes",
    "switch",
    "cases",
    "default",
    "enqueue",
    "hangup",
    "dial",
    "record",
}
_ROUTE_KEYS = {"say", "set", "goto", "retry"}
_WAIT_KEYS = {
    "prompt",
    "options",
    "options_from",
    "option",
    "store",
    "pattern",
    "then",
    "num_digits",
    "finish_on_key",
    "timeout",
    "on_silence",
    "on_invalid",
    "on_fail",
}


def _build(
    raw: Any, languages: tuple[str, ...], services: tuple[ServiceChoice, ...], problems: list[str]
) -> Flow | None:
    if not isinstance(raw, dict):
        problems.append("the file must be a mapping with flow, start, nodes")
        return None
    unknown = set(raw) - {"flow", "start", "max_steps", "max_tries", "on_fail", "anywhere", "nodes"}
    if unknown:
        problems.append(f"unknown top-level keys: {sorted(unknown)}")
    nodes_raw = raw.get("nodes")
    if not isinstance(nodes_raw, dict) or not nodes_raw:
        problems.append("nodes: a mapping of node names is required")
        return None
    nodes = {str(name): _node(str(name), body, problems) for name, body in nodes_raw.items()}
    return Flow(
        name=str(raw.get("flow", "")),
        start=str(raw.get("start", "")),
        languages=languages,
        nodes=nodes,
        max_steps=_int(raw.get("max_steps", 0), "max_steps", problems),
        max_tries=_int(raw.get("max_tries", 3), "max_tries", problems),
        on_fail=_route(raw.get("on_fail"), "on_fail", problems),
        anywhere=_routes(raw.get("anywhere"), "anywhere", problems),
        services=services,
    )


def _node(name: str, body: Any, problems: list[str]) -> Node:
    where = f"nodes.{name}"
    if not isinstance(body, dict):
        problems.append(f"{where}: must be a mapping")
        return Node(name=name)
    unknown = set(body) - _NODE_KEYS
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}")
    wait_raw = body.get("menu", body.get("input"))
    return Node(
        name=name,
        say=_says(body.get("say"), f"{where}.say", problems),
        goto=_opt_str(body.get("goto")),
        wait=_wait(wait_raw, f"{where}.{'menu' if 'menu' in body else 'input'}", problems) if wait_raw else None,
        effect=_opt_str(body.get("effect")),
        args=_str_map(body.get("args"), f"{where}.args", problems),
        outcomes=_routes(body.get("outcomes"), f"{where}.outcomes", problems),
        switch=_opt_str(body.get("switch")),
        cases=_routes(body.get("cases"), f"{where}.cases", problems),
        default=_route(body["default"], f"{where}.default", problems) if "default" in body else None,
        enqueue=_opt_str(body.get("enqueue")),
        hangup=bool(body.get("hangup", False)),
        dial=_opt_str(body.get("dial")),
        record=_recording(body["record"], f"{where}.record", problems) if "record" in body else None,
    )


def _recording(raw: Any, where: str, problems: list[str]) -> Recording | None:
    if raw is None:
        return Recording()
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping of {sorted(_RECORD_KEYS)}")
        return None
    unknown = set(raw) - _RECORD_KEYS
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}")
    return Recording(
        max_length=_int(raw.get("max_length", 30), f"{where}.max_length", problems),
        timeout=_int(raw.get("timeout", 5), f"{where}.timeout", problems),
        finish_on_key=str(raw.get("finish_on_key", "#")),
        beep=bool(raw.get("beep", True)),
    )


def _wait(raw: Any, where: str, problems: list[str]) -> Wait | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    unknown = set(raw) - _WAIT_KEYS
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}")

    def optional_route(key: str) -> Route | None:
        return _route(raw[key], f"{where}.{key}", problems) if key in raw else None

    return Wait(
        prompt=_says(raw.get("prompt"), f"{where}.prompt", problems),
        options=_routes(raw.get("options"), f"{where}.options", problems),
        options_from=_opt_str(raw.get("options_from")),
        option_route=optional_route("option"),
        store=_opt_str(raw.get("store")),
        pattern=_opt_str(raw.get("pattern")),
        then=optional_route("then"),
        num_digits=_int(raw["num_digits"], f"{where}.num_digits", problems) if "num_digits" in raw else None,
        finish_on_key=str(raw.get("finish_on_key", "")),
        timeout=_int(raw.get("timeout", 5), f"{where}.timeout", problems),
        on_silence=optional_route("on_silence"),
        on_invalid=_says(raw.get("on_invalid"), f"{where}.on_invalid", problems),
        on_fail=optional_route("on_fail"),
    )


def _routes(raw: Any, where: str, problems: list[str]) -> dict[str, Route]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return {}
    return {str(key): _route(value, f"{where}.{key}", problems) for key, value in raw.items()}


def _route(raw: Any, where: str, problems: list[str]) -> Route:
    if raw is None:
        return Route()
    if isinstance(raw, str):
        return Route(goto=raw)
    if not isinstance(raw, dict):
        problems.append(f"{where}: a node name or a mapping with say/set/goto/retry")
        return Route()
    unknown = set(raw) - _ROUTE_KEYS
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}")
    return Route(
        say=_says(raw.get("say"), f"{where}.say", problems),
        set=_str_map(raw.get("set"), f"{where}.set", problems),
        goto=_opt_str(raw.get("goto")),
        retry=_opt_str(raw.get("retry")),
    )


def _says(raw: Any, where: str, problems: list[str]) -> tuple[SayItem, ...]:
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    says = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            says.append(SayItem(prompt=item))
        elif isinstance(item, dict) and set(item) == {"play"} and isinstance(item["play"], str):
            says.append(SayItem(prompt="", play=item["play"]))
        elif isinstance(item, dict) and "prompt" in item and set(item) <= {"prompt", "params", "language", "each"}:
            says.append(
                SayItem(
                    prompt=str(item["prompt"]),
                    params=_str_map(item.get("params"), f"{where}[{index}].params", problems),
                    language=_opt_str(item.get("language")),
                    each=_opt_str(item.get("each")),
                )
            )
        else:
            problems.append(f"{where}[{index}]: a prompt name, {{prompt, params, language, each}} or {{play}}")
    return tuple(says)


def _str_map(raw: Any, where: str, problems: list[str]) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return {}
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any, where: str, problems: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"{where}: must be a whole number, got {value!r}")
        return 0
    return value


# -- validation -----------------------------------------------------------------------------------


def validate(flow: Flow, effects: Effects) -> list[str]:
    """Everything wrong with `flow`: dangling routes, unreachable nodes, missing prompts, effects the
    edge does not perform, …"""
    problems: list[str] = []
    if flow.start not in flow.nodes:
        problems.append(f"start: no node named {flow.start!r}")
    if flow.max_steps < 1:
        problems.append("max_steps: a guard of at least 1 step is required")
    if flow.max_tries < 1:
        problems.append("max_tries: at least 1")
    problems += _check_route(flow, flow.on_fail, "on_fail")
    if flow.on_fail.goto is None:
        problems.append("on_fail: must goto a node (where callers go after too many tries)")
    for key, route in flow.anywhere.items():
        problems += _check_route(flow, route, f"anywhere.{key}")
    for node in flow.nodes.values():
        problems += _check_node(flow, node, effects)
    problems += _check_reachable(flow)
    problems += _check_prompts(flow)
    problems += _check_required(flow)
    return problems


def _check_node(flow: Flow, node: Node, effects: Effects) -> list[str]:
    where = f"nodes.{node.name}"
    enders = [bool(node.goto), bool(node.wait), bool(node.effect), bool(node.switch), bool(node.enqueue), node.hangup]
    enders += [bool(node.dial), node.record is not None]
    problems = []
    if sum(enders) != 1:
        ends = "goto, menu/input, effect, switch, dial, record, enqueue, hangup"
        problems.append(f"{where}: needs exactly one of {ends}")
    if node.goto and node.goto not in flow.nodes:
        problems.append(f"{where}.goto: no node named {node.goto!r}")
    if node.effect:
        problems += _check_effect(flow, node, where, effects)
    if node.dial:
        problems += _check_dial(flow, node, where)
    if node.record is not None:
        problems += _check_record(flow, node, where)
    if node.switch:
        for key, route in node.cases.items():
            problems += _check_route(flow, route, f"{where}.cases.{key}")
        if node.default is None:
            problems.append(f"{where}: a switch needs a default route")
        else:
            problems += _check_route(flow, node.default, f"{where}.default")
    if node.wait:
        problems += _check_wait(flow, node.wait, f"{where}.{'input' if node.wait.store else 'menu'}")
    return problems


def _check_effect(flow: Flow, node: Node, where: str, effects: Effects) -> list[str]:
    assert node.effect is not None
    known = effects.get(node.effect)
    if known is None:
        return [
            f"{where}.effect: unknown effect {node.effect!r}, which the helpline cannot perform; "
            f"known: {sorted(effects)}"
        ]
    return _check_outcomes(flow, node, where, frozenset(known), node.effect)


def _check_dial(flow: Flow, node: Node, where: str) -> list[str]:
    """A dial names a party, the request it is about, and where each way it can end leads."""
    problems = [] if node.dial in DIAL_PARTIES else [f"{where}.dial: a party, one of {list(DIAL_PARTIES)}"]
    if "request" not in node.args:
        problems.append(f"{where}.args: a dial needs `request` (the request whose other party is called)")
    return problems + _check_outcomes(flow, node, where, DIAL_OUTCOMES, "a dial")


def _check_record(flow: Flow, node: Node, where: str) -> list[str]:
    """A recording is bounded (a caller cannot hold the line for an hour) and every outcome is routed."""
    record = node.record
    assert record is not None
    problems = [] if 2 <= record.max_length <= 120 else [f"{where}.record.max_length: 2–120 seconds"]
    if not 1 <= record.timeout <= 30:
        problems.append(f"{where}.record.timeout: 1–30 seconds of silence")
    if record.finish_on_key not in ("#", "*"):
        problems.append(f"{where}.record.finish_on_key: '#' or '*'")
    return problems + _check_outcomes(flow, node, where, RECORD_OUTCOMES, "a recording")


def _check_outcomes(flow: Flow, node: Node, where: str, known: frozenset[str], of: str) -> list[str]:
    """Each way `of` (an effect, a dial, a recording) can end is routed, to a node that exists, and no
    route waits for an ending it does not have."""
    routed = set(node.outcomes)
    problems = [f"{where}.outcomes: {of} has no outcome {o!r}" for o in sorted(routed - known)]
    problems += [f"{where}.outcomes: outcome {o!r} of {of} is not handled" for o in sorted(known - routed)]
    for key, route in node.outcomes.items():
        problems += _check_route(flow, route, f"{where}.outcomes.{key}")
    return problems


def _check_wait(flow: Flow, wait: Wait, where: str) -> list[str]:
    problems = [] if wait.prompt else [f"{where}.prompt: a wait must tell the caller what to press"]
    problems += _check_choices(wait, where)
    problems += [
        f"{where}.options.{key}: keys are keypad digits, * or #"
        for key in wait.options
        if not re.fullmatch(r"[0-9*#]+", key)
    ]
    if wait.finish_on_key not in ("", "#", "*"):
        problems.append(f"{where}.finish_on_key: '#', '*' or empty")
    if not 1 <= wait.timeout <= 60:
        problems.append(f"{where}.timeout: 1–60 seconds")
    routes = {f"options.{k}": r for k, r in wait.options.items()}
    routes |= {
        k: r
        for k, r in (
            ("option", wait.option_route),
            ("then", wait.then),
            ("on_silence", wait.on_silence),
            ("on_fail", wait.on_fail),
        )
        if r is not None
    }
    for key, route in routes.items():
        problems += _check_route(flow, route, f"{where}.{key}")
    return problems


def _check_choices(wait: Wait, where: str) -> list[str]:
    """An input stores what was keyed, a service menu lists the catalogue, any other menu its options."""
    if wait.store:
        return _check_input(wait, where)
    if wait.options_from:
        problems = (
            []
            if re.fullmatch(r"[a-z_]+", wait.options_from)
            else [f"{where}.options_from: 'services' or the name of a list variable"]
        )
        if wait.option_route is None:
            problems.append(f"{where}: options_from needs `option` (where a chosen row leads)")
        return problems
    return [] if wait.options else [f"{where}: a menu needs options"]


def _check_input(wait: Wait, where: str) -> list[str]:
    problems = [] if wait.then is not None else [f"{where}: an input needs `then`"]
    if wait.pattern:
        try:
            re.compile(wait.pattern)
        except re.error as exc:
            problems.append(f"{where}.pattern: {exc}")
    return problems


def _check_route(flow: Flow, route: Route, where: str) -> list[str]:
    problems = []
    for target in (route.goto, route.retry):
        if target is not None and target not in flow.nodes:
            problems.append(f"{where}: no node named {target!r}")
    if route.goto and route.retry:
        problems.append(f"{where}: goto or retry, not both")
    return problems


def successors(flow: Flow, node: Node) -> set[str]:
    routes = [*node.outcomes.values(), *node.cases.values(), node.default, flow.on_fail]
    if node.wait:
        routes += flow.anywhere.values()
        wait = node.wait
        routes += [*wait.options.values(), wait.option_route, wait.then, wait.on_silence, wait.on_fail]
    targets = {node.goto} | {t for r in routes if r is not None for t in (r.goto, r.retry)}
    if node.wait:
        targets.add(node.name)  # a wrong key prompts again
    return {t for t in targets if t is not None}


def _check_reachable(flow: Flow) -> list[str]:
    if flow.start not in flow.nodes:
        return []
    seen, todo = {flow.start}, [flow.start]
    while todo:
        for target in successors(flow, flow.nodes[todo.pop()]):
            if target in flow.nodes and target not in seen:
                seen.add(target)
                todo.append(target)
    return [f"nodes.{name}: unreachable from {flow.start!r}" for name in flow.nodes if name not in seen]


def _say_items(flow: Flow) -> Iterable[tuple[str, SayItem]]:
    for node in flow.nodes.values():
        routes = [*node.outcomes.values(), *node.cases.values(), node.default]
        items = list(node.say)
        if node.wait:
            items += [*node.wait.prompt, *node.wait.on_invalid]
            routes += [
                *node.wait.options.values(),
                node.wait.option_route,
                node.wait.then,
                node.wait.on_silence,
                node.wait.on_fail,
            ]
        items += [item for route in routes if route is not None for item in route.say]
        for item in items:
            yield f"nodes.{node.name}", item
    for item in flow.on_fail.say:
        yield "on_fail", item
    for key, route in flow.anywhere.items():
        for item in route.say:
            yield f"anywhere.{key}", item


# Prompts a flow must play: the helpline's first-call privacy notice (DPDP Act 2023, s.5).
REQUIRED_PROMPTS: Mapping[str, tuple[str, ...]] = {"helpline": ("privacy_notice",)}


def _check_required(flow: Flow) -> list[str]:
    played = {item.prompt for _, item in _say_items(flow)}
    return [
        f"{flow.name}: prompt {name!r} is never played, and the flow must play it"
        for name in REQUIRED_PROMPTS.get(flow.name, ())
        if name not in played
    ]


def _check_prompts(flow: Flow) -> list[str]:
    problems = []
    for where, item in _say_items(flow):
        if item.play is not None:
            continue  # audio from a variable (a recording), not a prompt
        languages = [item.language] if item.language else list(flow.languages)
        for language in languages:
            if item.prompt not in prompt_files.prompts(language):
                problems.append(f"{where}: prompt {item.prompt!r} is missing in {language}")
            text = prompt_files.prompts(language).get(item.prompt, "")
            for placeholder in sorted(set(re.findall(r"{(\w+)}", text)) - set(item.params)):
                problems.append(f"{where}: prompt {item.prompt!r} in {language} needs param {placeholder!r}")
        for name, value in item.params.items():
            form = value.split(":", 1)[0] if ":" in value else "text"
            if form not in PARAM_FORMS:
                problems.append(f"{where}: prompt {item.prompt!r} param {name!r} has unknown form {form!r}")
    return problems
