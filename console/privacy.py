"""The privacy notice at /privacy (DPDP Act 2023 s.5): public, in Hindi and English, its figures
read from config.yaml, so the notice says what the retention job does and the SMS it sends before
an erasure; how to ask for one's own data or its erasure (5 on the phone menu, or an agent), at the
number the SMS give."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request
from flask.typing import ResponseReturnValue

from console.auth import runtime

bp = Blueprint("privacy", __name__)
LANGUAGES = ("hi", "en")
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@bp.get("/privacy")
def notice() -> ResponseReturnValue:
    """The notice in the language asked (`?lang=en`), Hindi unless English is asked; no sign-in."""
    language = request.args.get("lang", "hi")
    language = language if language in LANGUAGES else "hi"
    settings = runtime().settings
    page = render_template(
        f"console/privacy_{language}.html",
        language=language,
        settings=settings,
        days=settings.privacy.retention,
        notice_hours=settings.privacy.erasure_notice_hours,
        helpline=settings.helpline_public_number,
    )
    return Response(page, headers=HEADERS, mimetype="text/html")
