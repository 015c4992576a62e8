"""Provider agencies, found by the name an administrator gives on the command line."""

from __future__ import annotations

from sqlmodel import Session, select

from core.exceptions import SewamitraError
from storage.models import Provider


def agency_id(
    session: Session, name: str | None, *, provider_role: bool, what: str, tie: str, error: type[SewamitraError]
) -> int | None:
    """The id of agency `name` for a console user or API token (`what`, which `tie`s to its agency)
    of the provider role, None for any other role; anything else asked is an `error` that says so."""
    if not provider_role:
        if name:
            raise error(f"--provider is only for {what}s with the provider role")
        return None
    if not name:
        raise error(f"a provider {what} needs --provider NAME (the agency it {tie})")
    found = session.exec(select(Provider).where(Provider.name == name)).first()
    if found is None:
        raise error(f"no provider agency named {name!r}")
    return found.id
