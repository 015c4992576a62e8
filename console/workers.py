"""Workers and providers: the pool provider agencies onboard and supervisors vet.

A provider user sees and changes its own agency's workers only. Police verification is recorded
by a supervisor or admin, never by the agency that submits the worker. Every change is audited in
its own transaction, then the dispatch index is asked to catch up (the database stays the truth).
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from console import auth, history, present
from console.auth import MANAGERS, runtime
from console.forms import MAX_ID, NOTE_MAX, is_control, parse_id, plain
from console.labels import N_
from core import phones
from core.exceptions import ImportFileError
from directory.importer import (
    LIMITS,
    OPTIONAL,
    REQUIRED,
    ImportReport,
    RowError,
    WorkerRow,
    by_column,
    import_workers,
    parse_row,
    provider_key,
    read_records,
    registered_phones,
    save_rows,
    without_duplicates,
)
from directory.onboarding import onboard
from dispatch import enqueue, lifecycle, quality
from dispatch.availability import MAX_AT_ONCE, BulkChange, NotChanged, Via, set_availability, set_availability_of_many
from storage.audit import AuditAction
from storage.db import session_scope
from storage.models import (
    AuditEvent,
    Caller,
    Offer,
    OfferStatus,
    Origin,
    Provider,
    Role,
    ServiceRequest,
    User,
    VerificationStatus,
    Worker,
    WorkerSkill,
)

log = logging.getLogger(__name__)
bp = Blueprint("workers", __name__)

EVERYONE = (Role.AGENT, Role.SUPERVISOR, Role.ADMIN, Role.PROVIDER)
ONBOARDERS = (Role.SUPERVISOR, Role.ADMIN, Role.PROVIDER)
PAGE_SIZE = 50
MAX_SEARCH = 60
MAX_NOTE = NOTE_MAX
MAX_REFERENCE = LIMITS["police_reference"]
RECENT_JOBS = 20
HISTORY = 50
ORIGINS = {Origin.LOCAL.value: N_("Local"), Origin.RETURNED_MIGRANT.value: N_("Returned migrant")}
YES_NO = {"yes": True, "no": False}
STATUSES = frozenset(status.value for status in VerificationStatus)
PHONE_LIKE = re.compile(r"^[0-9+\-() ]+$")


# -- what the request asks for: pure parsing --------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """The list's filters; a value that does not parse is ignored, not an error."""

    district: str | None = None
    skill: str | None = None
    verification: VerificationStatus | None = None
    available: bool | None = None
    active: bool | None = None
    provider_id: int | None = None
    q: str = ""
    page: int = 1

    def args(self, **changes: Any) -> dict[str, str]:
        """The query string that gives these filters back (for links, the pager and the form)."""
        chosen = replace(self, **changes)
        values = {
            "district": chosen.district,
            "skill": chosen.skill,
            "verification": chosen.verification.value if chosen.verification else None,
            "available": _yes_no_text(chosen.available),
            "active": _yes_no_text(chosen.active),
            "provider": str(chosen.provider_id) if chosen.provider_id else None,
            "q": chosen.q or None,
            "page": str(chosen.page) if chosen.page > 1 else None,
        }
        return {name: value for name, value in values.items() if value}


