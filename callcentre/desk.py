"""An agent's desk: ready, paused with a reason, offered the next caller, on a call, in wrap-up.

Every change happens under the queue's claim lock (`storage.agents.locked`), so an agent holds at
most one caller whatever races (seven clicks, two tabs, the offer and "Take next caller" at once),
and is audited (`AuditAction.AGENT_STATE_CHANGED`, `AGENT_OFFERED`) after the lock is let go.
`route` offers waiting callers to ready agents (`callcentre.routing`) and ends what has run out:
an offer not accepted within `agents.offer_ring_seconds` pauses its agent ("missed") and frees the
caller for the next agent; a wrap-up past `agents.wrap_up_seconds` makes its agent ready again.
It runs whenever an agent's console asks for its state bar and whenever a caller's hold round
comes round: a few Redis reads, no database unless something changed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

import redis
import sqlalchemy as sa
from sqlmodel import Session, select

from callcentre import routing, wrapup
from core.settings import MISSED, SIGNED_OUT, Agents
from storage import agents, callqueue, monitoring
from storage.agents import AgentState, AgentStatus
from storage.audit import AuditAction, record
from storage.db import session_scope
from storage.models import AgentCall

log = logging.getLogger(__name__)
SEEN_WITHIN_S = 15  # a console that has not asked for its state bar this long is closed: no offers ring there
SYSTEM = "system"


class Cannot(StrEnum):
    """Why an agent cannot take a caller now: the console says so beside its disabled buttons."""

    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"
    NOBODY = "nobody"  # nobody waits whom they can serve


@dataclass(frozen=True)
class Change:
    """One audited change of an agent's desk."""

    before: AgentStatus
    after: AgentStatus
    actor: str
    offered: bool = False  # a caller rang on their console (the state stays ready)


def why_not_take(agent: AgentStatus) -> Cannot | None:
    return {
        AgentState.ON_CALL: Cannot.ON_CALL,
        AgentState.WRAP_UP: Cannot.WRAP_UP,
        AgentState.PAUSED: Cannot.PAUSED,
    }.get(agent.state)


def ready(
    connection: redis.Redis,
    engine: sa.Engine,
    user_id: int,
    skills: tuple[tuple[str, ...], tuple[str, ...]],
    now: datetime,
) -> bool:
    """The agent is ready for the next caller, in their languages and services (`skills`);
    refused while they hold a caller."""
    at = now.timestamp()
    with agents.locked(connection):
        before = agents.status(connection, user_id)
        if before.holds_a_caller():
            return False
        languages, services = skills
        after = AgentStatus(user_id, AgentState.READY, at, languages=languages, services=services, seen_at=at)
        if before.state is AgentState.READY:  # already: only their skills may have changed
            after = replace(before, languages=languages, services=services, seen_at=at)
        agents.save(connection, after)
    _audit(engine, [Change(before, after, f"user:{user_id}")])
    return True


def pause(connection: redis.Redis, engine: sa.Engine, user_id: int, reason: str, now: datetime) -> bool:
    """The agent pauses for `reason` (a code of `agents.pause_reasons`); refused while they hold a
    caller. A caller ringing on their console goes to the next agent."""
    at = now.timestamp()
    with agents.locked(connection):
        before = agents.status(connection, user_id)
        if before.holds_a_caller():
            return False
        after = _paused(before, reason, at)
        agents.save(connection, after)
    _audit(engine, [Change(before, after, f"user:{user_id}")])
    return True


def signed_out(connection: redis.Redis, engine: sa.Engine, user_id: int, now: datetime) -> None:
    """An agent who signs out is paused ("signed_out"), so no caller rings on a closed console and
    the counts of ready agents stay true; on a call, they stay on it until the desk phone hangs up."""
    at = now.timestamp()
    with agents.locked(connection):
        before = agents.status(connection, user_id)
        if before.since == 0.0 or before.holds_a_caller() or before.state is AgentState.PAUSED:
            return  # never ready (no agent yet), busy, or paused already
        after = _paused(before, SIGNED_OUT, at)
        agents.save(connection, after)
    _audit(engine, [Change(before, after, f"user:{user_id}")])
    if before.state is AgentState.WRAP_UP:  # signed out in wrap-up, no code given
        wrapup.none_given(engine, user_id, before.call_sid, now)


