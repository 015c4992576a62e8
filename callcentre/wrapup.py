"""An agent call's wrap-up code (its disposition): given by its agent in the wrap-up after the call,
corrected by them until that wrap-up ends, then by a supervisor only. Ending wrap-up early needs a
code; a wrap-up that runs out without one is kept as "none given" (`NONE_GIVEN`), and counted so.
Every code given, corrected or run out is on the audit trail (`AuditAction.AGENT_CALL_DISPOSED`)."""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.settings import NONE_GIVEN
from storage.agents import AgentState, AgentStatus
from storage.audit import AuditAction, record
from storage.db import session_scope
from storage.models import AgentCall

log = logging.getLogger(__name__)
NOTE_MAX = 500  # AgentCall.disposition_note's width


class Refused(StrEnum):
    """Why a wrap-up code was not kept."""

    UNKNOWN_CODE = "unknown_code"
    NOTE_TOO_LONG = "note_too_long"
    NOT_YOURS = "not_yours"  # another agent's call
    WRAP_UP_OVER = "wrap_up_over"  # the agent's wrap-up of this call has ended: a supervisor corrects it now


def refusal(
    call: AgentCall, agent: AgentStatus, code: str, note: str, codes: frozenset[str], *, supervisor: bool
) -> Refused | None:
    """Whether `agent` (or a supervisor) may give `call` the code `code` with `note` now; None: yes."""
    if call.agent_id != agent.user_id and not supervisor:
        return Refused.NOT_YOURS
    if code not in codes:
        return Refused.UNKNOWN_CODE
    if len(note) > NOTE_MAX:
        return Refused.NOTE_TOO_LONG
    if supervisor:
        return None
    return None if in_wrap_up(agent, call) else Refused.WRAP_UP_OVER


def in_wrap_up(agent: AgentStatus, call: AgentCall) -> bool:
    """The agent is in the wrap-up that follows this call of theirs."""
    return agent.user_id == call.agent_id and agent.state is AgentState.WRAP_UP and agent.call_sid == call.call_sid


def give(db: Session, call: AgentCall, code: str, note: str, actor: str, now: datetime) -> None:
    """The call's code (and note, blank for none) kept, and audited with the code it replaced."""
    before = call.disposition
    call.disposition, call.disposition_note, call.disposed_at = code, note or None, now
    db.add(call)
    record(
        db,
        AuditAction.AGENT_CALL_DISPOSED,
        actor=actor,
        entity="agent_call",
        entity_id=call.id,
        from_status=before,
        to_status=code,
        detail={"call_sid": call.call_sid, "agent_id": call.agent_id, "noted": bool(note)},
    )


def wrapping_up(db: Session, agent: AgentStatus) -> AgentCall | None:
    """The call this agent is in wrap-up after, if it is on record."""
    if agent.state is not AgentState.WRAP_UP or not agent.call_sid:
        return None
    query = select(AgentCall).where(AgentCall.call_sid == agent.call_sid, AgentCall.agent_id == agent.user_id)
    return db.exec(query).first()


def may_end(db: Session, agent: AgentStatus) -> bool:
    """Wrap-up ends early only once its call has a code (a call the database lost has none to give)."""
    call = wrapping_up(db, agent)
    return call is None or call.disposition is not None


def none_given(engine: sa.Engine, user_id: int, call_sid: str, now: datetime) -> None:
    """The agent's wrap-up of this call ran out without a code: "none given", audited. A database
    away costs the report this code, never the agent their state (logged)."""
    try:
        with session_scope(engine) as db:
            call = db.exec(
                select(AgentCall).where(
                    AgentCall.call_sid == call_sid, AgentCall.agent_id == user_id, col(AgentCall.disposition).is_(None)
                )
            ).first()
            if call is not None:
                give(db, call, NONE_GIVEN, "", "system", now)
    except sa.exc.SQLAlchemyError:
        log.exception("could not keep 'none given' for the call of agent %s with %s", user_id, call_sid)
