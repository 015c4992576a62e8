"""Console users, for admins: add a user, change their role, agency, desk phone and language, disable
and re-enable them, reset a password (shown once; changed at the user's next sign-in). Every user
changes their own password here too. The rules and the audit events are storage.users'; an admin
may not disable, demote or reset themself, so the console always keeps an admin who can."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select

from console import auth
from console.auth import requires, runtime
from console.forms import parse_id, plain
from console.labels import N_
from core import pincodes
from dispatch import ladder
from storage import users
from storage.db import session_scope
from storage.models import Provider, Role, User
from storage.users import Refusal, UserError

bp = Blueprint("users", __name__)
MAX_NAME = 120
# How each refusal of storage.users reads in the console (the catalogue holds their Hindi).
REFUSALS = {
    Refusal.USERNAME: N_("A user name has 3 to 60 characters: lower-case letters, digits, '.', '_' or '-'."),
    Refusal.PASSWORD_SHORT: N_("A password has at least 10 characters."),
    Refusal.PASSWORD_LONG: N_("A password has at most 200 characters."),
    Refusal.PASSWORD_UNCHANGED: N_("The new password must differ from the current one."),
    Refusal.PASSWORD_WRONG: N_("The current password is wrong."),
    Refusal.TAKEN: N_("That user name is taken."),
    Refusal.PHONE: N_("The desk phone is not a valid phone number."),
    Refusal.AGENCY_NOT_FOR_ROLE: N_("Only users with the provider role belong to an agency."),
    Refusal.AGENCY_NEEDED: N_("A provider user needs an agency."),
    Refusal.AGENCY_UNKNOWN: N_("Choose an agency from the list."),
    Refusal.LANGUAGE: N_("Choose a language from the list."),
    Refusal.SERVICE: N_("Choose services from the list."),
    Refusal.LAST_ADMIN: N_("The last active admin cannot be disabled or given another role."),
    Refusal.NO_SUCH_USER: N_("No such page or record."),
    Refusal.DISTRICTS_NOT_FOR_ROLE: N_("Only district officers have districts."),
    Refusal.DISTRICT_NEEDED: N_("A district officer needs at least one district."),
    Refusal.DISTRICT_UNKNOWN: N_("Choose districts from the list."),
}
NOT_YOURSELF = N_("You cannot disable yourself, change your own role or reset your own password: ask another admin.")
UNKNOWN_ROLE = N_("Choose a role from the list.")
PASSWORDS_DIFFER = N_("The two new passwords differ.")
LANGUAGE_NAMES = {"": N_("As chosen at sign-in"), "en": "English", "hi": "हिन्दी"}
CALL_LANGUAGES = {"hi": "हिन्दी", "en": "English"}


@dataclass
class Details:
    """What the user form asks for, as typed, and what is wrong with it."""

    form: Mapping[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def parse_role(raw: str) -> Role | None:
    return Role(raw) if raw in {role.value for role in Role} else None


def _details(form: Mapping[str, str]) -> dict[str, Any]:
    """The fields every user has, from the form; an agency only for a provider user."""
    role = parse_role(form.get("role", ""))
    return {
        "role": role,
        "full_name": plain(form.get("full_name", ""), MAX_NAME) or None,
        "phone": plain(form.get("phone", ""), 20) or None,
        "provider_id": parse_id(form.get("provider_id", "")) if role is Role.PROVIDER else None,
        "language": form.get("language", "")[:5] or None,
    }


def _skills(form: Any) -> dict[str, Any]:
    """The languages and services a user takes calls in, as ticked (none ticked: every one)."""
    known = set(runtime().settings.service_codes)
    services = tuple(code[:32] for code in form.getlist("call_services")[:50])
    if any(code not in known for code in services):
        raise UserError("call services: configured ones", Refusal.SERVICE)
    return {"call_languages": tuple(code[:5] for code in form.getlist("call_languages")[:5]), "call_services": services}


# -- the list ---------------------------------------------------------------------------------------


@bp.get("/users")
@requires(Role.ADMIN)
def index() -> ResponseReturnValue:
    with Session(runtime().engine) as db:
        people = list(db.exec(select(User).order_by(col(User.active).desc(), col(User.username))).all())
        agencies = _agency_names(db)
    return render_template("console/users/index.html", users=people, agencies=agencies, languages=LANGUAGE_NAMES)


def _agency_names(db: Session) -> dict[int, str]:
    return {agency_id: name for agency_id, name in db.exec(select(Provider.id, Provider.name)).all() if agency_id}


# -- adding a user ----------------------------------------------------------------------------------


@bp.get("/users/new")
@requires(Role.ADMIN)
def new() -> ResponseReturnValue:
    return _form_page(None, Details(form={"role": Role.AGENT.value}))


@bp.post("/users/new")
@requires(Role.ADMIN)
def create() -> ResponseReturnValue:
    details = _details(request.form)
    if details["role"] is None:
        return _form_page(None, Details(request.form, [UNKNOWN_ROLE]), 400)
    chosen = request.form.get("password", "") or None
    password = chosen or users.new_password()
    try:
        with session_scope(runtime().engine) as db:
            user = users.create_user(
                db,
                request.form.get("username", "")[:60],
                password=password,
                must_change_password=True,
                actor=auth.actor(),
                **details,
            )
            _set_districts(db, user.id or 0, details["role"])
            issued = (user.id, user.username)
    except UserError as refused:
        return _form_page(None, Details(request.form, [REFUSALS[refused.refusal]]), 400)
    except sa.exc.IntegrityError:  # the same name, taken by another admin a moment ago
        return _form_page(None, Details(request.form, [REFUSALS[Refusal.TAKEN]]), 400)
    return _issued(issued, chosen, password=password, created=True)


# -- one user ---------------------------------------------------------------------------------------


@bp.get("/users/<id:user_id>")
@requires(Role.ADMIN)
def edit(user_id: int) -> ResponseReturnValue:
    with Session(runtime().engine) as db:
        user = db.get(User, user_id) or abort(404)
        form = {
            "role": user.role.value,
            "full_name": user.full_name or "",
            "phone": user.phone or "",
            "provider_id": str(user.provider_id or ""),
            "language": user.language or "",
            "districts": ladder.districts_of(db, user_id),
            "call_languages": (user.call_languages or "").split(","),
            "call_services": (user.call_services or "").split(","),
        }
    return _form_page(user, Details(form))


@bp.post("/users/<id:user_id>")
@requires(Role.ADMIN)
def update(user_id: int) -> ResponseReturnValue:
    details = _details(request.form)
    with Session(runtime().engine) as db:
        user = db.get(User, user_id) or abort(404)
    if details["role"] is None:
        return _form_page(user, Details(request.form, [UNKNOWN_ROLE]), 400)
    if user_id == g.user.id and details["role"] is not g.user.role:
        return _form_page(user, Details(request.form, [NOT_YOURSELF]), 400)
    try:
        with session_scope(runtime().engine) as db:
            changed = users.update_user(db, user_id, actor=auth.actor(), **details, **_skills(request.form))
            changed += ["districts"] if _set_districts(db, user_id, details["role"]) else []
    except UserError as refused:
        return _form_page(user, Details(request.form, [REFUSALS[refused.refusal]]), 400)
    flash(N_("The user is changed.") if changed else N_("Nothing was changed."))
    return redirect(url_for("console.users.edit", user_id=user_id))


@bp.post("/users/<id:user_id>/disable")
@requires(Role.ADMIN)
def disable(user_id: int) -> ResponseReturnValue:
    return _set_active(user_id, False, N_("The user is disabled: they cannot sign in, and are signed out."))


@bp.post("/users/<id:user_id>/enable")
@requires(Role.ADMIN)
def enable(user_id: int) -> ResponseReturnValue:
    return _set_active(user_id, True, N_("The user is enabled again and may sign in."))


def _set_active(user_id: int, active: bool, message: str) -> ResponseReturnValue:
    if user_id == g.user.id:
        flash(NOT_YOURSELF)
        return redirect(url_for("console.users.edit", user_id=user_id))
    reason = plain(request.form.get("reason", ""), 500) or None
    try:
        with session_scope(runtime().engine) as db:
            users.set_active(db, user_id, active, actor=auth.actor(), reason=reason)
    except UserError as refused:
        if refused.refusal is Refusal.NO_SUCH_USER:
            abort(404)
        flash(REFUSALS[refused.refusal])
        return redirect(url_for("console.users.edit", user_id=user_id))
    flash(message)
    return redirect(url_for("console.users.edit", user_id=user_id))


@bp.post("/users/<id:user_id>/reset")
@requires(Role.ADMIN)
def reset(user_id: int) -> ResponseReturnValue:
    """A new password for a user who forgot theirs: the admin's choice or a random one, shown once."""
    if user_id == g.user.id:
        flash(NOT_YOURSELF)
        return redirect(url_for("console.users.edit", user_id=user_id))
    chosen = request.form.get("password", "") or None
    try:
        with session_scope(runtime().engine) as db:
            password = users.reset_password(db, user_id, actor=auth.actor(), password=chosen)
            username = (db.get(User, user_id) or abort(404)).username
    except UserError as refused:
        if refused.refusal is Refusal.NO_SUCH_USER:
            abort(404)
        flash(REFUSALS[refused.refusal])
        return redirect(url_for("console.users.edit", user_id=user_id))
    return _issued((user_id, username), chosen, password=password)


