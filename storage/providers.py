"""Provider agencies, found by the name an administrator gives on the command line."""

from __future__ import annotations

from sqlmodel import Session, select

from core.exceptions import SewamitraError
from storage.models import Provider


class AgencyRefused(SewamitraError):
    """The agency asked for does not fit: `reason` is `agency_not_for_role`, `agency_needed` or
    `agency_unknown`, for callers that word each reason themselves."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def agency_id(session: Session, name: str | None, *, provider_role: bool, what: str, tie: str) -> int | None:
    """The id of agency `name` for a console user or API token (`what`, which `tie`s to its agency)
    of the provider role, None for any other role; anything else asked is refused, saying why."""
    if not provider_role:
        if name:
            raise AgencyRefused(f"--provider is only for {what}s with the provider role", "agency_not_for_role")
        return None
    if not name:
        raise AgencyRefused(f"a provider {what} needs --provider NAME (the agency it {tie})", "agency_needed")
    found = session.exec(select(Provider).where(Provider.name == name)).first()
    if found is None:
        raise AgencyRefused(f"no provider agency named {name!r}", "agency_unknown")
    return found.id
