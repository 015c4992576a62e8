"""Console users: created from the CLI, passwords hashed with scrypt."""

from __future__ import annotations

import re

from sqlmodel import Session, select
from werkzeug.security import check_password_hash, generate_password_hash

from core import phones
from core.exceptions import SewamitraError
from storage import audit, providers
from storage.audit import AuditAction
from storage.models import Role, User

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{2,59}$")
MIN_PASSWORD = 10


class UserError(SewamitraError):
    """A console user that cannot be created as asked."""


def create_user(
    session: Session,
    username: str,
    role: Role,
    password: str,
    *,
    full_name: str | None = None,
    phone: str | None = None,
    provider: str | None = None,
    actor: str = "cli",
) -> User:
    """Add a console user; a provider user belongs to exactly one agency."""
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise UserError("username: 3–60 characters, lower-case letters, digits, '.', '_' or '-'")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password: at least {MIN_PASSWORD} characters")
    if session.exec(select(User).where(User.username == username)).first():
        raise UserError(f"username {username!r} is taken")
    user = User(
        username=username,
        password_hash=generate_password_hash(password, method="scrypt"),
        role=role,
        full_name=full_name,
        phone=_desk_phone(phone),
        provider_id=providers.agency_id(
            session, provider, provider_role=role is Role.PROVIDER, what="user", tie="belongs to", error=UserError
        ),
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        AuditAction.USER_CREATED,
        actor=actor,
        entity="user",
        entity_id=user.id,
        detail={"username": username, "role": role.value},
    )
    return user


def _desk_phone(raw: str | None) -> str | None:
    if not raw:
        return None
    number = phones.to_e164(raw)
    if number is None:
        raise UserError(f"phone: {raw!r} is not a valid phone number")
    return number


def verify_password(user: User, password: str) -> bool:
    return check_password_hash(user.password_hash, password)
