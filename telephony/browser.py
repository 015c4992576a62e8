"""The browser's leg of an agent's call (the console's softphone), platform-neutral: who may have a
token (`agent-<user id>`), how long it lives, and what the platform's webhook for that leg says."""

from __future__ import annotations

import re
from dataclasses import dataclass

TOKEN_TTL_S = 600  # a token only starts a call (a call outlives it): ten minutes to press Accept and connect
IDENTITY = re.compile(r"agent-([1-9][0-9]{0,8})")


def identity_of(user_id: int) -> str:
    """The identity an agent's browser has at the platform, and that its calls come from."""
    return f"agent-{user_id}"


def user_of(identity: str) -> int | None:
    """The user an identity names; None for anything that is not one of ours."""
    found = IDENTITY.fullmatch(identity)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class BrowserToken:
    """What the console's softphone needs from the helpline: the platform's token, for one agent."""

    platform: str
    token: str
    identity: str
    expires_at: int


@dataclass(frozen=True)
class ClientLeg:
    """The platform asks what to do with a call from an agent's browser: whose browser, for which
    caller (the parameter the softphone connected with), on which call of the platform."""

    user_id: int | None
    caller_call_id: str
    call_id: str