def end_wrap_up(connection: redis.Redis, engine: sa.Engine, user_id: int, now: datetime) -> bool:
    """Wrap-up ended early by the agent: ready for the next caller."""
    at = now.timestamp()
    with agents.locked(connection):
        before = agents.status(connection, user_id)
        if before.state is not AgentState.WRAP_UP:
            return False
        after = _ready_again(before, at)
        agents.save(connection, after)
    _audit(engine, [Change(before, after, f"user:{user_id}")])
    return True


def take(
    connection: redis.Redis,
    engine: sa.Engine,
    user_id: int,
    call_sid: str | None,
    now: datetime,
) -> tuple[callqueue.Waiting | None, Cannot | None]:
    """The agent takes a caller: `call_sid`, the one offered to them (Accept), or None, the next
    one they can serve ("Take next caller"; the one offered to them, if any). Only a ready agent
    holding no caller may; the caller is claimed for them and they are on a call until its end."""
    at = now.timestamp()
    with agents.locked(connection):
        before = agents.status(connection, user_id)
        cannot = why_not_take(before)
        if cannot is not None:
            return None, cannot
        if call_sid is not None and before.offer != call_sid:
            return None, Cannot.NOBODY  # the offer ran out, or went to another agent meanwhile
        entry = _next_for(connection, before, call_sid or before.offer or None, at)
        if entry is None:
            if before.offer:
                agents.save(connection, replace(before, offer="", offer_at=0.0))
            return None, Cannot.NOBODY
        callqueue.claim(connection, user_id, entry, at)
        monitoring.note_entered(connection, entry.call_sid, entry.entered_at)  # the wall shows their wait
        after = replace(before, state=AgentState.ON_CALL, since=at, call_sid=entry.call_sid, offer="", offer_at=0.0)
        agents.save(connection, after)
    _audit(engine, [Change(before, after, f"user:{user_id}")])
    return entry, None


def let_pass(connection: redis.Redis, engine: sa.Engine, user_id: int, call_sid: str, now: datetime) -> bool:
    """The agent lets the offered caller pass: paused ("missed"), the caller goes to the next agent."""
    at = now.timestamp()
    with agents.locked(connection):
        before = agents.status(connection, user_id)
        if before.state is not AgentState.READY or before.offer != call_sid:
            return False
        after = _paused(before, MISSED, at)
        agents.save(connection, after)
    _audit(engine, [Change(before, after, f"user:{user_id}")])
    return True


def bridged(
    connection: redis.Redis, engine: sa.Engine, user_id: int, call_sid: str, language: str, now: datetime
) -> None:
    """The platform put this caller through to the agent (perhaps another than the one claimed,
    when two desk phones answer out of turn): on a call with them, an `AgentCall` from now."""
    at = now.timestamp()
    with agents.locked(connection):
        before = agents.status(connection, user_id)
        since = before.since if before.holds_a_caller() else at
        after = replace(before, state=AgentState.ON_CALL, since=since, call_sid=call_sid, bridged=True, offer="")
        agents.save(connection, after)
        monitoring.note_answered(connection, call_sid, at)  # the wall shows how long they have talked
    _audit(engine, [Change(before, after, SYSTEM)])
    _call_answered(engine, user_id, call_sid, language, now)


def leg_ended(connection: redis.Redis, engine: sa.Engine, user_id: int, settings: Agents, now: datetime) -> None:
    """The agent's desk phone hung up: after a call, wrap-up (ready at once with no wrap-up time);
    rung for nothing (not answered, busy, or no key pressed), paused "missed" and the caller free."""
    at = now.timestamp()
    with agents.locked(connection):
        before = agents.status(connection, user_id)
        if not before.holds_a_caller():
            return
        if before.bridged:
            after = _wrapping_up(before, settings, at)
        else:
            callqueue.unclaim(connection, before.call_sid)
            after = _paused(before, MISSED, at)
        agents.save(connection, after)
    _audit(engine, [Change(before, after, SYSTEM)])
    if before.bridged:
        _call_ended(engine, user_id, before.call_sid, now)
        if after.state is not AgentState.WRAP_UP:  # no wrap-up time: no moment to give a code
            wrapup.none_given(engine, user_id, before.call_sid, now)


