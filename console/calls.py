"""Agents' calls (`AgentCall`): the list (an agent's own, or every agent's for supervisors), a call's
page with its facts, wrap-up code and recordings, a supervisor's correction of its code and quality
review against `quality.scorecard` (one a call, edited by its author only), and the reports: wrap-up
codes by code, agent and day, and each agent's quality (each on screen and CSV). The rules are
callcentre.wrapup's and callcentre.scorecard's; the sums are here, over plain rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select

from callcentre import scorecard, wrapup
from console import auth, metrics, present, recordings, reports, spreadsheet
from console.auth import MANAGERS, STAFF, requires, runtime
from console.forms import parse_id, plain
from console.labels import N_, translate
from core.settings import NONE_GIVEN
from storage import agents
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import AgentCall, AuditEvent, CallReview, Recording, RecordingKind, ServiceRequest, User

bp = Blueprint("calls", __name__, url_prefix="/calls")
NO_CODE_YET = "pending"  # a call whose wrap-up has not ended yet (or whose end was lost)
LIST_LIMIT = 500
BOOKED_WITHIN = timedelta(hours=1)  # after the call's end (its wrap-up, a slow form): a request filed from its screen
CODE_SAVED = N_("Wrap-up code saved.")
REVIEW_SAVED = N_("Review saved.")
REVIEW_INVALID = N_("Score every item within its points; comments at most 500 characters.")
NO_CODE_YET_NAME = N_("No code yet")
NONE_GIVEN_NAME = N_("None given")
NOT_YOUR_REVIEW = N_("Another supervisor reviewed this call: only they can change the review.")


def _agent_call(db: Session, call_id: int) -> AgentCall:
    """The call, if this user may see it: a supervisor any, an agent their own (else 403, audited)."""
    call = db.get(AgentCall, call_id)
    if call is None:
        abort(404)
    if g.user.role not in MANAGERS and call.agent_id != g.user.id:
        auth.audit_refusal(AuditAction.ACCESS_REFUSED)
        abort(403)
    return call


def _names(db: Session, ids: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    found = db.exec(select(User.id, User.full_name, User.username).where(col(User.id).in_(wanted))).all()
    return {int(user_id or 0): full or username for user_id, full, username in found}


def _agents(db: Session) -> list[tuple[int, str]]:
    query = select(User.id, User.full_name, User.username).where(col(User.role).in_(STAFF)).order_by(col(User.username))
    return [(int(user_id or 0), full or username) for user_id, full, username in db.exec(query).all()]


# -- the list and a call's page ----------------------------------------------------------------------


@bp.get("")
@requires(*STAFF)
def index() -> ResponseReturnValue:
    """Agent calls answered in the span, newest first: an agent's own; a supervisor's choice of agent."""
    span = reports.chosen_span(request.args)
    agent_id = g.user.id if g.user.role not in MANAGERS else parse_id(request.args.get("agent"))
    answered = col(AgentCall.answered_at)
    query = select(AgentCall).where(answered >= span.start, answered < span.end)
    if agent_id:
        query = query.where(AgentCall.agent_id == agent_id)
    with Session(runtime().engine) as db:
        calls = db.exec(query.order_by(answered.desc()).limit(LIST_LIMIT)).all()
        ids = [c.id for c in calls if c.id is not None]
        found = db.exec(select(CallReview).where(col(CallReview.agent_call_id).in_(ids))).all() if ids else []
        reviews = {r.agent_call_id: r for r in found}
        names = _names(db, (c.agent_id for c in calls))
        choices = _agents(db) if g.user.role in MANAGERS else []
    return render_template(
        "console/calls/index.html",
        span=span,
        calls=calls,
        reviews=reviews,
        names=names,
        agent_id=agent_id,
        choices=choices,
        talk_s=talk_s,
        code_name=code_name,
    )


@bp.get("/<id:call_id>")
@requires(*STAFF)
def show(call_id: int) -> ResponseReturnValue:
    with Session(runtime().engine) as db:
        call = _agent_call(db, call_id)
        review = db.exec(select(CallReview).where(CallReview.agent_call_id == call_id)).first()
        ids = [call.agent_id] + ([review.reviewer_id] if review else [])
        return render_template(
            "console/calls/show.html",
            call=call,
            review=review,
            names=_names(db, ids),
            booked=booked_by(db, call),
            recorded=_recordings(db, call),
            talk_s=talk_s,
            code_name=code_name,
            dispositions=runtime().settings.agents.dispositions,
            quality=runtime().settings.quality,
            may_review=g.user.role in MANAGERS and (review is None or review.reviewer_id == g.user.id),
            errors={},
            form={},
        )


def booked_by(db: Session, call: AgentCall) -> ServiceRequest | None:
    """The request the agent filed from this call's screen (`request.created` naming its call id)."""
    events = db.exec(
        select(AuditEvent).where(
            AuditEvent.action == AuditAction.REQUEST_CREATED.value,
            AuditEvent.actor == f"user:{call.agent_id}",
            col(AuditEvent.at) >= call.answered_at,
            col(AuditEvent.at) < (call.ended_at or call.answered_at) + BOOKED_WITHIN,
        )
    ).all()
    filed = next((e.entity_id for e in events if (e.detail or {}).get("call_sid") == call.call_sid), None)
    return db.get(ServiceRequest, filed) if filed else None