def _set_districts(db: Session, user_id: int, role: Role) -> bool:
    """A district officer's districts, from the form's ticked boxes (any other user's, none)."""
    chosen = [plain(name, 80) for name in request.form.getlist("districts")[:100]]
    return users.set_districts(db, user_id, role, chosen, known=set(service_districts()), actor=auth.actor())


def service_districts() -> list[str]:
    """The districts of the service area, as requests spell them."""
    return pincodes.districts(runtime().settings.service_area.state)


def _issued(user: tuple[int | None, str], chosen: str | None, *, password: str = "", created: bool = False) -> str:
    """The page that shows a new password once (never a redirect: it would have to be kept somewhere)."""
    return render_template(
        "console/users/issued.html",
        user_id=user[0],
        username=user[1],
        password=None if chosen else password,
        created=created,
    )


def _form_page(user: User | None, details: Details, status: int = 200) -> ResponseReturnValue:
    with Session(runtime().engine) as db:
        query = select(Provider).where(col(Provider.active).is_(True)).order_by(col(Provider.name))
        agencies = list(db.exec(query).all())
        if user is not None and user.provider_id and user.provider_id not in {a.id for a in agencies}:
            agencies.append(db.get(Provider, user.provider_id) or abort(404))
    return render_template(
        "console/users/form.html",
        user=user,
        form=details.form,
        errors=details.errors,
        roles=list(Role),
        agencies=agencies,
        languages=LANGUAGE_NAMES,
        districts=service_districts(),
        chosen_districts=_chosen_districts(details.form),
        call_languages=CALL_LANGUAGES,
        services=runtime().settings.services,
    ), status


