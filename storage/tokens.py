"""Bearer tokens for the JSON API and Open311: made from the CLI, kept only as a SHA-256 digest.

A token is `sm_` and 43 random URL-safe characters (256 bits): far too many to guess, so a plain
digest (no salt, no slow hash) is enough, and it lets a request find its token by index.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.exceptions import SewamitraError
from storage import audit, providers
from storage.audit import AuditAction
from storage.models import ApiRole, ApiToken, utcnow

PREFIX = "sm_"
TOKEN = re.compile(r"^sm_[A-Za-z0-9_-]{43}$")
CLIENT = re.compile(r"^[a-z][a-z0-9._-]{2,59}$")
SHOWN = 10  # characters of a token kept in the clear, to tell tokens apart in a list
LAST_USED_EVERY = timedelta(minutes=5)  # last_used_at is written at most this often per token


class TokenError(SewamitraError):
    """A token that cannot be made or revoked as asked."""


@dataclass(frozen=True)
class Issued:
    token: ApiToken
    secret: str  # shown once, never stored


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    session: Session,
    client: str,
    role: ApiRole,
    *,
    provider: str | None = None,
    expires_days: int | None = None,
    actor: str = "cli",
) -> Issued:
    """A new token for `client` (a system: 'up-portal', 'gomti-app'); a provider's belongs to one agency."""
    client = client.strip().lower()
    if not CLIENT.match(client):
        raise TokenError("client: 3–60 characters, lower-case letters, digits, '.', '_' or '-'")
    if expires_days is not None and not 1 <= expires_days <= 3650:
        raise TokenError("--expires-days: from 1 to 3650")
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        client=client,
        role=role,
        provider_id=_provider_id(session, role, provider),
        token_hash=digest(secret),
        prefix=secret[:SHOWN],
        expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None,
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        AuditAction.API_TOKEN_CREATED,
        actor=actor,
        entity="api_token",
        entity_id=token.id,
        detail={"client": client, "role": role.value, "prefix": token.prefix},
    )
    return Issued(token, secret)


def authenticate(session: Session, secret: str, now: datetime) -> ApiToken | None:
    """The live token this secret is, or None (unknown, revoked or expired)."""
    if not TOKEN.match(secret):
        return None
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == digest(secret))).first()
    if token is None or token.revoked_at is not None or (token.expires_at and token.expires_at <= now):
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        session.execute(sa.update(ApiToken).where(col(ApiToken.id) == token.id).values(last_used_at=now))
        session.commit()
    return token


def revoke(session: Session, prefix: str, actor: str = "cli") -> list[ApiToken]:
    """Revoke the live tokens that start with `prefix` (as `create-token` printed it)."""
    if len(prefix) < SHOWN or not prefix.startswith(PREFIX):
        raise TokenError(f"give the whole token, or its first {SHOWN} characters as `create-token` printed them")
    live = session.exec(
        select(ApiToken).where(ApiToken.prefix == prefix[:SHOWN], col(ApiToken.revoked_at).is_(None))
    ).all()
    found = [token for token in live if len(prefix) == SHOWN or digest(prefix) == token.token_hash]
    if not found:
        raise TokenError(f"no live token starts with {prefix[:SHOWN]!r}")
    for token in found:
        token.revoked_at = utcnow()
        session.add(token)
        audit.record(
            session,
            AuditAction.API_TOKEN_REVOKED,
            actor=actor,
            entity="api_token",
            entity_id=token.id,
            detail={"client": token.client, "prefix": token.prefix},
        )
    return list(found)


def _provider_id(session: Session, role: ApiRole, provider: str | None) -> int | None:
    try:
        return providers.agency_id(
            session, provider, provider_role=role is ApiRole.PROVIDER, what="token", tie="acts for"
        )
    except providers.AgencyRefused as refused:
        raise TokenError(str(refused)) from None
