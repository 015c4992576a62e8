"""Which waiting caller goes to which ready agent. Pure: the same callers and agents always give the
same offers, so property tests can hold it to its promises (tests/unit/test_routing.py):

- an agent is offered a caller only in a language they speak, and a service they serve (an agent
  with no services serves every service; a caller who named no service can go to anyone);
- callers with a reason to come first (a callback due, a repeat call within a day, an open or
  escalated request) are offered before the others, then the longest-waiting;
- each caller goes to the longest-idle agent who can serve them;
- no agent gets two callers, no caller two agents, and no ready agent stays idle while a caller
  they can serve waits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    call_sid: str
    language: str
    service: str = ""
    priority: bool = False  # a callback due, a repeat call, an open or escalated request
    entered_at: float = 0.0  # epoch seconds: when they joined the queue


@dataclass(frozen=True)
class Agent:
    user_id: int
    languages: frozenset[str]
    services: frozenset[str] = frozenset()  # empty: every service
    idle_since: float = 0.0  # epoch seconds: ready and without a caller since


@dataclass(frozen=True)
class Offer:
    caller: Caller
    agent: Agent


def can_serve(agent: Agent, caller: Caller) -> bool:
    """The agent speaks the caller's language and, when both name services, serves theirs."""
    if caller.language not in agent.languages:
        return False
    return not agent.services or not caller.service or caller.service in agent.services


def first_served(callers: Iterable[Caller]) -> list[Caller]:
    """The order callers are served in: those with a reason to come first, then the longest-waiting."""
    return sorted(callers, key=lambda c: (not c.priority, c.entered_at, c.call_sid))


def assign(callers: Iterable[Caller], agents: Iterable[Agent]) -> list[Offer]:
    """Each caller, in the order they are served, to the longest-idle free agent who can serve them."""
    free = sorted(agents, key=lambda a: (a.idle_since, a.user_id))
    offers: list[Offer] = []
    for caller in first_served(callers):
        agent = next((a for a in free if can_serve(a, caller)), None)
        if agent is not None:
            free.remove(agent)
            offers.append(Offer(caller, agent))
    return offers


def next_for(agent: Agent, callers: Iterable[Caller]) -> Caller | None:
    """The caller one agent would take now by hand: the first served among those they can serve."""
    return next((c for c in first_served(callers) if can_serve(agent, c)), None)
