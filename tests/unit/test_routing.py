"""Routing as pure code, held to its promises by Hypothesis: whatever callers wait and whichever
agents are ready, each offer respects the caller's language (and service), callers with a reason to
come first are served first, no one gets two, and no ready agent stays idle while a caller they can
serve waits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callcentre.routing import Agent, Caller, assign, can_serve, first_served, next_for

LANGUAGES = ("hi", "en")
SERVICES = ("plumber", "electrician", "carpenter")

callers = st.lists(
    st.builds(
        Caller,
        call_sid=st.text("abcdef0123456789", min_size=4, max_size=8),
        language=st.sampled_from(LANGUAGES),
        service=st.sampled_from(("", *SERVICES)),
        priority=st.booleans(),
        entered_at=st.floats(0, 1000, allow_nan=False),
    ),
    max_size=12,
    unique_by=lambda c: c.call_sid,
)
agents = st.lists(
    st.builds(
        Agent,
        user_id=st.integers(1, 10_000),
        languages=st.frozensets(st.sampled_from(LANGUAGES), min_size=1),
        services=st.frozensets(st.sampled_from(SERVICES)),
        idle_since=st.floats(0, 1000, allow_nan=False),
    ),
    max_size=8,
    unique_by=lambda a: a.user_id,
)


@given(callers, agents)
def test_every_offer_is_in_the_callers_language_and_a_service_the_agent_serves(
    waiting: list[Caller], ready: list[Agent]
) -> None:
    for offer in assign(waiting, ready):
        assert offer.caller.language in offer.agent.languages
        assert not offer.agent.services or not offer.caller.service or offer.caller.service in offer.agent.services


@given(callers, agents)
def test_one_caller_per_agent_and_one_agent_per_caller(waiting: list[Caller], ready: list[Agent]) -> None:
    offers = assign(waiting, ready)
    assert len({o.agent.user_id for o in offers}) == len(offers)
    assert len({o.caller.call_sid for o in offers}) == len(offers)
    assert {o.caller for o in offers} <= set(waiting)
    assert {o.agent for o in offers} <= set(ready)


@given(callers, agents)
def test_no_ready_agent_stays_idle_while_a_caller_they_can_serve_waits(
    waiting: list[Caller], ready: list[Agent]
) -> None:
    offers = assign(waiting, ready)
    idle = set(ready) - {o.agent for o in offers}
    still_waiting = set(waiting) - {o.caller for o in offers}
    assert not [(a, c) for a in idle for c in still_waiting if can_serve(a, c)]


@given(callers, agents)
def test_a_caller_with_a_reason_to_come_first_is_never_passed_over_for_one_without(
    waiting: list[Caller], ready: list[Agent]
) -> None:
    offers = assign(waiting, ready)
    served = {o.caller for o in offers}
    passed_over = [c for c in waiting if c.priority and c not in served]
    for offer in offers:
        if not offer.caller.priority:
            assert not [c for c in passed_over if can_serve(offer.agent, c)]


@given(callers, agents)
def test_among_equals_the_longest_waiting_goes_first_to_the_longest_idle(
    waiting: list[Caller], ready: list[Agent]
) -> None:
    offers = assign(waiting, ready)
    served = {o.caller for o in offers}
    for offer in offers:  # nobody who came earlier, as urgent, and whom this agent could serve, was left
        assert not [
            c
            for c in waiting
            if c not in served
            and c.priority == offer.caller.priority
            and c.entered_at < offer.caller.entered_at
            and can_serve(offer.agent, c)
        ]
        # and no agent idle for longer who could serve this caller was left without a caller
        idle = set(ready) - {o.agent for o in offers}
        assert not [a for a in idle if a.idle_since < offer.agent.idle_since and can_serve(a, offer.caller)]


def test_a_hindi_caller_waits_for_a_hindi_speaker_while_english_callers_go_to_the_english_agent() -> None:
    hindi, english = Caller("hi1", "hi", entered_at=1), Caller("en1", "en", entered_at=2)
    only_english = Agent(1, frozenset({"en"}), idle_since=0)
    [offer] = assign([hindi, english], [only_english])
    assert (offer.caller, offer.agent) == (english, only_english)


def test_a_callback_due_goes_before_a_longer_wait() -> None:
    long_wait, due = Caller("a", "hi", entered_at=1), Caller("b", "hi", priority=True, entered_at=50)
    assert first_served([long_wait, due]) == [due, long_wait]
    assert next_for(Agent(1, frozenset({"hi"})), [long_wait, due]) == due


def test_an_agent_with_services_takes_callers_who_named_none() -> None:
    plumber_only = Agent(1, frozenset({"hi"}), frozenset({"plumber"}))
    assert can_serve(plumber_only, Caller("a", "hi", ""))
    assert can_serve(plumber_only, Caller("b", "hi", "plumber"))
    assert not can_serve(plumber_only, Caller("c", "hi", "electrician"))