def _recordings(db: Session, call: AgentCall) -> list[Recording]:
    """The call's recordings still kept: this agent's with this caller (`agent_id` and the caller's
    `call_sid`; a caller put through to a second agent has their own), each part of a call paused and
    resumed on Plivo one of them (none: nothing is shown)."""
    query = select(Recording).where(
        Recording.call_sid == call.call_sid,
        Recording.agent_id == call.agent_id,
        Recording.kind == RecordingKind.AGENT_CALL,
        col(Recording.erased_at).is_(None),
        Recording.url != "",
    )
    return list(db.exec(query.order_by(col(Recording.created_at), col(Recording.id))).all())


@bp.get("/<id:call_id>/recordings/<id:recording_id>.mp3")
@requires(*STAFF)
def recording(call_id: int, recording_id: int) -> Response:
    """A recording of the call, played through the helpline (audited), to those who may see the call."""
    with Session(runtime().engine) as db:
        call = _agent_call(db, call_id)
        found = next((r for r in _recordings(db, call) if r.id == recording_id), None)
    if found is None:
        abort(404)
    return recordings.played(found)


@bp.post("/<id:call_id>/disposition")
@requires(*MANAGERS)
def correct(call_id: int) -> ResponseReturnValue:
    """A supervisor corrects a call's wrap-up code (audited, with the code it replaced)."""
    code = request.form.get("code", "")
    note = plain(request.form.get("note", ""), wrapup.NOTE_MAX + 1)
    codes = frozenset(d.code for d in runtime().settings.agents.dispositions)
    with session_scope(runtime().engine) as db:
        call = _agent_call(db, call_id)
        refused = wrapup.refusal(call, agents.AgentStatus(g.user.id), code, note, codes, supervisor=True)
        if refused is not None:
            flash(N_("Choose a wrap-up code from the list.") if refused is wrapup.Refused.UNKNOWN_CODE else TOO_LONG)
            return redirect(url_for(".show", call_id=call_id)), 303
        wrapup.give(db, call, code, note, auth.actor(), runtime().clock.now())
    flash(CODE_SAVED)
    return redirect(url_for(".show", call_id=call_id))


TOO_LONG = N_("The note is too long: at most 500 characters.")


@bp.post("/<id:call_id>/review")
@requires(*MANAGERS)
def review(call_id: int) -> ResponseReturnValue:
    """A supervisor scores the call; the review's author alone may change it afterwards."""
    quality = runtime().settings.quality
    scored = scorecard.read(quality, request.form)
    now = runtime().clock.now()
    with session_scope(runtime().engine) as db:
        call = _agent_call(db, call_id)
        found = db.exec(select(CallReview).where(CallReview.agent_call_id == call_id)).first()
        if found is not None and found.reviewer_id != g.user.id:
            auth.audit_refusal(AuditAction.ACCESS_REFUSED)
            abort(403, NOT_YOUR_REVIEW)
        if scored.errors:
            flash(REVIEW_INVALID)
            return _review_again(db, call, found, scored)
        kept = found or CallReview(agent_call_id=call_id, reviewer_id=g.user.id, created_at=now)
        kept.scores, kept.points, kept.max_points, kept.passed = (
            scored.scores,
            scored.points,
            scored.max_points,
            scored.passed,
        )
        kept.updated_at = now
        db.add(kept)
        db.flush()
        auth.audit(
            db,
            AuditAction.AGENT_CALL_REVIEWED,
            "agent_call",
            call.id,
            to_status="passed" if scored.passed else "failed",
            review_id=kept.id,
            points=scored.points,
            max_points=scored.max_points,
            edited=found is not None,
        )
    flash(REVIEW_SAVED)
    return redirect(url_for(".show", call_id=call_id))


