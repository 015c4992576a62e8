"""The console blueprint: every /console page behind a session, a role and a CSRF token."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from console import (
    agent,
    auth,
    breaches,
    call_controls,
    callbacks,
    callers,
    calls,
    csrf,
    dashboard,
    data_requests,
    escalations,
    labels,
    present,
    privacy,
    providers,
    quality,
    queue,
    recordings,
    reports,
    requests,
    softphone,
    users,
    wall,
    workers,
    worklist,
)
from console.forms import has_nul
from console.labels import N_
from storage.audit import AuditAction
from telephony import browser_ready

log = logging.getLogger(__name__)
bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
# Pages anyone may reach: signing in, and the stylesheet and script the sign-in page uses.
PUBLIC_ENDPOINTS = frozenset({"console.auth.sign_in", "console.static", "console.auth.language"})
# All a user whose password was given to them (first, or reset by an admin) may do before choosing their own.
BEFORE_A_NEW_PASSWORD = frozenset({"console.users.password", "console.auth.sign_out"})
UNREADABLE = N_("The form held characters that cannot be read. Type it again.")
FORGED = N_("This form has expired or did not come from the console. Reload the page and try again.")
UNREACHABLE = N_("The database cannot be reached right now, so nothing was shown or changed. Try again in a minute.")
REFUSED = N_("Your role does not allow this page or action.")
MISSING = N_("No such page or record.")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
# The softphone's SDK talks to its platform over these (scripts stay the helpline's own: the SDK is
# vendored): Twilio's signalling and Insights (twilio.com/docs/voice/sdks/network-connectivity-requirements),
# Plivo's signalling and call-quality stats (the Browser SDK's own endpoints).
SOFTPHONE_CONNECT = {
    "twilio": "wss://voice-js.roaming.twilio.com wss://eventgw.twilio.com https://eventgw.twilio.com",
    "plivo": "wss://client.plivo.com wss://client-fb.plivo.com https://stats.plivo.com https://nimbus.plivo.com",
}


_PARTS = (
    auth,
    agent,
    queue,
    wall,
    callbacks,
    callers,
    call_controls,
    requests,
    recordings,
    workers,
    providers,
    worklist,
    escalations,
    dashboard,
    quality,
    calls,
    reports,
    users,
    data_requests,
    softphone,
)
for _part in (*_PARTS, breaches):
    bp.register_blueprint(_part.bp)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(privacy.bp)  # public: the privacy notice, at /privacy
    labels.init_app(app)
    app.after_request(secure)
    app.jinja_env.globals.update(
        t=labels.translate,
        csrf_token=csrf.token,
        agent_desk=agent.context,
        clock_time=agent.clock_time,
        softphone=softphone.context,
        call_controls=call_controls.controls,
        wrap_up_form=agent.wrap_up_form,
    )
    present.init_app(app)


@bp.before_request
def guard() -> ResponseReturnValue | None:
    """Signed in (and not idle too long), else the sign-in page; a password given by an admin, the page
    to change it; then a post without our token is refused."""
    g.language = labels.language()
    if has_nul(request.args) or has_nul(request.form):
        return render_template("console/error.html", code=400, title=N_("Bad request"), message=UNREADABLE), 400
    if request.endpoint not in PUBLIC_ENDPOINTS:
        g.user = auth.signed_in_user()
        if g.user is None:
            return redirect(url_for("console.auth.sign_in", next=auth.local_path(request.full_path)))
        if g.user.must_change_password and request.endpoint not in BEFORE_A_NEW_PASSWORD:
            return redirect(url_for("console.users.password"))
    if request.method not in ("GET", "HEAD", "OPTIONS") and not csrf.is_valid():
        auth.audit_refusal(AuditAction.CSRF_REFUSED)
        return render_template("console/error.html", code=403, title=N_("Form expired"), message=FORGED), 403
    return None


@bp.get("/")
def home() -> ResponseReturnValue:
    return redirect(url_for(auth.home_endpoint(g.user.role)))


def secure(response: Response) -> Response:
    """Every console answer, pages not found included, with the headers that keep it to itself."""
    if request.path.startswith("/console"):
        for header, value in {**SECURITY_HEADERS, **_softphone_headers()}.items():
            response.headers.setdefault(header, value)
        if auth.runtime().settings.public_url.startswith("https://"):
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def _softphone_headers() -> dict[str, str]:
    """Where agents answer in the browser: their microphone, and the platform's servers, allowed."""
    settings = auth.runtime().settings
    if not browser_ready(settings):
        return {}
    connect = SOFTPHONE_CONNECT[settings.telephony.platform]
    return {
        "Content-Security-Policy": f"{SECURITY_HEADERS['Content-Security-Policy']}; connect-src 'self' {connect}",
        "Permissions-Policy": "camera=(), microphone=(self), geolocation=()",
    }


@bp.errorhandler(sa.exc.OperationalError)
@bp.errorhandler(sa.exc.InterfaceError)
def database_unreachable(error: Exception) -> ResponseReturnValue:
    """The database is down or cut off: say so (503), rather than an internal error page."""
    log.error("console: the database cannot be reached (%s)", type(error).__name__)
    return render_template("console/error.html", code=503, title=N_("Database unreachable"), message=UNREACHABLE), 503


def http_error(error: HTTPException) -> ResponseReturnValue:
    """A refused or missing page: the console's own page for its users, plain text anywhere else."""
    if request.path.startswith("/console") and error.code == 403:
        return render_template("console/error.html", code=403, title=N_("Forbidden"), message=REFUSED), 403
    if request.path.startswith("/console") and error.code == 404 and _signed_in():
        return render_template("console/error.html", code=404, title=N_("Not found"), message=MISSING), 404
    return Response(f"{error.name.lower()}\n", status=error.code or 500, mimetype="text/plain")


def _signed_in() -> bool:
    """Whether a console user asked: a path no view matched never ran the guard, so ask the session here."""
    if "user" not in g:
        g.language = labels.language()
        try:
            g.user = auth.signed_in_user()
        except sa.exc.SQLAlchemyError:  # a missing page stays a 404 while the database is away
            g.user = None
    return g.user is not None
