"""The baseline of `sewamitra bench calls`: a bare Flask endpoint answering every request with one
fixed TwiML menu (Plivo XML with `--platform plivo`), under the same gunicorn settings as the
helpline. Run as `python -m devtools.bench.calls.baseline --port N --workers N`."""

from __future__ import annotations

import argparse
import functools

from flask import Flask, Response
from plivo import plivoxml
from twilio.twiml.voice_response import VoiceResponse

from flows import prompts
from sewamitra import web


def menu() -> str:
    """The helpline's main menu in English, as a Gather with a Redirect after it, as ours are."""
    response = VoiceResponse()
    gather = response.gather(
        action="/twilio/voice/step",
        method="POST",
        timeout=6,
        finish_on_key="#",
        action_on_empty_result=True,
        num_digits=1,
    )
    gather.say(prompts.text("main_menu", "en"), language="en-IN", voice="Polly.Kajal-Neural")
    response.redirect("/twilio/voice/step", method="POST")
    return str(response)


def plivo_menu(public_url: str) -> str:
    """The same menu as Plivo XML: GetDigits with the prompt inside, a Redirect after it (full URLs)."""
    step = f"{public_url}/plivo/voice/step"
    response = plivoxml.ResponseElement()
    digits = plivoxml.GetDigitsElement(
        action=step,
        method="POST",
        timeout=6,
        digit_timeout=6,
        finish_on_key="#",
        num_digits=1,
        retries=1,
        redirect=True,
    )
    digits.add(plivoxml.SpeakElement(prompts.text("main_menu", "en"), voice="Polly.Raveena", language="en-IN"))
    response.add(digits)
    response.add(plivoxml.RedirectElement(step, method="POST"))
    return str(response.to_string(pretty=False))


def create_app(platform: str = "twilio", public_url: str = "") -> Flask:
    """Every path, GET or POST, gets the same menu: no signature check, no state, no database."""
    app = Flask(__name__)
    document = plivo_menu(public_url) if platform == "plivo" else menu()

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
    @app.route("/<path:path>", methods=["GET", "POST"])
    def answer(path: str) -> Response:
        return Response(document, mimetype="text/xml")

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--platform", choices=["twilio", "plivo"], default="twilio")
    parser.add_argument("--public-url", default="", help="the URL the Plivo menu's actions go to")
    args = parser.parse_args(argv)
    app = functools.partial(create_app, args.platform, args.public_url)
    web.run(app, host=args.host, port=args.port, workers=args.workers)


if __name__ == "__main__":
    main()
