"""The live queue: callers waiting for an agent, callbacks due, requests that need a person, and
offers about to run out; an agent takes the next caller from here."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import redis
import sqlalchemy as sa
from flask import Blueprint, g, render_template
from flask.typing import ResponseReturnValue
from sqlmodel import Session, SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar

from console import agent
from console.auth import STAFF, requires, runtime
from dispatch import lifecycle
from storage import agents, callqueue
from storage.agents import AgentState
from storage.models import (
    CallbackRequest,
    CallbackStatus,
    Offer,
    OfferStatus,
    RequestStatus,
    ServiceRequest,
    Worker,
)

log = logging.getLogger(__name__)
bp = Blueprint("queue", __name__, url_prefix="/queue")
SHOWN = 25  # rows of each list: a live page must stay small
EXPIRING = timedelta(minutes=2)  # an offer with less than this left is about to expire


@bp.get("")
@requires(*STAFF)
def live() -> ResponseReturnValue:
    return render_template("console/queue.html", **_board())


@bp.get("/board")
@requires(*STAFF)
def board() -> ResponseReturnValue:
    """The page's live part, fetched again every few seconds."""
    return render_template("console/queue_board.html", **_board())


def _board() -> dict[str, object]:
    """Each list's first SHOWN rows, and how many there are in all (the card's count, and its "see all")."""
    now = runtime().clock.now()
    waiting, on_the_line, redis_ok, ringing = _waiting()
    pending_callback = CallbackRequest.status == CallbackStatus.PENDING
    escalated = col(ServiceRequest.status) == RequestStatus.ESCALATED
    dispatching = col(ServiceRequest.status).in_((RequestStatus.NEW, RequestStatus.OFFERED))
    expiring = sa.and_(col(Offer.status) == OfferStatus.PENDING, col(Offer.expires_at) <= now + EXPIRING)
    sla = timedelta(minutes=runtime().settings.console.assignment_sla_minutes)
    past_sla = sa.and_(col(ServiceRequest.status).in_(lifecycle.UNASSIGNED), col(ServiceRequest.created_at) < now - sla)
    with Session(runtime().engine) as db:
        lists = {
            "callbacks": db.exec(
                select(CallbackRequest)
                .where(pending_callback)
                .order_by(col(CallbackRequest.due_at).asc().nulls_first(), col(CallbackRequest.created_at))
                .limit(SHOWN)
            ).all(),
            "escalated": db.exec(_longest_overdue_first(escalated)).all(),
            "past_sla": db.exec(_longest_overdue_first(past_sla)).all(),
            "dispatching": db.exec(
                select(ServiceRequest).where(dispatching).order_by(col(ServiceRequest.created_at).desc()).limit(SHOWN)
            ).all(),
            "expiring": db.exec(
                select(Offer, ServiceRequest, Worker)
                .join(ServiceRequest, col(ServiceRequest.id) == Offer.request_id)
                .join(Worker, col(Worker.id) == Offer.worker_id)
                .where(expiring)
                .order_by(col(Offer.expires_at))
                .limit(SHOWN)
            ).all(),
        }
        counts = {
            "callbacks": _count(db, CallbackRequest, pending_callback),
            "escalated": _count(db, ServiceRequest, escalated),
            "past_sla": _count(db, ServiceRequest, past_sla),
            "new": _count(db, ServiceRequest, ServiceRequest.status == RequestStatus.NEW),
            "offered": _count(db, ServiceRequest, ServiceRequest.status == RequestStatus.OFFERED),
            "expiring": _count(db, Offer, expiring),
        }
    return {
        **lists,
        "counts": counts,
        "shown": SHOWN,
        "waiting": waiting,
        "ringing": ringing,
        "on_the_line": on_the_line,
        "redis_ok": redis_ok,
        "now": now,
        "clock": runtime().clock.now().timestamp(),
    }


def _count(db: Session, table: type[SQLModel], where: sa.ColumnElement[bool] | bool) -> int:
    """How many rows of `table` a list holds in all, however many it shows."""
    return int(db.exec(select(sa.func.count()).select_from(table).where(where)).one())


def _longest_overdue_first(wanted: sa.ColumnElement[bool]) -> SelectOfScalar[ServiceRequest]:
    return (
        select(ServiceRequest)
        .where(wanted)
        .order_by(col(ServiceRequest.created_at), col(ServiceRequest.id))
        .limit(SHOWN)
    )


@dataclass(frozen=True)
class OnTheLine:
    """The caller this agent holds (talking) or is wrapping up: the board links to their screen."""

    call_sid: str
    talking: bool


def _waiting() -> tuple[list[callqueue.Waiting], OnTheLine | None, bool, set[str]]:
    """Who waits, the caller this agent is with (on a call or in its wrap-up), whether Redis
    answered, and who rings on an agent's console."""
    try:
        connection = runtime().redis
        everyone = agents.statuses(connection)
        mine = agents.status(connection, g.user.id)
        last = callqueue.on_the_line(connection, g.user.id)
        with_them = bool(last) and mine.call_sid == last and mine.state in (AgentState.ON_CALL, AgentState.WRAP_UP)
        on_the_line = OnTheLine(mine.call_sid, mine.holds_a_caller()) if with_them else None
        return (
            callqueue.waiting(connection, runtime().clock.now().timestamp()),
            on_the_line,
            True,
            {agent.offer for agent in everyone if agent.offer},
        )
    except redis.RedisError:
        log.warning("Redis unreachable: the live queue cannot show who is waiting")
        return [], None, False, set()


@bp.post("/take")
@requires(*STAFF)
def take_next() -> ResponseReturnValue:
    """Ring the agent's desk phone for the next caller they can serve (the one offered to them, if
    any) and open that caller's screen; only a ready agent holding no caller may (console.agent)."""
    return agent.take(None)
