"""A request `App.fixed_rules` routes (every webhook of a call) skips the steps of Flask's dispatch
that have nothing to do for it, and gets Flask's answer all the same: each case below goes through
the app as it serves, then through Flask's own `wsgi_app` on the same app, and the two answers
(status, headers, body) and what the hooks saw must be one."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, Response, abort, redirect, request, request_finished, request_started, session
from werkzeug.test import EnvironBuilder

from sewamitra import app as composition

Answer = tuple[str, list[tuple[str, str]], bytes]


def make_app(**views: Callable[[], Any]) -> composition.App:
    app = composition.App(__name__)
    app.config["SECRET_KEY"] = "test"
    app.extensions["sewamitra"] = SimpleNamespace(engine=sa.create_engine("sqlite://"))
    for name, view in views.items():
        app.add_url_rule(f"/hook/{name}", name, view, methods=["GET", "POST"])
    app.by_path = frozenset(views)
    return app


def answer(wsgi: Callable[[dict[str, Any], Any], Iterable[bytes]], path: str, method: str = "POST") -> Answer:
    environ = EnvironBuilder(path=path, method=method, data={"Digits": "1"}).get_environ()
    started: list[tuple[str, list[tuple[str, str]]]] = []
    body = wsgi(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
    try:
        data = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    [(status, headers)] = started
    return status, headers, data


def both(app: composition.App, path: str, method: str = "POST") -> tuple[Answer, Answer]:
    assert app.fixed_rules().get((path, method)) is not None, "not a request the app routes by its path"
    ours = answer(app.wsgi_app, path, method)
    flasks = answer(lambda environ, start: Flask.wsgi_app(app, environ, start), path, method)
    return ours, flasks


def test_a_plain_answer_is_flasks_byte_for_byte() -> None:
    app = make_app(turn=lambda: Response("<Response><Say>1</Say></Response>", mimetype="text/xml"))
    ours, flasks = both(app, "/hook/turn")
    assert ours == flasks
    assert ours[0] == "200 OK"
    assert ("Content-Length", str(len(ours[2]))) in ours[1]


@pytest.mark.parametrize(
    "view",
    [
        pytest.param(lambda: "a string", id="a string"),
        pytest.param(lambda: ("refused", 403), id="a tuple"),
        pytest.param(lambda: {"json": True}, id="a dict"),
        pytest.param(lambda: Response(status=204), id="no content"),
        pytest.param(lambda: redirect("/elsewhere"), id="a redirect"),
        pytest.param(lambda: Response(iter([b"a", b"b"])), id="a generator"),
        pytest.param(lambda: abort(405), id="an HTTP error"),
        pytest.param(lambda: 1 / 0, id="a bug"),
    ],
)
def test_any_other_answer_is_flasks(view: Callable[[], Any]) -> None:
    ours, flasks = both(make_app(turn=view), "/hook/turn")
    assert ours == flasks


def test_a_head_request_is_answered_without_a_body_as_flask_does() -> None:
    app = make_app(turn=lambda: Response("body"))
    ours, flasks = both(app, "/hook/turn", "HEAD")
    assert ours == flasks
    assert ours[2] == b""


def test_a_session_written_is_saved_as_flask_saves_it() -> None:
    def remember() -> Response:
        session["seen"] = True
        return Response("ok")

    ours, flasks = both(make_app(turn=remember), "/hook/turn")
    assert ours == flasks
    assert any(name == "Set-Cookie" for name, _ in ours[1])


def test_the_apps_hooks_and_signals_run_as_in_flask() -> None:
    seen: list[str] = []
    app = make_app(turn=lambda: Response("ok"))
    app.before_request(lambda: seen.append("before"))

    def after(response: Response) -> Response:
        seen.append("after")
        return response

    app.after_request(after)
    app.teardown_request(lambda error: seen.append(f"teardown {error!r}"))

    def started(sender: Flask, **extra: Any) -> None:
        seen.append("started")

    def finished(sender: Flask, response: Response, **extra: Any) -> None:
        seen.append(f"finished {response.status_code}")

    with request_started.connected_to(started, app), request_finished.connected_to(finished, app):
        ours = answer(app.wsgi_app, "/hook/turn")
        ours_seen, seen[:] = list(seen), []
        flasks = answer(lambda environ, start: Flask.wsgi_app(app, environ, start), "/hook/turn")
    assert ours == flasks
    assert ours_seen == seen == ["started", "before", "after", "finished 200", "teardown None"]


def test_a_before_request_hook_that_answers_is_the_answer() -> None:
    app = make_app(turn=lambda: Response("the view"))
    app.before_request(lambda: Response("the hook", status=403))
    ours, flasks = both(app, "/hook/turn")
    assert ours == flasks
    assert ours[2] == b"the hook"


def test_teardown_hears_of_a_views_error() -> None:
    errors: list[BaseException | None] = []
    app = make_app(turn=lambda: 1 / 0)
    app.teardown_request(errors.append)
    ours, _ = both(app, "/hook/turn")
    assert ours[0] == "500 INTERNAL SERVER ERROR"
    assert [type(error) for error in errors] == [ZeroDivisionError, ZeroDivisionError]


def test_a_coroutine_view_is_left_to_flask() -> None:
    async def turn() -> str:
        return "ok"

    app = make_app(plain=lambda: "ok", turn=turn)
    assert ("/hook/plain", "POST") in app.fixed_rules()
    assert ("/hook/turn", "POST") not in app.fixed_rules()


def ignored(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], object]:
    return lambda data: None


def test_a_plain_answer_is_sent_as_it_is_and_any_other_as_werkzeug_sends_it() -> None:
    environ = EnvironBuilder(path="/", method="POST").get_environ()
    plain = Response("<Response/>", mimetype="text/xml")
    assert composition._sent(plain, environ, ignored) is plain.response

    closed: list[str] = []
    closing = Response("bye")
    closing.call_on_close(lambda: closed.append("closed"))
    sent = composition._sent(closing, environ, ignored)
    assert sent is not closing.response
    assert b"".join(sent) == b"bye"
    sent.close()  # type: ignore[attr-defined]  # the server closes what the app gave it
    assert closed == ["closed"]


def test_a_body_read_by_the_view_is_the_one_posted() -> None:
    def echo() -> Response:
        return Response(request.form["Digits"])

    app = make_app(turn=echo)
    environ = EnvironBuilder(path="/hook/turn", method="POST", data={"Digits": "42"}).get_environ()
    environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read())
    assert b"".join(app.wsgi_app(environ, ignored)) == b"42"


def test_a_test_clients_with_keeps_the_request_as_flask_does() -> None:
    app = make_app(turn=lambda: Response("ok"))
    with app.test_client() as client:
        client.post("/hook/turn", data={"Digits": "7"})
        assert request.path == "/hook/turn"
        assert request.form["Digits"] == "7"