def _review_again(
    db: Session, call: AgentCall, found: CallReview | None, scored: scorecard.Scored
) -> ResponseReturnValue:
    page = render_template(
        "console/calls/show.html",
        call=call,
        review=found,
        names=_names(db, [call.agent_id]),
        booked=booked_by(db, call),
        recorded=_recordings(db, call),
        talk_s=talk_s,
        code_name=code_name,
        dispositions=runtime().settings.agents.dispositions,
        quality=runtime().settings.quality,
        may_review=True,
        errors=scored.errors,
        form=request.form,
    )
    return page, 400


def talk_s(call: AgentCall) -> int | None:
    return int((call.ended_at - call.answered_at).total_seconds()) if call.ended_at else None


def code_name(code: str | None) -> str:
    """A wrap-up code in the console's words: "No code yet" (in wrap-up still), "None given" (ran out)."""
    if code is None or code == NO_CODE_YET:
        return translate(NO_CODE_YET_NAME)
    if code == NONE_GIVEN:
        return translate(NONE_GIVEN_NAME)
    return runtime().settings.agents.disposition_name(code, g.get("language", "en"))


# -- the wrap-up codes report --------------------------------------------------------------------------


@dataclass(frozen=True)
class Talk:
    """One agent call as the report counts it."""

    agent_id: int
    day: date
    code: str
    talk_s: int | None


@dataclass(frozen=True)
class CodeLine:
    group: str  # a code, an agent's id, or a day (ISO), by the table
    code: str
    calls: int
    share: float | None  # of the group's calls
    average_talk_s: float | None


def code_lines(talks: list[Talk], key: str) -> list[CodeLine]:
    """Counts, share of the group and average talk time of each code, grouped by `key` ("code",
    "agent" or "day"); the code table's share is of all calls."""
    group_of = {"code": lambda t: "", "agent": lambda t: str(t.agent_id), "day": lambda t: t.day.isoformat()}[key]
    totals = Counter(group_of(t) for t in talks)
    cells: dict[tuple[str, str], list[Talk]] = {}
    for talk in talks:
        cells.setdefault((group_of(talk), talk.code), []).append(talk)
    lines = []
    for (group, code), found in cells.items():
        timed = [t.talk_s for t in found if t.talk_s is not None]
        average = sum(timed) / len(timed) if timed else None
        lines.append(CodeLine(group, code, len(found), metrics.rate(len(found), totals[group]), average))
    return sorted(lines, key=lambda line: (line.group, -line.calls, line.code))


def talks(db: Session, span: reports.Span, zone: str) -> list[Talk]:
    answered = col(AgentCall.answered_at)
    query = select(AgentCall.agent_id, answered, AgentCall.ended_at, AgentCall.disposition).where(
        answered >= span.start, answered < span.end
    )
    return [
        Talk(
            agent_id,
            metrics.local_day(at, zone),
            code or NO_CODE_YET,
            int((ended - at).total_seconds()) if ended else None,
        )
        for agent_id, at, ended, code in db.exec(query).all()
    ]


@bp.get("/codes")
@requires(*MANAGERS)
def codes() -> ResponseReturnValue:
    span = reports.chosen_span(request.args)
    with Session(runtime().engine) as db:
        found = talks(db, span, runtime().settings.call_centre.timezone)
        names = _names(db, (t.agent_id for t in found))
    return render_template(
        "console/calls/codes.html",
        span=span,
        total=len(found),
        tables={key: code_lines(found, key) for key in ("code", "agent", "day")},
        names=names,
        code_name=code_name,
        metrics=metrics,
        csv_url=url_for(".codes_csv", **span.args()),
    )


SHEET_NAMES = {NONE_GIVEN: "None given", NO_CODE_YET: "No code yet"}  # the CSV is in English
CODES_HEADER = ("table", "group", "code", "code_name", "calls", "share_percent", "average_talk_seconds")


