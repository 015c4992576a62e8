"""The baseline of `sewamitra bench calls`: a bare Flask endpoint answering every request with one
fixed TwiML menu, under the same gunicorn settings as the helpline. Run as
`python -m devtools.bench.calls.baseline --port N --workers N`."""

from __future__ import annotations

import argparse

from flask import Flask, Response
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


def create_app() -> Flask:
    """Every path, GET or POST, gets the same menu: no signature check, no state, no database."""
    app = Flask(__name__)
    document = menu()

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
    args = parser.parse_args(argv)
    web.run(create_app, host=args.host, port=args.port, workers=args.workers)


if __name__ == "__main__":
    main()