def route(connection: redis.Redis, engine: sa.Engine, settings: Agents, now: datetime) -> list[routing.Offer]:
    """Offers run out, wrap-ups end, and waiting callers ring on ready agents' consoles."""
    at = now.timestamp()
    changes: list[Change] = []
    with agents.locked(connection):
        everyone = agents.statuses(connection)
        waiting = callqueue.waiting(connection, at)
        still_waiting = {w.call_sid for w in waiting}
        for before in everyone:
            after = _ran_out(before, settings, still_waiting, at)
            if after != before:
                if before.holds_a_caller() and not after.holds_a_caller():
                    callqueue.unclaim(connection, before.call_sid)  # free for the next agent
                agents.save(connection, after)
                changes.append(Change(before, after, SYSTEM))
        by_id = {a.user_id: a for a in everyone} | {c.after.user_id: c.after for c in changes}
        current = list(by_id.values())
        callers, free = _free_callers(waiting, current), _free_agents(current, at)
        offers = _sent_first(callers, free, callqueue.sent(connection))
        offered = {o.caller.call_sid for o in offers} | {o.agent.user_id for o in offers}
        rest = [c for c in callers if c.call_sid not in offered], [a for a in free if a.user_id not in offered]
        offers += routing.assign(*rest)
        for offer in offers:
            before = by_id[offer.agent.user_id]
            after = replace(before, offer=offer.caller.call_sid, offer_at=at)
            agents.save(connection, after)
            changes.append(Change(before, after, SYSTEM, offered=True))
    _audit(engine, changes)
    for change in changes:
        if change.before.state is AgentState.WRAP_UP and change.after.state is not AgentState.WRAP_UP:
            wrapup.none_given(engine, change.before.user_id, change.before.call_sid, now)  # ran out, no code
    return offers


def _ran_out(agent: AgentStatus, settings: Agents, waiting: set[str], at: float) -> AgentStatus:
    if agent.holds_a_caller() and not agent.bridged and at - agent.since >= callqueue.CLAIM_TTL_S:
        # The claim ran out and the caller is free for another agent: this one was never put through (the
        # desk phone's end never reported, or the browser closed before its leg reached the platform).
        return _paused(agent, MISSED, at)
    if agent.state is AgentState.WRAP_UP and at >= agent.wrap_until:
        return _ready_again(agent, agent.wrap_until)
    if agent.state is AgentState.READY and agent.offer:
        if agent.offer not in waiting:  # the caller hung up, or another agent's desk took them: no one's fault
            return replace(agent, offer="", offer_at=0.0)
        if at - agent.offer_at >= settings.offer_ring_seconds:
            return _paused(agent, MISSED, at)
    return agent


def _sent_first(
    callers: list[routing.Caller], free: list[routing.Agent], sent: dict[str, callqueue.Sent]
) -> list[routing.Offer]:
    """A transferred caller goes first to the longest-idle free agent of those they were sent to
    (whoever sent them chose them: their languages are not asked); none free, routing as anyone."""
    offers: list[routing.Offer] = []
    for caller in routing.first_served(c for c in callers if c.call_sid in sent):
        targets = sorted((a for a in free if a.user_id in sent[caller.call_sid].agents), key=lambda a: a.idle_since)
        if targets:
            free = [a for a in free if a is not targets[0]]
            offers.append(routing.Offer(caller, targets[0]))
    return offers


def _free_callers(waiting: list[callqueue.Waiting], current: list[AgentStatus]) -> list[routing.Caller]:
    taken = {a.offer for a in current if a.offer} | {a.call_sid for a in current if a.holds_a_caller()}
    return [_caller(w) for w in waiting if w.claimed_by is None and w.call_sid not in taken]


def _free_agents(current: list[AgentStatus], at: float) -> list[routing.Agent]:
    return [
        _agent(a) for a in current if a.state is AgentState.READY and not a.offer and at - a.seen_at <= SEEN_WITHIN_S
    ]


