"""The flow engine: pure functions from (flow, session, input) to (session, events). No I/O.

The edge (ivr/) turns events into call instructions (which the telephony platform renders) or into
effects it performs (a lookup, a database write), and feeds effect outcomes and the caller's keys
back through `resume`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from flows import prompts
from flows.definition import Flow, Node, Route, SayItem

ANYWHERE_AGENT_KEY = "0"


class Status(StrEnum):
    WAITING_KEYS = "waiting_keys"
    WAITING_EFFECT = "waiting_effect"
    WAITING_DIAL = "waiting_dial"  # the caller is put through to someone; the platform says how it ended
    WAITING_RECORDING = "waiting_recording"
    ENDED = "ended"


# -- events (what the edge must do) ----------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    text: str
    language: str
    prompt: str | None = None  # set when the text is fixed, so a recording may replace it
    url: str | None = None  # audio to play instead of the text (a caller's recording)


@dataclass(frozen=True)
class Gather:
    prompts: tuple[Say, ...]
    num_digits: int | None
    finish_on_key: str
    timeout: int


@dataclass(frozen=True)
class Effect:
    name: str
    args: Mapping[str, str]


@dataclass(frozen=True)
class Dial:
    """Put the caller through to `party` of a request (`args`): the edge looks up the number."""

    party: str
    args: Mapping[str, str]


@dataclass(frozen=True)
class Record:
    """Record the caller after a beep; the edge resumes the flow with the outcome (recorded, empty, failed)."""

    max_length: int
    timeout: int
    finish_on_key: str
    beep: bool


@dataclass(frozen=True)
class Enqueue:
    queue: str


@dataclass(frozen=True)
class Hangup:
    pass


Event = Say | Gather | Effect | Dial | Record | Enqueue | Hangup


# -- inputs (what happened) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    """What the caller keyed at a wait; "" is silence."""

    digits: str


@dataclass(frozen=True)
class Outcome:
    """What an effect came to, with values for the flow's variables."""

    name: str
    values: Mapping[str, Any] = field(default_factory=dict)


Input = Keys | Outcome


@dataclass(frozen=True)
class Trigger:
    language: str | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Session:
    flow: str
    node: str
    status: Status
    language: str
    vars: Mapping[str, Any]
    tries: Mapping[str, int]
    steps: int
    turn: int
    path: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "node": self.node,
            "status": self.status.value,
            "language": self.language,
            "vars": dict(self.vars),
            "tries": dict(self.tries),
            "steps": self.steps,
            "turn": self.turn,
            "path": list(self.path),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Session:
        return cls(
            flow=data["flow"],
            node=data["node"],
            status=Status(data["status"]),
            language=data["language"],
            vars=dict(data["vars"]),
            tries=dict(data["tries"]),
            steps=int(data["steps"]),
            turn=int(data["turn"]),
            path=tuple(data["path"]),
        )


# -- the engine ------------------------------------------------------------------------------------


def start(flow: Flow, trigger: Trigger) -> tuple[Session, list[Event]]:
    """Begin a call at the flow's start node."""
    language = trigger.language if trigger.language in flow.languages else flow.languages[0]
    run = _Run(flow, language, dict(trigger.vars), {}, 0, [])
    run.enter(flow.start)
    return run.session(turn=0), run.events


def resume(flow: Flow, session: Session, given: Input) -> tuple[Session, list[Event]]:
    """Go on from where `session` waits, with the caller's keys or an effect's outcome."""
    if session.status is Status.ENDED:
        return session, []
    # The step guard counts the nodes run for one input: a long call is no loop.
    run = _Run(flow, session.language, dict(session.vars), dict(session.tries), 0, list(session.path))
    run.node = session.node
    node = flow.nodes.get(session.node)
    if node is None:
        run.apply(flow.on_fail)
    elif isinstance(given, Keys) and session.status is Status.WAITING_KEYS and node.wait:
        run.keys(node, given.digits.strip())
    elif isinstance(given, Outcome) and _awaits_outcome(session, node):
        run.outcome(node, given)
    else:
        return session, []  # an input the session is not waiting for: nothing happens
    # A recording is a turn of the caller's, as keys are: the platform's retry of it is told apart.
    waited = isinstance(given, Keys) or session.status is Status.WAITING_RECORDING
    turn = session.turn + 1 if waited else session.turn
    return run.session(turn=turn), run.events


def _awaits_outcome(session: Session, node: Node) -> bool:
    """An effect's outcome, a dial's or a recording's: each only at the node that asked for it."""
    if session.status is Status.WAITING_EFFECT:
        return bool(node.effect)
    if session.status is Status.WAITING_DIAL:
        return bool(node.dial)
    return session.status is Status.WAITING_RECORDING and node.record is not None