def _chosen_districts(form: Mapping[str, Any]) -> set[str]:
    """The districts ticked: a user's, or what the form sent back."""
    chosen = form.get("districts", [])
    if hasattr(form, "getlist"):
        chosen = form.getlist("districts")
    return {str(name) for name in chosen}


# -- one's own password -----------------------------------------------------------------------------


@bp.route("/password", methods=["GET", "POST"])
@requires(*Role)
def password() -> ResponseReturnValue:
    """Every user changes their own password here; one given by an admin must be changed before
    any other page opens."""
    if request.method == "GET":
        return render_template("console/password.html", errors=[])
    current = request.form.get("current", "")[: users.MAX_PASSWORD + 1]
    new, again = request.form.get("new", "")[:1000], request.form.get("again", "")[:1000]
    if new != again:
        return render_template("console/password.html", errors=[PASSWORDS_DIFFER]), 400
    try:
        with session_scope(runtime().engine) as db:
            changed = users.change_password(db, g.user.id, current, new, actor=auth.actor())
            epoch = changed.session_epoch
    except UserError as refused:
        return render_template("console/password.html", errors=[REFUSALS[refused.refusal]]), 400
    session["epoch"] = epoch  # this session goes on; every other one is over
    flash(N_("Your password is changed."))
    return redirect(url_for(auth.home_endpoint(g.user.role)))
