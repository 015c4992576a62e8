"""The call's flow session carried in the URL of its next menu turn, signed by the helpline itself.

A menu turn that commits nothing needs no shared state: the session it goes on from comes back in
the action URL the helpline gave the platform, under an HMAC of the app's secret key bound to the
call. The platform's own signature covers the URL too; this one does not depend on the platform,
and it ties the session to the one call it was given to. A token that does not verify, or that names
another call, reads as None.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import zlib

from flows.engine import Session

PURPOSE = b"sewamitra call turn token v1"  # the key is the secret key's, for this use only
DIGEST_BYTES = 16
MAX_LENGTH = 8000  # far above any session a flow makes; a longer one is junk, not worth a hash
MAX_SESSION = 64 * 1024  # bytes of JSON a token may inflate to
# Raw deflate with a 4 kB window and little memory: a session is a few kB at most, and setting up
# zlib's default window would cost more than deflating it.
WINDOW_BITS = -12
MEMORY_LEVEL = 2


def key_of(secret_key: str) -> bytes:
    """The tokens' own key, derived from the app's secret: a token is no use as anything else's signature."""
    return hmac.new(secret_key.encode(), PURPOSE, hashlib.sha256).digest()


def sign(key: bytes, call_id: str, session: Session) -> str:
    """The token of `session` for the call `call_id`: URL-safe base64 of the session (JSON, deflated:
    a third of its length once it holds the slots read out), a dot, its MAC."""
    return signed(key, call_id, body_of(session))


def body_of(session: Session) -> bytes:
    """What a token of `session` carries before its MAC: the same for every call."""
    payload = json.dumps(session.to_dict(), ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    deflate = zlib.compressobj(6, zlib.DEFLATED, WINDOW_BITS, MEMORY_LEVEL)
    return base64.urlsafe_b64encode(deflate.compress(payload) + deflate.flush()).rstrip(b"=")


def signed(key: bytes, call_id: str, body: bytes) -> str:
    """The token of a session's `body` (`body_of`) for the call `call_id`."""
    return f"{body.decode()}.{_mac(key, call_id, body)}"


def read(key: bytes, call_id: str, token: str) -> Session | None:
    """The session `token` carries for the call `call_id`; None when it was not signed for this call
    by this helpline, or is not a session."""
    body = verified(key, call_id, token)
    return None if body is None else session_of(body)


def verified(key: bytes, call_id: str, token: str) -> bytes | None:
    """The body of `token` (`body_of` a session), when it was signed for the call `call_id` by this
    helpline; else None."""
    if len(token) > MAX_LENGTH or not token.isascii():
        return None
    body, _, mac = token.encode().partition(b".")
    return body if hmac.compare_digest(mac, _mac(key, call_id, body).encode()) else None


def session_of(body: bytes) -> Session | None:
    """The session a verified token's `body` holds; None when it is not one (signed by us, so a bug of ours)."""
    try:
        deflated = base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4))
        data = json.loads(zlib.decompressobj(WINDOW_BITS).decompress(deflated, MAX_SESSION))
        return Session.from_dict(data)
    except (binascii.Error, zlib.error, ValueError, KeyError, TypeError):
        return None


def _mac(key: bytes, call_id: str, body: bytes) -> str:
    digest = hmac.new(key, call_id.encode() + b"\n" + body, hashlib.sha256).digest()[:DIGEST_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
