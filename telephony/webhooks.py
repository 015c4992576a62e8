"""What every platform's webhooks share before their signature is checked: the URL the platform
signed (the public one, not the one behind a proxy), and a refusal of a body larger than any
platform's, before its form is parsed or its signature computed; and, after it, a replay check a
view may do itself, where it knows whether the request commits anything."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, Request, Response
from flask.ctx import _AppCtxGlobals
from flask.globals import _cv_app, _cv_request  # what Flask's proxies look up
from werkzeug.exceptions import RequestEntityTooLarge

log = logging.getLogger(__name__)
LOGGED_PATH = 120  # characters of a refused request's path worth logging
# A platform's webhooks are a few kB of a few dozen fields: anything much larger is not theirs, and
# parsing and signing it (hundreds of thousands of fields) would cost a second of a web process.
MAX_BODY = 64 * 1024
MAX_FIELDS = 200
FORM = "application/x-www-form-urlencoded"
REPLAY_CHECK = "webhook_replay_check"  # on `g`: this request's replay check, when its view does it
REPLAY_MARKED = "webhook_replay_marked"  # on `g`: the check the view makes in a script of its own
View = TypeVar("View", bound=Callable[..., Any])


def this_request() -> Request:
    """The request itself, not Flask's proxy to it: a webhook's checks read it a dozen times, and
    each read through the proxy looks it up again (about 0.8 µs each, against 0.1 µs here)."""
    found: Request = _cv_request.get().request
    return found


def this_app() -> Flask:
    """The app serving this request, not Flask's `current_app` proxy to it: a call's webhook asks for
    its app's parts some ten times (the platform, the flows, the connections)."""
    return _cv_app.get().app


def this_g() -> _AppCtxGlobals:
    """This request's `g` itself, not Flask's proxy to it."""
    return _cv_app.get().g


def public_url_of_request(req: Request, public_url: str) -> str:
    """The URL the platform signed: the configured public URL, this path and the query string."""
    query = req.query_string.decode("latin-1")
    return f"{public_url}{req.path}" + (f"?{query}" if query else "")


def too_large(req: Request) -> Response | None:
    """A refusal (413, 400) of a body larger, or of more fields, than any platform's webhook, before
    its form is parsed or its signature computed; None for a body of a webhook's size."""
    if req.content_length is not None and req.content_length > MAX_BODY:
        return _refusal(req, 413, f"a webhook body is at most {MAX_BODY // 1024} KiB")
    req.max_content_length = MAX_BODY + 1  # a body without a length (chunked) is read no further
    req.max_form_memory_size = MAX_BODY
    req.max_form_parts = MAX_FIELDS  # a multipart body's fields are counted by its parser
    if req.mimetype != FORM:
        return None
    body = _body(req)
    if body is None:
        return _refusal(req, 413, f"a webhook body is at most {MAX_BODY // 1024} KiB")
    if body.count(b"&") >= MAX_FIELDS:
        return _refusal(req, 400, f"a webhook has at most {MAX_FIELDS} fields")
    return None


def _body(req: Request) -> bytes | None:
    """The body, kept for the form to be parsed from; None when it runs past MAX_BODY."""
    try:
        body = req.get_data(cache=True)
    except RequestEntityTooLarge:
        return None
    return body if len(body) <= MAX_BODY else None


def _refusal(req: Request, status: int, why: str) -> Response:
    log.warning("refused an oversized webhook %r from %s", req.path[:LOGGED_PATH], req.remote_addr)
    return Response(f"{why}\n", status=status, mimetype="text/plain")


@dataclass(frozen=True)
class ReplayCheck:
    """A request's replay check, left to its view by the signature check: the Redis key the request's
    first delivery sets (a replay finds it set), how long it is kept, the check done on its own
    (`first`: True the first time), and the platform's refusal of a replay. A view may set the key
    itself instead, in a script of its own that commits nothing when it finds it set (`replay_mark`)."""

    key: str
    ttl_s: int
    first: Callable[[], bool]
    refusal: Callable[[], Response]


def checks_replays_itself(view: View) -> View:
    """Mark a webhook view that does its platform's replay check itself (`replay_refusal`, or
    `replay_mark` in a script of its own), before anything it commits: its signature check leaves
    it to the view. A request that commits nothing, and whose answer says nothing but what the
    request itself carries, may then be answered again without the check's round trip, as every
    request is on a platform whose signature has no nonce."""
    view.checks_replays_itself = True  # type: ignore[attr-defined]
    return view


def replays_checked_by(view: Callable[..., Any]) -> bool:
    return bool(getattr(view, "checks_replays_itself", False))


def leave_replay_check(check: ReplayCheck) -> None:
    """For a signature check: this request's replay check, done when its view asks for it."""
    setattr(this_g(), REPLAY_CHECK, check)


def replay_mark() -> tuple[str, int] | None:
    """This request's replay check, handed to the view to make in a script of its own (once): the key
    the request's first delivery sets (a replay finds it set) and its life in seconds; None where the
    platform has none. A view whose script finds the key set answers `replay_refused()`."""
    check: ReplayCheck | None = this_g().pop(REPLAY_CHECK, None)
    if check is None:
        return None
    setattr(this_g(), REPLAY_MARKED, check)
    return check.key, check.ttl_s


def marking(first_delivery: tuple[str, int]) -> tuple[str | int, ...]:
    """The Redis command that marks a request's first delivery (`replay_mark`'s key set for its life),
    to send alone or with others: it answers nil when the key was set already (a replay)."""
    key, life_s = first_delivery
    return ("SET", key, "1", "NX", "EX", life_s)


def replay_refused() -> Response:
    """The platform's refusal of this request, which the view's script found a replay (`replay_mark`)."""
    check: ReplayCheck = getattr(this_g(), REPLAY_MARKED)
    return check.refusal()


def replay_refusal() -> Response | None:
    """This request's replay check, done now (once): the platform's refusal of a replay, or None for
    a request received for the first time, or where the platform has no replay check."""
    check: ReplayCheck | None = this_g().pop(REPLAY_CHECK, None)
    return None if check is None or check.first() else check.refusal()
