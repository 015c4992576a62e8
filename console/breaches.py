"""The breach register (DPDP Act 2023 s.8(6)), for admins: a breach recorded with whose data it
touched (citizens chosen by district and time window, or by their numbers), each of them told by SMS
in their language, and the register exported as CSV for the Data Protection Board."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select

from console import present, spreadsheet
from console.auth import requires, runtime
from console.forms import plain
from console.labels import N_
from core import phones
from core.text import lines
from dispatch import notice
from storage.audit import AuditAction, record
from storage.db import session_scope
from storage.models import Breach, BreachCitizen, Caller, Role, ServiceRequest

bp = Blueprint("breaches", __name__, url_prefix="/breaches")
DESCRIPTION_MAX = 2000
NUMBERS_MAX = 5000
EXPORT_COLUMNS = ("breach", "occurred_at", "recorded_at", "description", "scope", "affected", "notified")
RECORDED = N_("The breach is recorded and the affected citizens are being told.")
INCOMPLETE = N_("Say what happened, when, and whose data: a district and a time window, or phone numbers.")


@dataclass(frozen=True)
class Whose:
    """Whose data a breach touched, as the admin chose them."""

    district: str = ""
    since: datetime | None = None
    until: datetime | None = None
    numbers: tuple[str, ...] = ()

    def scope(self) -> str:
        if self.numbers:
            return f"{len(self.numbers)} numbers given"
        assert self.since is not None
        assert self.until is not None
        return f"district {self.district}, requests {self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M}"


@bp.get("/")
@requires(Role.ADMIN)
def index() -> ResponseReturnValue:
    with Session(runtime().engine) as db:
        breaches = db.exec(select(Breach).order_by(col(Breach.id).desc())).all()
    return render_template("console/breaches.html", breaches=breaches, error=None)


@bp.post("/")
@requires(Role.ADMIN)
def create() -> ResponseReturnValue:
    """Record the breach and whose data; then tell each of them by SMS (queued, retried, recorded)."""
    description = plain(request.form.get("description", ""), DESCRIPTION_MAX)
    occurred = _moment(request.form.get("occurred_at", ""))
    whose = _whose()
    if not description or occurred is None or whose is None:
        flash(INCOMPLETE)
        return redirect(url_for(".index"))
    with session_scope(runtime().engine) as db:
        affected = _affected(db, whose)
        breach = Breach(
            description=description,
            occurred_at=occurred,
            recorded_at=runtime().clock.now(),
            recorded_by=g.user.id,
            scope=whose.scope(),
            affected=len(affected),
        )
        db.add(breach)
        db.flush()
        assert breach.id is not None
        breach_id = breach.id
        db.add_all([BreachCitizen(breach_id=breach_id, caller_id=c.id) for c in affected if c.id is not None])
        to_tell = [(c.phone, c.language or "hi") for c in affected]
    notified = sum(_tell(phone, language, occurred) for phone, language in to_tell)
    with session_scope(runtime().engine) as db:
        told = db.get(Breach, breach_id)
        assert told is not None
        told.notified = notified
        db.add(told)
        detail = {"affected": len(to_tell), "notified": notified}
        record(
            db,
            AuditAction.BREACH_RECORDED,
            actor=f"user:{g.user.id}",
            entity="breach",
            entity_id=breach_id,
            detail=detail,
        )
    flash(RECORDED)
    return redirect(url_for(".index"))


def _tell(phone: str, language: str, occurred: datetime) -> bool:
    if phones.is_pseudonym(phone):  # erased: there is no one to tell
        return False
    when = occurred.astimezone(present.zone()).strftime("%d %b %Y")
    settings = runtime().settings
    return notice.send_breach_notice(runtime().engine, runtime().redis, settings, phone, language, when) is not None


def _moment(raw: str, *, past: bool = True) -> datetime | None:
    """A datetime-local field in the call centre's zone (not in the future, when `past`)."""
    try:
        moment = datetime.fromisoformat(raw[:16]).replace(tzinfo=present.zone())
    except ValueError:
        return None
    return moment if not past or moment <= runtime().clock.now() else None


def _whose() -> Whose | None:
    raw_numbers = lines(request.form.get("numbers", "")[: NUMBERS_MAX * 16])
    numbers = tuple(sorted({n for n in (phones.to_e164(part) for part in raw_numbers.replace(",", " ").split()) if n}))
    if numbers:
        return Whose(numbers=numbers[:NUMBERS_MAX])
    district = plain(request.form.get("district", ""), 80).upper()
    since, until = _moment(request.form.get("since", "")), _moment(request.form.get("until", ""), past=False)
    if district and since is not None and until is not None and since <= until:
        return Whose(district=district, since=since, until=until)
    return None


def _affected(db: Session, whose: Whose) -> list[Caller]:
    if whose.numbers:
        return list(db.exec(select(Caller).where(col(Caller.phone).in_(whose.numbers))).all())
    assert whose.since is not None
    assert whose.until is not None
    callers = (
        select(ServiceRequest.caller_id)
        .where(
            ServiceRequest.district == whose.district,
            col(ServiceRequest.created_at) >= whose.since,
            col(ServiceRequest.created_at) <= whose.until,
        )
        .distinct()
    )
    return list(db.exec(select(Caller).where(col(Caller.id).in_(callers))).all())


@bp.get("/export.csv")
@requires(Role.ADMIN)
def export() -> ResponseReturnValue:
    """The register for the Data Protection Board, as a spreadsheet opens it (console/spreadsheet)."""
    zone = present.zone()
    with Session(runtime().engine) as db:
        sheet = [
            (b.id, b.occurred_at, b.recorded_at, b.description, b.scope, b.affected, b.notified)
            for b in db.exec(select(Breach).order_by(col(Breach.id))).all()
        ]
    header = [spreadsheet.timed(c, zone) if c.endswith("_at") else c for c in EXPORT_COLUMNS]
    return spreadsheet.response(
        f"breach-register-{runtime().clock.now().astimezone(zone):%Y%m%d}.csv", header, sheet, zone
    )
