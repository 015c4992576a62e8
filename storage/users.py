"""Console users: created from the CLI or by an admin in the console, passwords hashed with scrypt.

An admin changes a user's role, agency, desk phone and language, disables and re-enables them, and
resets their password; every user changes their own. A first or reset password must be changed at
the next sign-in. There is always an active admin: the last one cannot be disabled or demoted.
Every change is an audit event in the change's transaction; no password is ever in one."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, col, select
from werkzeug.security import check_password_hash, generate_password_hash

from core import phones
from core.exceptions import SewamitraError
from storage import audit, providers
from storage.audit import AuditAction
from storage.models import Provider, Role, User, UserDistrict

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{2,59}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 200  # what sign-in reads of a password: a longer one could never be typed in
SERVICE_CODE = re.compile(r"^[a-z][a-z_]{1,31}$")  # as core.settings.Service's codes
LANGUAGES = ("en", "hi")  # the console's
# werkzeug's scrypt at its own cost (N=2^15, r=8, p=1): a quarter of a second and 32 MB per hash.
# A hash names its cost, so sign-in checks any; create_user's `hashing` is for tests' many users.
HASHING = "scrypt:32768:8:1"


class Refusal(StrEnum):
    """Why a user cannot be created or changed as asked: the console words each in its language."""

    USERNAME = "username"
    PASSWORD_SHORT = "password_short"  # noqa: S105 (a reason, not a secret)
    PASSWORD_LONG = "password_long"  # noqa: S105 (a reason, not a secret)
    PASSWORD_UNCHANGED = "password_unchanged"  # noqa: S105 (a reason, not a secret)
    PASSWORD_WRONG = "password_wrong"  # noqa: S105 (a reason, not a secret)
    TAKEN = "taken"
    PHONE = "phone"
    AGENCY_NOT_FOR_ROLE = "agency_not_for_role"
    AGENCY_NEEDED = "agency_needed"
    AGENCY_UNKNOWN = "agency_unknown"
    LANGUAGE = "language"
    SERVICE = "service"
    LAST_ADMIN = "last_admin"
    NO_SUCH_USER = "no_such_user"
    DISTRICTS_NOT_FOR_ROLE = "districts_not_for_role"
    DISTRICT_NEEDED = "district_needed"
    DISTRICT_UNKNOWN = "district_unknown"


class UserError(SewamitraError):
    """A console user that cannot be created or changed as asked."""

    def __init__(self, message: str, refusal: Refusal) -> None:
        super().__init__(message)
        self.refusal = refusal


def create_user(
    session: Session,
    username: str,
    role: Role,
    password: str,
    *,
    full_name: str | None = None,
    phone: str | None = None,
    provider: str | None = None,
    provider_id: int | None = None,
    language: str | None = None,
    must_change_password: bool = False,
    actor: str = "cli",
    hashing: str = HASHING,
) -> User:
    """Add a console user; a provider user belongs to exactly one agency (by name, or by id)."""
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise UserError("username: 3–60 characters, lower-case letters, digits, '.', '_' or '-'", Refusal.USERNAME)
    check_password(password)
    if session.exec(select(User).where(User.username == username)).first():
        raise UserError(f"username {username!r} is taken", Refusal.TAKEN)
    user = User(
        username=username,
        password_hash=_hashed(password, hashing),
        role=role,
        full_name=full_name or None,
        phone=_desk_phone(phone),
        provider_id=_provider_id(session, role, provider)
        if provider_id is None
        else _agency(session, role, provider_id),
        language=_language(language),
        must_change_password=must_change_password,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        AuditAction.USER_CREATED,
        actor=actor,
        entity="user",
        entity_id=user.id,
        detail={"username": username, "role": role.value, "must_change_password": must_change_password},
    )
    return user


def update_user(
    session: Session,
    user_id: int,
    *,
    role: Role,
    full_name: str | None,
    phone: str | None,
    provider_id: int | None,
    language: str | None,
    actor: str,
    call_languages: Sequence[str] | None = None,
    call_services: Sequence[str] | None = None,
) -> list[str]:
    """Change a user's role, name, agency, desk phone and language, and the languages and services
    they take calls in (None: as they are; empty: every one); the names of the fields changed.
    The last active admin keeps the admin role."""
    user = _locked(session, user_id)
    wanted = {
        "role": role,
        "full_name": full_name or None,
        "phone": _desk_phone(phone),
        "provider_id": _agency(session, role, provider_id),
        "language": _language(language),
    }
    if call_languages is not None:
        wanted["call_languages"] = _call_languages(call_languages)
    if call_services is not None:
        wanted["call_services"] = _call_services(call_services)
    changed = [name for name, value in wanted.items() if getattr(user, name) != value]
    if "role" in changed:
        _keep_an_admin(session, user)
    if not changed:
        return []
    user_role = user.role.value
    # Before and after, but a desk phone's number (that it changed is enough); the role in from/to.
    shown = {name: [getattr(user, name), wanted[name]] for name in changed if name not in ("phone", "role")}
    for name in changed:
        setattr(user, name, wanted[name])
    session.add(user)
    audit.record(
        session,
        AuditAction.USER_CHANGED,
        actor=actor,
        entity="user",
        entity_id=user_id,
        from_status=user_role if "role" in changed else None,
        to_status=role.value if "role" in changed else None,
        detail={"username": user.username, "changed": changed, **shown},
    )
    return changed


def set_districts(
    session: Session, user_id: int, role: Role, districts: list[str], *, known: set[str], actor: str
) -> bool:
    """A district officer's districts (the requests they see and act on), replacing the ones they
    had; nobody else has any. Whether they changed; audited when they did."""
    wanted = sorted({district.strip().upper() for district in districts if district.strip()})
    if role is not Role.DISTRICT_OFFICER and wanted:
        raise UserError("districts are only for district officers", Refusal.DISTRICTS_NOT_FOR_ROLE)
    if role is Role.DISTRICT_OFFICER and not wanted:
        raise UserError("a district officer needs at least one district", Refusal.DISTRICT_NEEDED)
    unknown = [district for district in wanted if district not in known]
    if unknown:
        raise UserError(f"no district {unknown[0]!r} in the service area", Refusal.DISTRICT_UNKNOWN)
    had = sorted(session.exec(select(UserDistrict.district).where(UserDistrict.user_id == user_id)).all())
    if had == wanted:
        return False
    session.execute(sa.delete(UserDistrict).where(col(UserDistrict.user_id) == user_id))
    session.add_all(UserDistrict(user_id=user_id, district=district) for district in wanted)
    audit.record(
        session,
        AuditAction.USER_CHANGED,
        actor=actor,
        entity="user",
        entity_id=user_id,
        detail={"changed": ["districts"], "districts": [had, wanted]},
    )
    return True


def set_active(session: Session, user_id: int, active: bool, *, actor: str, reason: str | None = None) -> User:
    """Disable a user (their sessions end at their next request) or enable them again; the last
    active admin stays enabled."""
    user = _locked(session, user_id)
    if user.active == active:
        return user
    if not active:
        _keep_an_admin(session, user)
        user.session_epoch += 1
    user.active = active
    session.add(user)
    audit.record(
        session,
        AuditAction.USER_ENABLED if active else AuditAction.USER_DISABLED,
        actor=actor,
        entity="user",
        entity_id=user_id,
        reason=reason,
        from_status="disabled" if active else "active",
        to_status="active" if active else "disabled",
        detail={"username": user.username},
    )
    return user


def reset_password(session: Session, user_id: int, *, actor: str, password: str | None = None) -> str:
    """Give a user a new password (the one given, else a random one) that they must change at their
    next sign-in; their sessions end. Returns the password, to be shown once and never kept."""
    new = password or new_password()
    check_password(new)
    user = _locked(session, user_id)
    user.password_hash = _hashed(new)
    user.must_change_password = True
    user.session_epoch += 1
    session.add(user)
    audit.record(
        session,
        AuditAction.USER_PASSWORD_RESET,
        actor=actor,
        entity="user",
        entity_id=user_id,
        detail={"username": user.username, "chosen_by_admin": password is not None},
    )
    return new


def change_password(session: Session, user_id: int, current: str, new: str, *, actor: str) -> User:
    """A user sets their own password, proving the current one; their other sessions end."""
    user = _locked(session, user_id)
    if not verify_password(user, current[:MAX_PASSWORD]):
        raise UserError("the current password is wrong", Refusal.PASSWORD_WRONG)
    check_password(new)
    if new == current:
        raise UserError("the new password must differ from the current one", Refusal.PASSWORD_UNCHANGED)
    user.password_hash = _hashed(new)
    was_forced, user.must_change_password = user.must_change_password, False
    user.session_epoch += 1
    session.add(user)
    audit.record(
        session,
        AuditAction.USER_PASSWORD_CHANGED,
        actor=actor,
        entity="user",
        entity_id=user_id,
        detail={"username": user.username, "was_required": was_forced},
    )
    return user


def new_password() -> str:
    """A random first password (16 characters), for the user to change at their first sign-in."""
    return secrets.token_urlsafe(12)


def check_password(password: str) -> None:
    """A password a person can type at sign-in, long enough not to be guessed."""
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password: at least {MIN_PASSWORD} characters", Refusal.PASSWORD_SHORT)
    if len(password) > MAX_PASSWORD:
        raise UserError(f"password: at most {MAX_PASSWORD} characters", Refusal.PASSWORD_LONG)


def verify_password(user: User, password: str) -> bool:
    return check_password_hash(user.password_hash, password)


def _hashed(password: str, hashing: str = HASHING) -> str:
    return generate_password_hash(password, method=hashing)


def _locked(session: Session, user_id: int) -> User:
    user = session.get(User, user_id, with_for_update=True)
    if user is None:
        raise UserError(f"no user {user_id}", Refusal.NO_SUCH_USER)
    return user


def _keep_an_admin(session: Session, user: User) -> None:
    """Refuse to disable or demote the last active admin. Every active admin's row is locked first
    (in id order), so two admins disabling each other at once cannot both succeed."""
    if user.role is not Role.ADMIN or not user.active:
        return
    query = select(User.id).where(col(User.role) == Role.ADMIN, col(User.active).is_(True)).order_by(col(User.id))
    admins = session.exec(query.with_for_update()).all()
    if not [admin for admin in admins if admin != user.id]:
        raise UserError("the last active admin cannot be disabled or given another role", Refusal.LAST_ADMIN)


def _desk_phone(raw: str | None) -> str | None:
    if not raw:
        return None
    number = phones.to_e164(raw)
    if number is None:
        raise UserError(f"phone: {raw!r} is not a valid phone number", Refusal.PHONE)
    return number


def _language(language: str | None) -> str | None:
    if language and language not in LANGUAGES:
        raise UserError(f"language: one of {', '.join(LANGUAGES)}", Refusal.LANGUAGE)
    return language or None


def _call_languages(codes: Sequence[str]) -> str | None:
    """The languages a user takes calls in, as stored; None for every one."""
    if any(code not in LANGUAGES for code in codes):
        raise UserError(f"call languages: of {', '.join(LANGUAGES)}", Refusal.LANGUAGE)
    return ",".join(sorted(set(codes))) or None


def _call_services(codes: Sequence[str]) -> str | None:
    """The services a user takes calls about, as stored; None for every one (the console offers the
    configured ones only)."""
    if any(not SERVICE_CODE.match(code) for code in codes):
        raise UserError("call services: service codes", Refusal.SERVICE)
    return ",".join(sorted(set(codes))) or None


def _provider_id(session: Session, role: Role, provider: str | None) -> int | None:
    try:
        return providers.agency_id(
            session, provider, provider_role=role is Role.PROVIDER, what="user", tie="belongs to"
        )
    except providers.AgencyRefused as refused:
        raise UserError(str(refused), Refusal(refused.reason)) from None


def _agency(session: Session, role: Role, provider_id: int | None) -> int | None:
    """The agency chosen by id: a provider user's (it must exist), nobody else's."""
    if role is not Role.PROVIDER:
        if provider_id is not None:
            raise UserError("an agency is only for users with the provider role", Refusal.AGENCY_NOT_FOR_ROLE)
        return None
    if provider_id is None:
        raise UserError("a provider user needs an agency", Refusal.AGENCY_NEEDED)
    if session.get(Provider, provider_id) is None:
        raise UserError(f"no provider agency {provider_id}", Refusal.AGENCY_UNKNOWN)
    return provider_id
