"""Signing in and out, who is signed in, and what their role lets them do.

The session cookie (signed, HttpOnly, SameSite=Lax, Secure behind HTTPS) holds the user's id, their
session epoch (signing out moves it on, so a copied cookie dies too) and two moments: when they
signed in and when they were last seen. A session idle for longer than
`console.idle_timeout_minutes`, or older than `console.max_session_hours`, is over. Sign-in
attempts are counted in Redis (per name and address, per name, per address) before they are
judged; past `console.login_attempts` failures in `console.login_window_minutes` for a name from
one address (4 times as many for a name, 10 times for an address), sign-in pauses. A browser a user
signed in from before carries a signed cookie naming it as theirs: its attempts for that user are
counted for that browser alone, so nobody else's wrong passwords can keep the user out of it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import logging
import secrets
import unicodedata
from collections.abc import Callable
from typing import Any

import redis
import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    after_this_request,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select

from callcentre import desk
from console.labels import N_
from storage.audit import AuditAction, record
from storage.db import session_scope
from storage.models import Role, User
from storage.runtime import Runtime
from storage.users import verify_password

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)
ATTEMPTS_KEY = "sewamitra:console:login-failures:"
TRUSTED_COOKIE = "sewamitra_device"  # a browser the user signed in from: "<device>.<since>.<mac>"
TRUSTED_DAYS = 30
# Checked against when the user name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = "scrypt:32768:8:1$0000000000000000$" + "0" * 128
HOME = {
    Role.AGENT: "console.queue.live",
    Role.SUPERVISOR: "console.dashboard.today",
    Role.ADMIN: "console.dashboard.today",
    Role.PROVIDER: "console.workers.index",
    Role.DISTRICT_OFFICER: "console.escalations.index",
    Role.STATE_OFFICER: "console.escalations.index",
}
WRONG = N_("Wrong user name or password.")
PAUSED = N_("Too many failed attempts. Wait a while, then try again.")
STAFF = (Role.AGENT, Role.SUPERVISOR, Role.ADMIN)
MANAGERS = (Role.SUPERVISOR, Role.ADMIN)
OFFICERS = (Role.DISTRICT_OFFICER, Role.STATE_OFFICER)  # the upper rungs of the escalation ladder


def runtime() -> Runtime:
    helpline: Runtime = current_app.extensions["sewamitra"]
    return helpline


def home_endpoint(role: Role) -> str:
    return HOME[role]


def requires(*roles: Role) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Only users with one of `roles` may use this view; anyone else gets 403 (and an audit event)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if g.user.role not in roles:
                audit_refusal(AuditAction.ACCESS_REFUSED)
                abort(403)
            return view(*args, **kwargs)

        checked.roles = roles  # type: ignore[attr-defined]  # read by the route-by-route security test
        return checked

    return decorate


def signed_in_user() -> User | None:
    """The user of this session, unless it was idle too long, is too old, or the user was disabled."""
    user_id, seen, since = session.get("uid"), session.get("seen", 0), session.get("since", 0)
    if not isinstance(user_id, int):
        return None
    rules, now = runtime().settings.console, runtime().clock.now().timestamp()
    if now - seen > rules.idle_timeout_minutes * 60 or now - since > rules.max_session_hours * 3600:
        session.clear()
        flash("You were signed out after a time without activity.")
        return None
    with Session(runtime().engine, expire_on_commit=False) as db:
        user = db.get(User, user_id)
    if user is None or not user.active or session.get("epoch", 0) != user.session_epoch:
        session.clear()
        return None
    if request.headers.get("X-Live") != "1":  # a page refreshing itself is not the person at the desk
        session["seen"] = now
    return user


def actor() -> str:
    return f"user:{g.user.id}"


def audit(
    db: Session,
    action: AuditAction,
    entity: str,
    entity_id: int | None,
    *,
    reason: str | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    **detail: Any,
) -> None:
    """One console action, recorded with who did it and from where."""
    record(
        db,
        action,
        actor=actor(),
        entity=entity,
        entity_id=entity_id,
        reason=reason,
        from_status=from_status,
        to_status=to_status,
        detail={"ip": request.remote_addr, **detail},
    )


def audit_refusal(action: AuditAction) -> None:
    """A refused request (forged form, a page above the user's role) is worth knowing about."""
    user = g.get("user")
    try:
        with session_scope(runtime().engine) as db:
            record(
                db,
                action,
                actor=f"user:{user.id}" if user else "anonymous",
                entity="console",
                detail={"path": request.path[:200], "method": request.method, "ip": request.remote_addr},
            )
    except Exception:  # the refusal stands even when it cannot be recorded
        log.exception("could not record %s", action)


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> ResponseReturnValue:
    if request.method == "GET":
        return render_template("console/sign_in.html", next=request.args.get("next", ""))
    username = request.form.get("username", "").strip().lower()[:60]
    password = request.form.get("password", "")[:200]
    address = request.remote_addr or "unknown"
    target = request.form.get("next", "")
    device = _trusted_device(username)
    if _attempt(username, address, device):
        _record_sign_in(None, AuditAction.USER_SIGN_IN_PAUSED, username)
        return render_template("console/sign_in.html", error=PAUSED, username=username, next=target), 429
    user = _user_named(username)
    if user is None or not user.active or not verify_password(user, password):
        if user is None:
            verify_password(User(username="", password_hash=_DUMMY_HASH, role=Role.AGENT), password)
        _record_sign_in(user, AuditAction.USER_SIGN_IN_FAILED, username)
        return render_template("console/sign_in.html", error=WRONG, username=username, next=target), 401
    _forget_failures(username, address, device)
    after_this_request(functools.partial(_trust_device, username))
    language = user.language or session.get("language")
    session.clear()  # a new session: nothing from before signing in survives (session fixation)
    now = runtime().clock.now().timestamp()
    session.update(uid=user.id, epoch=user.session_epoch, since=now, seen=now, language=language or "en")
    session.permanent = False
    _record_sign_in(user, AuditAction.USER_SIGNED_IN, username)
    if user.must_change_password:
        return redirect(url_for("console.users.password"))
    return redirect(local_path(target) if target else url_for(home_endpoint(user.role)))


@bp.post("/sign-out")
def sign_out() -> ResponseReturnValue:
    with session_scope(runtime().engine) as db:  # a copy of the cookie is worth nothing after this
        db.execute(sa.update(User).where(col(User.id) == g.user.id).values(session_epoch=User.session_epoch + 1))
        audit(db, AuditAction.USER_SIGNED_OUT, "user", g.user.id)
    try:  # no caller rings on a closed console
        desk.signed_out(runtime().redis, runtime().engine, g.user.id, runtime().clock.now())
    except redis.RedisError:
        log.warning("could not pause agent %s at sign-out", g.user.id)
    session.clear()
    flash("You have signed out.")
    return redirect(url_for("console.auth.sign_in"))


@bp.post("/language")
def language() -> ResponseReturnValue:
    """Switch the console between English and Hindi labels."""
    chosen = request.form.get("language")
    if chosen in ("en", "hi"):
        session["language"] = chosen
    return redirect(local_path(request.form.get("back", "")))


def local_path(path: str) -> str:
    """Only a path of the console may be a place to go back to (no open redirects); a control
    character (a line break would split the Location header, a browser drops a tab) disqualifies it."""
    path = path.rstrip("?")
    ok = path.startswith("/console") and "//" not in path and "\\" not in path
    ok = ok and not any(unicodedata.category(char) == "Cc" for char in path)
    return path if ok else "/console/"


def _user_named(username: str) -> User | None:
    with Session(runtime().engine) as db:
        return db.exec(select(User).where(User.username == username)).first()


def _record_sign_in(user: User | None, action: AuditAction, username: str) -> None:
    with session_scope(runtime().engine) as db:
        if user is not None and action is AuditAction.USER_SIGNED_IN:
            found = db.get(User, user.id)
            if found is not None:
                found.last_login_at = runtime().clock.now()
        record(
            db,
            action,
            actor=f"user:{user.id}" if user else "anonymous",
            entity="user",
            entity_id=user.id if user else None,
            detail={"username": username, "ip": request.remote_addr},
        )


def _limits(username: str, address: str, device: str | None = None) -> dict[str, int]:
    """The counters a sign-in attempt adds to, with how many each allows in the window: this name
    from this address; this name from anywhere (a spread-out guess); this address (one guesser
    trying many names; many agents share an office's address, so it allows more). From a browser
    the user signed in from before, that browser's own counter only: no one else's failures count."""
    limit = runtime().settings.console.login_attempts
    if device is not None:
        return {f"{ATTEMPTS_KEY}device:{device}": limit}
    return {
        f"{ATTEMPTS_KEY}pair:{username}:{address}": limit,
        f"{ATTEMPTS_KEY}user:{username}": 4 * limit,
        f"{ATTEMPTS_KEY}ip:{address}": 10 * limit,
    }


def _attempt(username: str, address: str, device: str | None = None) -> bool:
    """Count this attempt first, then judge it, so parallel guesses cannot all slip past the check.
    True: sign-in is paused for this name or this address (or this trusted browser)."""
    limits = _limits(username, address, device)
    window = runtime().settings.console.login_window_minutes * 60
    try:
        with runtime().redis.pipeline() as pipe:
            for key in limits:
                pipe.incr(key)
                pipe.expire(key, window, nx=True)
            counts = pipe.execute()[::2]
    except redis.RedisError:  # without Redis, sign-in still works; the pause needs it
        log.warning("Redis unreachable: sign-in attempts are not being limited")
        return False
    return any(int(count) > limit for count, limit in zip(counts, limits.values(), strict=True))


def _forget_failures(username: str, address: str, device: str | None = None) -> None:
    """A right password: this attempt was no guess, and the name's earlier failures are forgiven
    (from a trusted browser, its own: the name's stay, against whoever else is guessing)."""
    with contextlib.suppress(redis.RedisError), runtime().redis.pipeline() as pipe:
        if device is not None:
            pipe.delete(*_limits(username, address, device))
        else:
            pair, user, ip = _limits(username, address)
            pipe.delete(pair, user)
            pipe.decr(ip)
        pipe.execute()


def _device_mac(username: str, device: str, since: str) -> str | None:
    """The cookie's signature over the user's name, the browser and the day; None without a secret key."""
    key = runtime().settings.secret_key
    message = f"console-trusted-device\0{username}\0{device}\0{since}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest() if key else None


def _trusted_device(username: str) -> str | None:
    """The id of this browser when its cookie says `username` signed in from it in the last
    TRUSTED_DAYS days (signed with the secret key, so it cannot be made up); else None."""
    device, _, rest = request.cookies.get(TRUSTED_COOKIE, "")[:200].partition(".")
    since, _, mac = rest.partition(".")
    now = runtime().clock.now().timestamp()
    if not (device and since.isdigit() and mac) or now - int(since) > TRUSTED_DAYS * 86400:
        return None
    expected = _device_mac(username, device, since)
    return device if expected is not None and hmac.compare_digest(mac, expected) else None


def _trust_device(username: str, response: Response) -> Response:
    """After a right password: this browser is the user's, for the sign-ins of the next TRUSTED_DAYS days."""
    device, since = secrets.token_urlsafe(16), str(int(runtime().clock.now().timestamp()))
    mac = _device_mac(username, device, since)
    if mac is None:
        return response
    response.set_cookie(
        TRUSTED_COOKIE,
        f"{device}.{since}.{mac}",
        max_age=TRUSTED_DAYS * 86400,
        path="/console",
        httponly=True,
        samesite="Lax",
        secure=current_app.config["SESSION_COOKIE_SECURE"],
    )
    return response