def _next_for(connection: redis.Redis, agent: AgentStatus, call_sid: str | None, at: float) -> callqueue.Waiting | None:
    """The waiting, unclaimed caller `call_sid`, or the next one this agent can serve."""
    everyone = agents.statuses(connection)
    waiting = [w for w in callqueue.waiting(connection, at) if w.claimed_by is None]
    if call_sid is not None:
        return next((w for w in waiting if w.call_sid == call_sid), None)
    others = [a for a in everyone if a.user_id != agent.user_id]
    free = {c.call_sid for c in _free_callers(waiting, others)}
    chosen = routing.next_for(_agent(agent), [_caller(w) for w in waiting if w.call_sid in free])
    return next((w for w in waiting if chosen and w.call_sid == chosen.call_sid), None)


def _caller(entry: callqueue.Waiting) -> routing.Caller:
    call = entry.call
    return routing.Caller(call.call_sid, call.language, call.service, bool(call.priority), entry.entered_at)


def _agent(agent: AgentStatus) -> routing.Agent:
    return routing.Agent(agent.user_id, frozenset(agent.languages), frozenset(agent.services), agent.since)


def _paused(agent: AgentStatus, reason: str, at: float) -> AgentStatus:
    same = agent.state is AgentState.PAUSED and agent.reason == reason
    return replace(
        agent,
        state=AgentState.PAUSED,
        since=agent.since if same else at,
        reason=reason,
        call_sid="",
        bridged=False,
        offer="",
        offer_at=0.0,
        wrap_until=0.0,
    )


def _ready_again(agent: AgentStatus, at: float) -> AgentStatus:
    return replace(
        agent, state=AgentState.READY, since=at, reason="", bridged=False, offer="", offer_at=0.0, wrap_until=0.0
    )


def _wrapping_up(agent: AgentStatus, settings: Agents, at: float) -> AgentStatus:
    if settings.wrap_up_seconds == 0:
        return _ready_again(agent, at)
    return replace(agent, state=AgentState.WRAP_UP, since=at, bridged=False, wrap_until=at + settings.wrap_up_seconds)


def _audit(engine: sa.Engine, changes: list[Change]) -> None:
    """Each change on the audit trail (the state's time counted from it); a database away costs the
    trail these events, never the agent their state (logged)."""
    kept = [c for c in changes if c.offered or (c.before.state, c.before.reason) != (c.after.state, c.after.reason)]
    if not kept:
        return
    try:
        with session_scope(engine) as db:
            for change in kept:
                _record(db, change)
    except sa.exc.SQLAlchemyError:
        log.exception("could not audit %d change(s) of agents' states", len(kept))


def _record(db: Session, change: Change) -> None:
    before, after = change.before, change.after
    detail = {"call_sid": after.offer if change.offered else after.call_sid or before.call_sid, "at": after.since}
    record(
        db,
        AuditAction.AGENT_OFFERED if change.offered else AuditAction.AGENT_STATE_CHANGED,
        actor=change.actor,
        entity="console_user",
        entity_id=after.user_id,
        from_status=before.state.value,
        to_status=after.state.value,
        reason=after.reason or None,
        detail={**detail, "at": after.offer_at} if change.offered else detail,
    )


def _call_answered(engine: sa.Engine, user_id: int, call_sid: str, language: str, now: datetime) -> None:
    """The agent's call on record from its bridge; a platform's retry of the bridge finds it there.
    A database away costs the reports this call, never the agent their state (logged)."""
    try:
        with session_scope(engine) as db:
            found = db.exec(
                select(AgentCall).where(AgentCall.call_sid == call_sid, AgentCall.agent_id == user_id)
            ).first()
            if found is None:
                db.add(AgentCall(call_sid=call_sid, agent_id=user_id, language=language[:5], answered_at=now))
    except sa.exc.IntegrityError:
        pass  # the same bridge, reported twice at once: the first one wrote it
    except sa.exc.SQLAlchemyError:
        log.exception("could not keep the call of agent %s with %s", user_id, call_sid)


def _call_ended(engine: sa.Engine, user_id: int, call_sid: str, now: datetime) -> None:
    try:
        with session_scope(engine) as db:
            db.execute(
                sa.update(AgentCall)
                .where(
                    sa.and_(
                        AgentCall.call_sid == call_sid,  # type: ignore[arg-type]
                        AgentCall.agent_id == user_id,  # type: ignore[arg-type]
                        AgentCall.ended_at.is_(None),  # type: ignore[union-attr]
                    )
                )
                .values(ended_at=now)
            )
    except sa.exc.SQLAlchemyError:
        log.exception("could not end the call of agent %s with %s", user_id, call_sid)