@dataclass
class _Run:
    """One step of a call, mutable while it runs; `session()` freezes the result."""

    flow: Flow
    language: str
    vars: dict[str, Any]
    tries: dict[str, int]
    steps: int
    path: list[str]
    events: list[Event] = field(default_factory=list)
    node: str = ""
    status: Status = Status.ENDED

    def session(self, turn: int) -> Session:
        return Session(
            self.flow.name,
            self.node,
            self.status,
            self.language,
            self.vars,
            self.tries,
            self.steps,
            turn,
            tuple(self.path),
        )

    def enter(self, name: str, *, again: bool = False) -> None:
        """Run nodes from `name` until one waits or the flow ends."""
        while True:
            self.steps += 1
            if self.steps > self.flow.max_steps:
                self._overflow()
                return
            node = self.flow.nodes[name]
            self.node = name
            self.path.append(name)
            if not again:
                self.say(node.say)
            again = False
            following = self._act(node)
            if following is None:
                return
            name = following

    def _act(self, node: Node) -> str | None:
        """Do what `node` does; the node to go on to, or None when the flow waits or ends."""
        if node.goto:
            return node.goto
        if node.switch:
            value = str(self.vars.get(node.switch) or "")
            return self._route(node.cases.get(value, node.default or self.flow.on_fail))
        if node.effect:
            args = {key: self.render_value(value, self.vars) for key, value in node.args.items()}
            self.events.append(Effect(node.effect, args))
            self.status = Status.WAITING_EFFECT
        elif node.dial:
            args = {key: self.render_value(value, self.vars) for key, value in node.args.items()}
            self.events.append(Dial(node.dial, args))
            self.status = Status.WAITING_DIAL
        elif node.wait:
            wait = node.wait
            prompts_ = tuple(self.render(item) for item in wait.prompt)
            self.events.append(Gather(sum(prompts_, ()), wait.num_digits, wait.finish_on_key, wait.timeout))
            self.status = Status.WAITING_KEYS
        elif node.record is not None:
            record = node.record
            self.events.append(Record(record.max_length, record.timeout, record.finish_on_key, record.beep))
            self.status = Status.WAITING_RECORDING
        elif node.enqueue:
            self.events.append(Enqueue(node.enqueue))
            self.status = Status.ENDED
        else:
            self.events.append(Hangup())
            self.status = Status.ENDED
        return None

    def apply(self, route: Route) -> None:
        following = self._route(route)
        if following is not None:
            self.enter(following)

    def _route(self, route: Route) -> str | None:
        """Set, say (in a language just set), then the node to enter; a retry counts a try."""
        for key, value in route.set.items():
            if key == "language":
                self.language = value if value in self.flow.languages else self.language
            self.vars[key] = self.render_value(value, self.vars)
        self.say(route.say)
        if route.retry:
            self.fail(self.flow.nodes[route.retry])
            return None
        return route.goto

    def keys(self, node: Node, digits: str) -> None:
        wait = node.wait
        assert wait is not None
        if not re.fullmatch(r"[0-9*#]*", digits):
            digits = "?"
        if digits == "" and wait.on_silence is not None:
            self._succeed(node, wait.on_silence)
        elif wait.store:
            if digits and re.fullmatch(wait.pattern or r".+", digits):
                self.vars[wait.store] = digits
                assert wait.then is not None
                self._succeed(node, wait.then)
            else:
                self._wrong(node, digits)
        elif digits in wait.options:
            self._succeed(node, wait.options[digits])
        elif wait.options_from == "services":
            self._choose_service(node, digits)
        elif wait.options_from:
            self._choose_row(node, wait.options_from, digits)
        else:
            self._wrong(node, digits)

    def _choose_service(self, node: Node, digits: str) -> None:
        wait = node.wait
        assert wait is not None
        assert wait.option_route is not None
        chosen = next((s for s in self.flow.services if s.digit == digits), None)
        if chosen is None:
            self._wrong(node, digits)
            return
        self.vars["service"] = chosen.code
        self.vars["service_charge"] = str(chosen.visit_charge)
        self._succeed(node, wait.option_route)

    def _choose_row(self, node: Node, rows: str, digits: str) -> None:
        """A menu of a list an effect gave (`options_from: <variable>`): the row whose `digit` was
        keyed sets its other values, e.g. the slot picked and its words."""
        wait = node.wait
        assert wait is not None
        assert wait.option_route is not None
        chosen = next((row for row in self._rows(rows) if str(row.get("digit")) == digits), None) if digits else None
        if chosen is None:
            self._wrong(node, digits)
            return
        self.vars.update({key: value for key, value in chosen.items() if key != "digit" and _is_plain(value)})
        self._succeed(node, wait.option_route)

    def _wrong(self, node: Node, digits: str) -> None:
        """A wrong key or silence: 0 still reaches an agent; otherwise say so and count a try."""
        agent = self.flow.anywhere.get(digits) if digits else None
        if agent is not None:
            self._succeed(node, agent)
            return
        assert node.wait is not None
        self.say(node.wait.on_invalid)
        self.fail(node)

    def fail(self, node: Node) -> None:
        self.tries[node.name] = self.tries.get(node.name, 0) + 1
        if self.tries[node.name] >= self.flow.max_tries:
            self.tries.pop(node.name)
            fallback = node.wait.on_fail if node.wait and node.wait.on_fail else self.flow.on_fail
            self.apply(fallback)
        else:
            self.enter(node.name, again=True)

    def _succeed(self, node: Node, route: Route) -> None:
        """Progress forgets earlier failures, except an input's own: an effect may still refuse
        what was keyed (an unknown PIN code) and send the caller back to it as a retry."""
        keep = node.wait is not None and node.wait.store is not None and node.name in self.tries
        self.tries = {node.name: self.tries[node.name]} if keep else {}
        self.apply(route)

    def outcome(self, node: Node, given: Outcome) -> None:
        self.vars.update({key: value for key, value in given.values.items() if _is_plain(value)})
        self.apply(node.outcomes.get(given.name, self.flow.on_fail))

    def _overflow(self) -> None:
        """The step guard tripped: a looping flow goes to on_fail once, then the call ends."""
        if self.vars.get("_overflow"):
            self.events.append(Hangup())
            self.status = Status.ENDED
            return
        self.vars["_overflow"] = "1"
        self.steps = 0
        self.apply(self.flow.on_fail)

    # -- speaking ----------------------------------------------------------------------------------

    def say(self, items: tuple[SayItem, ...]) -> None:
        for item in items:
            self.events.extend(self.render(item))

    def render(self, item: SayItem) -> tuple[Say, ...]:
        language = item.language or self.language
        if item.each is None:
            return (self._say(item, language, self.vars),)
        return tuple(self._say(item, language, {**self.vars, **row}) for row in self._rows(item.each))

    def _rows(self, name: str) -> list[Mapping[str, Any]]:
        if name == "services":
            return [{"service": s.code, "digit": s.digit} for s in self.flow.services]
        rows = self.vars.get(name)
        return [row for row in rows if isinstance(row, Mapping)] if isinstance(rows, list) else []

    def _say(self, item: SayItem, language: str, values: Mapping[str, Any]) -> Say:
        if item.play is not None:
            return Say("", language, None, url=self.render_value(item.play, values, language))
        params = {key: self.render_value(value, values, language) for key, value in item.params.items()}
        text = prompts.text(item.prompt, language).format_map(params)
        return Say(text, language, None if item.params else item.prompt)

    def render_value(self, value: str, values: Mapping[str, Any], language: str | None = None) -> str:
        """`form:template` → text: `{var}` filled in, then read as digits, a prompt or a service name."""
        form, _, template = value.partition(":") if ":" in value else ("text", "", value)
        filled = _VARIABLE.sub(lambda m: str(values.get(m.group(1), "")), template) if "{" in template else template
        language = language or self.language
        if form == "digits":
            return prompts.digits(filled, language)
        if form == "prompt":
            return prompts.prompts(language).get(filled, "")
        if form == "service_name":
            service = self.flow.service(filled)
            return service.names.get(language, service.code) if service else filled
        return filled


_VARIABLE = re.compile(r"{(\w+)}")  # a session variable in a prompt's parameter or an effect's argument


def pending_dial(flow: Flow, session: Session) -> Dial | None:
    """The dial a session waits on (as `start`/`resume` asked for it), for the edge that hears how it ended."""
    node = flow.nodes.get(session.node)
    if session.status is not Status.WAITING_DIAL or node is None or node.dial is None:
        return None
    run = _Run(flow, session.language, dict(session.vars), {}, 0, [])
    return Dial(node.dial, {key: run.render_value(value, run.vars) for key, value in node.args.items()})


def _is_plain(value: Any) -> bool:
    """Values a session can carry through Redis as JSON."""
    if isinstance(value, str | int | float | bool) or value is None:
        return True
    if isinstance(value, list):
        return all(isinstance(row, Mapping) and all(_is_plain(v) for v in row.values()) for row in value)
    return False