@bp.get("/codes.csv")
@requires(*MANAGERS)
def codes_csv() -> ResponseReturnValue:
    span = reports.chosen_span(request.args)
    with Session(runtime().engine) as db:
        found = talks(db, span, runtime().settings.call_centre.timezone)
        names = _names(db, (t.agent_id for t in found))
    rows = [
        [
            key,
            names.get(int(line.group), line.group) if key == "agent" else line.group,
            line.code,
            SHEET_NAMES.get(line.code) or runtime().settings.agents.disposition_name(line.code),
            line.calls,
            metrics.share(line.share),
            "" if line.average_talk_s is None else round(line.average_talk_s),
        ]
        for key in ("code", "agent", "day")
        for line in code_lines(found, key)
    ]
    return spreadsheet.response(f"wrap-up-codes-{span.name()}.csv", CODES_HEADER, rows, present.zone())


def day_codes(db: sa.Connection, start: datetime, end: datetime) -> list[tuple[str, int]]:
    """The dashboard's day: agent calls answered in [start, end) by wrap-up code, most first."""
    answered = col(AgentCall.answered_at)
    code = sa.func.coalesce(col(AgentCall.disposition), NO_CODE_YET)
    query = sa.select(code, sa.func.count()).where(answered >= start, answered < end).group_by(code)
    return sorted(((str(c), int(n)) for c, n in db.execute(query)), key=lambda found: (-found[1], found[0]))


# -- each agent's quality --------------------------------------------------------------------------------


def quality_lines(db: Session, span: reports.Span) -> list[scorecard.AgentQuality]:
    """Per agent, over the reviewed calls answered in the span; an agent's own line only, for an agent."""
    answered = col(AgentCall.answered_at)
    query = (
        sa.select(
            col(AgentCall.agent_id),
            col(CallReview.points),
            col(CallReview.max_points),
            col(CallReview.passed),
            col(CallReview.scores),
        )
        .join(AgentCall, col(AgentCall.id) == col(CallReview.agent_call_id))
        .where(answered >= span.start, answered < span.end)
    )
    if g.user.role not in MANAGERS:
        query = query.where(col(AgentCall.agent_id) == g.user.id)
    found = [scorecard.Review(a, p, m, bool(ok), s or {}) for a, p, m, ok, s in db.execute(query).all()]
    return scorecard.by_agent(found, runtime().settings.quality)


@bp.get("/quality")
@requires(*STAFF)
def quality() -> ResponseReturnValue:
    """Each agent's quality: calls reviewed, average score, pass rate, weakest item; on screen and CSV."""
    span, lines, names, items = _quality_report(g.get("language", "en"))
    return render_template(
        "console/calls/quality.html",
        span=span,
        lines=lines,
        names=names,
        items=items,
        metrics=metrics,
        csv_url=url_for(".quality_csv", **span.args()),
    )


def _quality_report(language: str) -> tuple[reports.Span, list[scorecard.AgentQuality], dict[int, str], dict[str, str]]:
    """The asked span's quality lines, the agents' names and the scorecard items' names in `language`."""
    span = reports.chosen_span(request.args)
    with Session(runtime().engine) as db:
        lines = quality_lines(db, span)
        names = _names(db, (line.agent_id for line in lines))
    items = {item.code: item.name(language) for item in runtime().settings.quality.scorecard}
    return span, lines, names, items


QUALITY_HEADER = (
    "agent",
    "calls_reviewed",
    "average_score_percent",
    "pass_rate_percent",
    "weakest_item",
    "weakest_item_name",
)


@bp.get("/quality.csv")
@requires(*STAFF)
def quality_csv() -> ResponseReturnValue:
    """The quality report as a sheet (in English, as every sheet of the console): the lines the page shows."""
    span, lines, names, items = _quality_report("en")
    rows = [
        [
            names.get(line.agent_id, line.agent_id),
            line.reviewed,
            "" if line.average_percent is None else f"{line.average_percent:.1f}",
            metrics.share(line.pass_rate),
            line.weakest or "",
            items.get(line.weakest, line.weakest) if line.weakest else "",
        ]
        for line in lines
    ]
    return spreadsheet.response(f"call-quality-{span.name()}.csv", QUALITY_HEADER, rows, present.zone())