def parse_filters(args: Mapping[str, str], skills: frozenset[str], districts: list[str]) -> Filters:
    """The filters a query string asks for, keeping only the values the list knows."""
    verification = args.get("verification", "")
    return Filters(
        district=args.get("district") if args.get("district") in districts else None,
        skill=args.get("skill") if args.get("skill") in skills else None,
        verification=VerificationStatus(verification) if verification in STATUSES else None,
        available=YES_NO.get(args.get("available", "")),
        active=YES_NO.get(args.get("active", "")),
        provider_id=parse_id(args.get("provider", "")),
        q=plain(args.get("q", ""), MAX_SEARCH),
        page=min(parse_id(args.get("page", "")) or 1, MAX_ID // PAGE_SIZE),
    )


def _yes_no_text(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "no")


@dataclass(frozen=True)
class Verdict:
    """The police verification's result as a supervisor recorded it."""

    status: VerificationStatus
    reference: str | None = None
    verified_on: date | None = None
    note: str | None = None


def parse_verdict(form: Mapping[str, str], today: date) -> Verdict | dict[str, str]:
    """A verified result needs a reference and a date that has come; a rejection needs a reason."""
    outcome = form.get("outcome", "")
    if outcome == VerificationStatus.VERIFIED:
        return _verified(form.get("reference", ""), form.get("verified_on", ""), today)
    if outcome == VerificationStatus.REJECTED:
        reason = " ".join(form.get("reason", "").split())
        if not reason:
            return {"reason": N_("Write why the police verification was refused.")}
        if len(reason) > MAX_NOTE or _has_control(reason):
            return {"reason": f"The reason must be plain text of at most {MAX_NOTE} characters."}
        return Verdict(VerificationStatus.REJECTED, note=reason)
    return {"outcome": N_("Choose verified or rejected.")}


def _verified(raw_reference: str, raw_date: str, today: date) -> Verdict | dict[str, str]:
    errors: dict[str, str] = {}
    reference = " ".join(raw_reference.split())
    if not reference:
        errors["reference"] = N_("Write the police verification's reference number.")
    elif len(reference) > MAX_REFERENCE or _has_control(reference):
        errors["reference"] = f"The reference number must be plain text of at most {MAX_REFERENCE} characters."
    try:
        day: date | None = date.fromisoformat(raw_date.strip()) if len(raw_date.strip()) == 10 else None
    except ValueError:
        day = None
    if day is None:
        errors["verified_on"] = N_("Give the date of the verification (YYYY-MM-DD).")
    elif day > today:
        errors["verified_on"] = N_("The date of the verification cannot be in the future.")
    if errors or day is None:
        return errors
    return Verdict(VerificationStatus.VERIFIED, reference=reference, verified_on=day)


def _has_control(text: str) -> bool:
    return any(is_control(char) for char in text)


def onboarding_cells(form: MultiDict[str, str], skills: frozenset[str]) -> dict[str, str]:
    """The form as one row of the import file, so both go through the same rules."""
    chosen = [code for code in form.getlist("skills") if code in skills] + [
        code for code in form.getlist("skills") if code not in skills
    ][:3]  # unknown codes are reported, a few of them
    return {
        "name": form.get("name", ""),
        "phone": form.get("phone", ""),
        "skills": ";".join(chosen),
        "pincode": form.get("pincode", ""),
        "police_verified": "no",  # onboarding submits a worker for verification; it never vouches
        "available": "yes",
        "service_radius_km": form.get("service_radius_km", ""),
        "language": form.get("language", ""),
        "voice_preferred": "yes" if form.get("voice_preferred") else "no",
        "certification": form.get("certification", ""),
        "certification_grade": form.get("certification_grade", ""),
        "origin": form.get("origin", ""),
    }


def agency_problems(cells: Mapping[str, str], agency: str) -> list[str]:
    """What a provider agency may not put in its file: another agency's workers, or a verification."""
    problems = []
    named = " ".join(cells.get("provider", "").split())
    if named and provider_key(named) != provider_key(agency):
        problems.append(f"provider {named[:40]!r} is not your agency; you can add workers to {agency} only")
    if cells.get("police_verified", "").strip().lower() == "yes":
        problems.append("police_verified must be no: a supervisor records the police verification after you submit")
    return problems


# -- who may see what -------------------------------------------------------------------------------


def _is_provider() -> bool:
    return bool(g.user.role is Role.PROVIDER)


def _visible() -> sa.ColumnElement[bool]:
    """The workers the signed-in user may see: a provider user, only its own agency's."""
    if not _is_provider():
        return sa.true()
    if g.user.provider_id is None:
        return sa.false()
    return col(Worker.provider_id) == g.user.provider_id


def _worker_or_refuse(db: Session, worker_id: int, *, for_change: bool = False) -> Worker:
    """The worker, if it exists (404) and the user may see it (403)."""
    worker = db.get(Worker, worker_id, with_for_update=for_change)
    if worker is None:
        abort(404)
    if _is_provider() and (g.user.provider_id is None or worker.provider_id != g.user.provider_id):
        auth.audit_refusal(AuditAction.ACCESS_REFUSED)
        abort(403)
    return worker


def _today() -> date:
    """Today where the helpline is, not where the server's clock is set."""
    return present.today()


@bp.context_processor
def helpers() -> dict[str, Any]:
    """What every page of this part needs: the user's powers here, and how to show times and names."""
    role = getattr(g.get("user"), "role", None)
    return {
        "can_manage": role in MANAGERS,
        "can_onboard": role in ONBOARDERS,
        "is_provider": role is Role.PROVIDER,
        "not_changed": NOT_CHANGED,
    }


# -- the dispatch index catches up after a change ---------------------------------------------------


def _reindex(worker_id: int) -> None:
    enqueue.reindex_worker(runtime().redis, worker_id)


def _dispatch_again(request_ids: list[int]) -> None:
    """Requests whose offer to a stood-down worker was withdrawn go to the next worker."""
    for request_id in request_ids:
        enqueue.dispatch_request(runtime().redis, request_id)


def _rebuild_index() -> None:
    enqueue.rebuild_index(runtime().redis)


# -- the list ---------------------------------------------------------------------------------------


@bp.get("/workers")
@auth.requires(*EVERYONE)
def index() -> ResponseReturnValue:
    with Session(runtime().engine) as db:
        districts = _districts(db)
        filters = parse_filters(request.args, runtime().settings.service_codes, districts)
        if _is_provider():
            filters = replace(filters, provider_id=None)
        conditions = _conditions(filters)
        total = db.exec(select(sa.func.count(col(Worker.id))).where(*conditions)).one()
        filters = replace(filters, page=min(filters.page, max(1, math.ceil(total / PAGE_SIZE))))
        workers = _page(db, conditions, filters.page)
        page = _list_page(db, filters, workers, total, districts)
    return render_template("console/workers/index.html", marked=session.pop(MARKED, None), **page)


def _districts(db: Session) -> list[str]:
    return sorted(d for d in db.exec(select(Worker.district).where(_visible()).distinct()).all() if d)


def _conditions(filters: Filters) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses of the filters, always within what the user may see."""
    conditions = [_visible()]
    if filters.district:
        conditions.append(col(Worker.district) == filters.district)
    if filters.skill:
        conditions.append(
            sa.exists().where(
                col(WorkerSkill.worker_id) == col(Worker.id), col(WorkerSkill.service_code) == filters.skill
            )
        )
    if filters.verification:
        conditions.append(col(Worker.police_verification) == filters.verification)
    if filters.available is not None:
        conditions.append(col(Worker.available) == filters.available)
    if filters.active is not None:
        conditions.append(col(Worker.active) == filters.active)
    if filters.provider_id:
        conditions.append(col(Worker.provider_id) == filters.provider_id)
    if filters.q:
        conditions.append(_search(filters.q))
    return conditions


def _search(text: str) -> sa.ColumnElement[bool]:
    """A name, part of one, or a phone number however it is written."""
    number = phones.indian_mobile(text) if any(char.isdigit() for char in text) else None
    if number:
        return col(Worker.phone) == number
    digits = "".join(char for char in text if char.isdigit())
    if PHONE_LIKE.match(text) and len(digits) >= 3:
        return col(Worker.phone).contains(digits, autoescape=True)
    return sa.func.lower(col(Worker.name)).contains(text.lower(), autoescape=True)


def _page(db: Session, conditions: list[sa.ColumnElement[bool]], page: int) -> list[Worker]:
    query = select(Worker).where(*conditions).order_by(col(Worker.name), col(Worker.id))
    return list(db.exec(query.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all())


def _list_page(
    db: Session, filters: Filters, workers: list[Worker], total: int, districts: list[str]
) -> dict[str, Any]:
    """Everything the list shows: the page, its filters, the counts and the names behind the ids."""
    by_status = _verification_counts(db, _conditions(replace(filters, verification=None)))
    return {
        "workers": workers,
        "filters": filters,
        "total": total,
        "pages": max(1, math.ceil(total / PAGE_SIZE)),
        "by_status": by_status,
        "districts": districts,
        "services": runtime().settings.services,
        "skills": _skills_of(db, [w.id for w in workers if w.id is not None]),
        "reworks": quality.rework_counts(db, [w.id for w in workers if w.id is not None]),
        "providers": _provider_names(db),
        "statuses": list(VerificationStatus),
    }


def _verification_counts(db: Session, conditions: list[sa.ColumnElement[bool]]) -> dict[str, int]:
    query = select(Worker.police_verification, sa.func.count(col(Worker.id))).where(*conditions)
    counted = db.exec(query.group_by(col(Worker.police_verification))).all()
    return {VerificationStatus(status).value: count for status, count in counted}


def _skills_of(db: Session, worker_ids: list[int]) -> dict[int, list[str]]:
    skills: dict[int, list[str]] = {}
    query = (
        select(WorkerSkill).where(col(WorkerSkill.worker_id).in_(worker_ids)).order_by(col(WorkerSkill.service_code))
    )
    for skill in db.exec(query).all():
        skills.setdefault(skill.worker_id, []).append(skill.service_code)
    return skills


def _provider_names(db: Session) -> dict[int, str]:
    query = select(Provider.id, Provider.name).order_by(col(Provider.name))
    if _is_provider():
        query = query.where(col(Provider.id) == g.user.provider_id)
    return {provider_id: name for provider_id, name in db.exec(query).all() if provider_id is not None}


# -- one worker -------------------------------------------------------------------------------------


@bp.get("/workers/<id:worker_id>")
@auth.requires(*EVERYONE)
def worker(worker_id: int) -> ResponseReturnValue:
    return _worker_page(worker_id, {})


def _worker_page(
    worker_id: int, errors: dict[str, str], status: int = 200, form: Mapping[str, str] | None = None
) -> ResponseReturnValue:
    with Session(runtime().engine) as db:
        shown = _worker_or_refuse(db, worker_id)
        page = {
            "worker": shown,
            "skills": _skills_of(db, [worker_id]).get(worker_id, []),
            "provider": db.get(Provider, shown.provider_id) if shown.provider_id else None,
            "jobs": _recent_jobs(db, worker_id),
            "offers": _offer_counts(db, worker_id),
            "history": _history(db, worker_id),
            "languages": {language.code: language.name for language in runtime().settings.languages},
            "origins": ORIGINS,
            "reworks": quality.rework_counts(db, [worker_id]).get(worker_id, 0),
            "verification_days_left": quality.days_left(
                shown.police_verified_on, _today(), runtime().settings.workers_quality.police_verification_valid_days
            ),
        }
    return render_template(
        "console/workers/worker.html", **page, errors=errors, form=form or {}, today=_today().isoformat()
    ), status


def _recent_jobs(db: Session, worker_id: int) -> list[dict[str, Any]]:
    """The worker's latest requests; a provider user sees the citizen's number masked."""
    query = (
        select(ServiceRequest, Caller.phone)
        .join(Caller, col(Caller.id) == col(ServiceRequest.caller_id), isouter=True)
        .where(col(ServiceRequest.worker_id) == worker_id)
        .order_by(col(ServiceRequest.created_at).desc())
        .limit(RECENT_JOBS)
    )
    shown: Callable[[str | None], str] = phones.mask if _is_provider() else (lambda phone: phone or "withheld")
    return [{"request": job, "citizen": shown(phone)} for job, phone in db.exec(query).all()]


def _offer_counts(db: Session, worker_id: int) -> dict[str, int]:
    query = select(Offer.status, sa.func.count(col(Offer.id))).where(col(Offer.worker_id) == worker_id)
    counts = {OfferStatus(status).value: n for status, n in db.exec(query.group_by(col(Offer.status))).all()}
    return {"total": sum(counts.values()), **counts}


def _history(db: Session, worker_id: int) -> list[dict[str, Any]]:
    """The worker's audit trail, newest first, with user names for the console's own users."""
    query = select(AuditEvent).where(col(AuditEvent.entity) == "worker", col(AuditEvent.entity_id) == worker_id)
    events = list(db.exec(query.order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc()).limit(HISTORY)).all())
    user_ids = {user_id for e in events if (user_id := _actor_id(e.actor)) is not None}
    names = dict(db.exec(select(User.id, User.username).where(col(User.id).in_(user_ids))).all()) if user_ids else {}
    return [
        {"event": e, "line": history.worker_event(e), "who": names.get(_actor_id(e.actor)) or history.who(e.actor, {})}
        for e in events
    ]


def _actor_id(actor: str) -> int | None:
    return int(actor[5:]) if actor.startswith("user:") and actor[5:].isdigit() else None


# -- changing a worker ------------------------------------------------------------------------------


def _change(
    worker_id: int, apply: Callable[[Session, Worker], None], message: str, stand_down: str | None = None
) -> ResponseReturnValue:
    """Apply one change to a worker the user may change, with its audit event, then reindex.

    With `stand_down` (the reason), the worker may no longer visit homes: their open offers are
    withdrawn and sent on, their jobs in hand go back to an agent."""
    with session_scope(runtime().engine) as db:
        changed = _worker_or_refuse(db, worker_id, for_change=True)
        apply(db, changed)
        changed.updated_at = runtime().clock.now()
        db.add(changed)
        again = (
            lifecycle.stand_down(db, worker_id, auth.actor(), stand_down, runtime().clock.now()) if stand_down else []
        )
    _reindex(worker_id)
    _dispatch_again(again)
    flash(message)
    return redirect(url_for("console.workers.worker", worker_id=worker_id))


@bp.post("/workers/<id:worker_id>/availability")
@auth.requires(*EVERYONE)
def availability(worker_id: int) -> ResponseReturnValue:
    wanted = YES_NO.get(request.form.get("available", ""))
    if wanted is None:
        abort(400)

    def apply(db: Session, changed: Worker) -> None:
        set_availability(
            db, worker_id, bool(wanted), actor=auth.actor(), channel=Via.CONSOLE, now=runtime().clock.now()
        )

    return _change(worker_id, apply, N_("Marked available.") if wanted else N_("Marked busy."))


MARKED = "workers_marked"  # the session's key for what the last bulk change did, shown once on the list
NOT_CHANGED = {
    NotChanged.NOT_YOURS.value: N_("not found, or not your agency's"),
    NotChanged.SUSPENDED.value: N_("suspended"),
    NotChanged.INACTIVE.value: N_("inactive"),
    NotChanged.ALREADY.value: N_("already so"),
}


@bp.post("/workers/availability")
@auth.requires(*EVERYONE)
def availability_of_many() -> ResponseReturnValue:
    """The worker list's ticked workers marked available or unavailable, each audited as from the
    worker's own page; what could not be changed, and why, is shown once on the list."""
    wanted = YES_NO.get(request.form.get("available", ""))
    if wanted is None:
        abort(400)
    back = request.form.get("back", "")
    back_to_list = redirect(auth.local_path(back) if _is_back(back) else url_for("console.workers.index"))
    ticked = _ticked(request.form.getlist("worker"))
    if isinstance(ticked, str):
        flash(ticked)
        return back_to_list
    # A provider user changes its own agency's workers only; one without an agency (-1), nobody's.
    agency = (g.user.provider_id or -1) if _is_provider() else None
    with session_scope(runtime().engine) as db:
        done = set_availability_of_many(
            db, ticked, wanted, agency_id=agency, actor=auth.actor(), channel=Via.CONSOLE, now=runtime().clock.now()
        )
        if done.refused():
            auth.audit(db, AuditAction.ACCESS_REFUSED, "worker", None, workers=done.refused())
        session[MARKED] = _summary(done, wanted)
    for worker in done.changed:
        if worker.id is not None:
            _reindex(worker.id)
    return back_to_list


def _ticked(raw: list[str]) -> list[int] | str:
    """The ticked workers' ids, or why the list is refused whole (nothing is changed then)."""
    ids = [parse_id(value) for value in raw]
    if not ids:
        return N_("Tick the workers to change first.")
    if len(ids) > MAX_AT_ONCE:
        return N_("Change at most 50 workers at once.")
    if None in ids:
        return N_("The list of workers could not be read: nothing was changed.")
    return [i for i in ids if i is not None]


def _is_back(path: str) -> bool:
    return path == "/console/workers" or path.startswith("/console/workers?")


def _summary(done: BulkChange, available: bool) -> dict[str, Any]:
    """What the list says once: who was marked, who was not and why (no name of another agency's)."""
    return {
        "available": available,
        "changed": [w.name for w in done.changed],
        "left": [[why.value, w.name if w else f"#{worker_id}"] for worker_id, w, why in done.left],
    }


@bp.post("/workers/<id:worker_id>/deactivate")
@auth.requires(*ONBOARDERS)
def deactivate(worker_id: int) -> ResponseReturnValue:
    reason = plain(request.form.get("reason", ""), MAX_NOTE) or None

    def apply(db: Session, changed: Worker) -> None:
        auth.audit(
            db,
            AuditAction.WORKER_DEACTIVATED,
            "worker",
            worker_id,
            reason=reason,
            from_status=_activity(changed.active),
            to_status="inactive",
        )
        changed.active = False

    return _change(
        worker_id, apply, N_("The worker is deactivated and gets no more offers."), stand_down=reason or "deactivated"
    )


@bp.post("/workers/<id:worker_id>/reactivate")
@auth.requires(*MANAGERS)
def reactivate(worker_id: int) -> ResponseReturnValue:
    def apply(db: Session, changed: Worker) -> None:
        auth.audit(
            db,
            AuditAction.WORKER_REACTIVATED,
            "worker",
            worker_id,
            from_status=_activity(changed.active),
            to_status="active",
        )
        changed.active = True

    return _change(worker_id, apply, N_("The worker is active again."))


def _activity(active: bool) -> str:
    return "active" if active else "inactive"


@bp.post("/workers/<id:worker_id>/verification")
@auth.requires(*MANAGERS)
def verification(worker_id: int) -> ResponseReturnValue:
    verdict = parse_verdict(request.form, _today())
    if not isinstance(verdict, Verdict):
        return _worker_page(worker_id, verdict, 400, request.form)

    def apply(db: Session, changed: Worker) -> None:
        verified = verdict.status is VerificationStatus.VERIFIED
        action = AuditAction.WORKER_VERIFIED if verified else AuditAction.WORKER_REJECTED
        auth.audit(
            db,
            action,
            "worker",
            worker_id,
            reason=verdict.note,
            from_status=changed.police_verification.value,
            to_status=verdict.status.value,
            reference=verdict.reference,
            verified_on=verdict.verified_on.isoformat() if verdict.verified_on else None,
        )
        changed.police_verification, changed.police_reference = verdict.status, verdict.reference
        changed.police_verified_on, changed.police_note = verdict.verified_on, verdict.note

    if verdict.status is VerificationStatus.VERIFIED:
        return _change(worker_id, apply, N_("Police verification recorded."))
    return _change(worker_id, apply, N_("Police verification rejected."), stand_down="police verification refused")


# -- onboarding one worker --------------------------------------------------------------------------


@dataclass
class Onboarding:
    """What the form needs to show again: what was typed and what is wrong with it."""

    form: Mapping[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)


@bp.get("/workers/new")
@auth.requires(*ONBOARDERS)
def new() -> ResponseReturnValue:
    return _onboarding_page(Onboarding(form={"language": runtime().settings.languages[0].code}))


@bp.post("/workers/new")
@auth.requires(*ONBOARDERS)
def create() -> ResponseReturnValue:
    try:
        with session_scope(runtime().engine) as db:
            outcome = _onboarding(db)
    except sa.exc.IntegrityError:  # the same phone number, added by someone else a moment ago
        outcome = ["phone is already registered to a worker added a moment ago"]
    if isinstance(outcome, list):
        return _onboarding_page(Onboarding(form=request.form, errors=by_column(outcome)), 400)
    _reindex(outcome)
    flash("The worker is added and waits for police verification.")
    return redirect(url_for("console.workers.worker", worker_id=outcome))


def _onboarding(db: Session) -> int | list[str]:
    """The new worker's id, or every reason the form cannot be taken (the importer's rules)."""
    provider, problems = _chosen_provider(db, request.form.get("provider_id", ""))
    parsed = parse_row(
        1, onboarding_cells(request.form, runtime().settings.service_codes), runtime().settings, _today()
    )
    if isinstance(parsed, list) or problems:
        return problems + (parsed if isinstance(parsed, list) else [])
    duplicates = without_duplicates([parsed], registered_phones(db, [parsed.phone]))[1]
    if duplicates:
        return [duplicate.reason for duplicate in duplicates]
    return onboard(db, parsed, provider.id if provider else None, actor=auth.actor())


def _chosen_provider(db: Session, raw: str) -> tuple[Provider | None, list[str]]:
    """A provider user's own agency; a supervisor's choice from the list (or none: the state's register)."""
    if _is_provider():
        own = db.get(Provider, g.user.provider_id) if g.user.provider_id else None
        return own, [] if own else ["provider is missing: your user is not linked to an agency; ask a supervisor"]
    if not raw:
        return None, []
    chosen_id = parse_id(raw)
    chosen = db.get(Provider, chosen_id) if chosen_id else None
    if chosen is None or not chosen.active:
        return None, ["provider must be one of the agencies in the list"]
    return chosen, []


def _onboarding_page(onboarding: Onboarding, status: int = 200) -> ResponseReturnValue:
    with Session(runtime().engine) as db:
        providers = [] if _is_provider() else _active_providers(db)
    settings = runtime().settings
    return render_template(
        "console/workers/new.html",
        form=onboarding.form,
        errors=onboarding.errors,
        chosen_skills=_chosen_skills(onboarding.form),
        services=settings.services,
        languages=settings.languages,
        origins=ORIGINS,
        providers=providers,
    ), status


def _chosen_skills(form: Mapping[str, Any]) -> list[str]:
    return form.getlist("skills") if isinstance(form, MultiDict) else list(form.get("skills", []))


def _active_providers(db: Session) -> list[Provider]:
    query = select(Provider).where(col(Provider.active).is_(True)).order_by(col(Provider.name))
    return list(db.exec(query).all())


# -- a CSV file of workers --------------------------------------------------------------------------


@bp.get("/workers/import")
@auth.requires(*ONBOARDERS)
def upload() -> ResponseReturnValue:
    return _import_page()


@bp.post("/workers/import")
@auth.requires(*ONBOARDERS)
def import_file() -> ResponseReturnValue:
    sent = request.files.get("file")
    if sent is None or not sent.filename:
        return _import_page(error=N_("Choose a CSV file to upload.")), 400
    try:
        text = sent.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        return _import_page(error=N_("The file is not UTF-8 text; save it from the spreadsheet as 'CSV UTF-8'.")), 400
    try:
        report = _import(io.StringIO(text, newline=""), plain(sent.filename, 120))
    except ImportFileError as exc:
        return _import_page(error=str(exc)), 400
    except sa.exc.IntegrityError:  # a phone number was registered by someone else meanwhile
        return _import_page(
            error=N_("A worker in this file was added meanwhile; nothing was imported. Upload again.")
        ), 409
    _rebuild_index()
    return _import_page(report=report)


@bp.errorhandler(RequestEntityTooLarge)
def too_large(error: RequestEntityTooLarge) -> ResponseReturnValue:
    """An upload over the app's limit is refused before the console's guard has signed the user in."""
    g.user = auth.signed_in_user()
    if request.endpoint != "console.workers.import_file" or g.user is None or g.user.role not in ONBOARDERS:
        return error
    return _import_page(error=N_("The file is larger than 2 MB; split it and upload the parts in turn.")), 413


def _import(source: io.StringIO, filename: str) -> ImportReport:
    """One transaction for the whole file: its good rows and the audit event, or nothing."""
    settings = runtime().settings
    with session_scope(runtime().engine) as db:
        if _is_provider():
            report = _import_for_agency(db, source, _own_agency(db))
        else:
            report = import_workers(db, settings, source, today=_today())
        auth.audit(
            db,
            AuditAction.WORKERS_IMPORTED,
            "worker",
            None,
            file=filename,
            imported=report.imported,
            refused=len(report.errors),
            providers_created=report.providers_created,
        )
    return report


def _own_agency(db: Session) -> Provider:
    own = db.get(Provider, g.user.provider_id) if g.user.provider_id else None
    if own is None:
        raise ImportFileError("your user is not linked to an agency; ask a supervisor")
    return own


def _import_for_agency(db: Session, source: io.StringIO, agency: Provider) -> ImportReport:
    """The importer's rules, and the agency's: its own workers only, each submitted for verification."""
    columns, records = read_records(source)
    rows: list[WorkerRow] = []
    errors: list[RowError] = []
    for number, values in records:
        problems, parsed = _agency_row(number, columns, values, agency)
        if parsed is None:
            errors.append(RowError(number, "; ".join(problems)))
        else:
            rows.append(parsed)
    rows, duplicates = without_duplicates(rows, registered_phones(db, [row.phone for row in rows]))
    save_rows(db, rows, agency.id)
    return ImportReport(len(rows), [], sorted(errors + duplicates, key=lambda error: error.row))


def _agency_row(
    number: int, columns: list[str], values: list[str], agency: Provider
) -> tuple[list[str], WorkerRow | None]:
    if any(value.strip() for value in values[len(columns) :]):
        return [f"the row has {len(values)} values but the header names {len(columns)} columns"], None
    cells = dict(zip(columns, values, strict=False))
    problems = agency_problems(cells, agency.name)
    parsed = parse_row(number, {**cells, "provider": ""}, runtime().settings, _today())
    if isinstance(parsed, list):
        return problems + parsed, None
    return problems, None if problems else parsed


def _import_page(*, error: str | None = None, report: ImportReport | None = None) -> str:
    return render_template(
        "console/workers/import.html",
        error=error,
        report=report,
        required=REQUIRED,
        optional=OPTIONAL,
        services=runtime().settings.services,
    )
