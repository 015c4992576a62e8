"""The composition root: the Flask app from a frozen Settings, with every blueprint; and what a
gunicorn worker serves, the same paths in two apps, the console's and API's built when first asked."""

from __future__ import annotations

import inspect
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from types import CodeType
from typing import TYPE_CHECKING, Any

from flask import Flask, Request, Response, current_app, request, request_finished, request_started
from flask.ctx import RequestContext
from flask.globals import _cv_app, _cv_request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.typing import ResponseReturnValue
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import BaseConverter, IntegerConverter, Map, MapAdapter
from werkzeug.routing import Rule as WerkzeugRule
from werkzeug.routing.rules import RulePart

from core.clock import SYSTEM, Clock
from core.ids import MAX_ID
from core.settings import Settings, load_settings
from ivr import callback_call, monitor, officer, sms, softphone, voice
from sewamitra import forms, health
from storage.db import one_connection
from storage.runtime import Runtime
from telephony import call_platform
from telephony.call import CallPlatform

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)


class RecordId(IntegerConverter):
    """A record's id in a URL: a positive 32-bit integer, so a huge one is a 404, not a database error."""

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, min=1, max=MAX_ID)


class Rule(WerkzeugRule):
    """A URL rule parsed, and its URL builders compiled, once per process. Werkzeug parses every rule
    of every app into the parts it matches and compiles two Python functions for it, most of an app's
    start; the parts depend on the rule's text, where it applies (host or subdomain) and the map's
    converters, the builders on the rule's text and defaults alone (the rule itself is an argument),
    so every app of a process shares them. Each rule gets converters of its own map."""

    def compile(self) -> None:
        assert self.map is not None, "rule not bound"
        converters = tuple(self.map.converters.items())
        key = (self.rule, self.host, self.subdomain, self.map.host_matching, self.merge_slashes, converters)
        parsed = _PARSED.get(key)
        if parsed is None:
            self._asked: list[tuple[str, str, tuple[Any, ...], Mapping[str, Any]]] = []
            try:
                super().compile()
                _PARSED[key] = (tuple(self._parts), tuple(self._trace), tuple(self._asked))
            finally:
                del self._asked
            return
        parts, trace, asked = parsed
        self._parts, self._trace, self._converters = list(parts), list(trace), {}
        for variable, name, args, kwargs in asked:  # as `_parse_rule` does, in the rule's order
            self._converters[variable] = super().get_converter(variable, name, args, kwargs)
            self.arguments.add(variable)
        self._build = self._compile_builder(False).__get__(self, None)
        self._build_unknown = self._compile_builder(True).__get__(self, None)

    def get_converter(
        self, variable_name: str, converter_name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> BaseConverter:
        asked = getattr(self, "_asked", None)
        if asked is not None:  # parsing the rule: the converters it asks for are kept with its parts
            asked.append((variable_name, converter_name, args, kwargs))
        return super().get_converter(variable_name, converter_name, args, kwargs)

    def _compile_builder(self, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
        defaults = self.defaults or {}
        if defaults and any(
            dynamic and part in defaults for dynamic, part in self._trace
        ):  # a default's value is compiled in
            return super()._compile_builder(append_unknown)
        key = (self.rule, tuple(self._trace), tuple(str(name) for name in defaults), append_unknown)
        if key not in _BUILDERS:
            _BUILDERS[key] = super()._compile_builder(append_unknown)
        return _BUILDERS[key]


_BUILDERS: dict[tuple[object, ...], Callable[..., tuple[str, str]]] = {}
_PARSED: dict[tuple[object, ...], tuple[tuple[RulePart, ...], tuple[tuple[bool, str], ...], tuple[Any, ...]]] = {}


class CompiledTemplates(BytecodeCache):
    """Templates compiled once per process, as the URL builders above: every app of a process has the
    same template environment (`create_app`'s extensions and options), so a template's code, found by
    its name and its source's checksum, serves them all. Compiling the console's templates is most of
    the time its first pages take; the code objects are the templates' own, so one app costs nothing more."""

    def __init__(self) -> None:
        self._code: dict[tuple[str, str], CodeType] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get((bucket.key, bucket.checksum))
        if code is not None:
            bucket.code = code

    def dump_bytecode(self, bucket: Bucket) -> None:
        if bucket.code is not None:
            self._code[(bucket.key, bucket.checksum)] = bucket.code


class Sessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, opened without building the cookie's signer when the request
    carries no session cookie (every webhook of the platforms, every API call): an empty session,
    as Flask's own gives then."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        cookies = "HTTP_COOKIE" in request.environ  # no header: no cookies to parse
        if app.secret_key and (not cookies or self.get_cookie_name(app) not in request.cookies):
            return self.session_class()
        return super().open_session(app, request)


class App(Flask):
    """Flask, its rules' URL builders and its templates' code shared by every app of the process; a
    request's form read in one pass (`forms`), and its one-statement reads and writes sharing one
    connection (`storage.db.one_connection`)."""

    url_rule_class = Rule
    request_class = forms.Request
    jinja_options = {"bytecode_cache": CompiledTemplates()}  # noqa: RUF012 (Flask's own class attribute)
    session_interface = Sessions()

    by_path: frozenset[str] = frozenset()  # the endpoints `fixed_rules` may route (`webhook_app`'s)
    _fixed: dict[tuple[str, str], WerkzeugRule] | None = None

    def wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        with one_connection(self.extensions["sewamitra"].engine):
            rule = self.fixed_rules().get((environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")))
            if rule is None:
                return super().wsgi_app(environ, start_response)
            return self._answer(rule, environ, start_response)

    def _answer(self, rule: WerkzeugRule, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """Flask's `wsgi_app` for a request `fixed_rules` routes (every webhook of a call), less the
        steps that have nothing to do for it: each hook, signal and the session's save is taken only
        where something is registered for it or the session was touched, the view called as itself
        (none is a coroutine), and a plain answer sent as it is (`_sent`). That took 11–19 µs off each
        menu turn's 245–395 in one process (`sewamitra bench turns --replays 20`: docs/reliability.md);
        the answer is Flask's, byte for byte (`tests/unit/test_webhook_dispatch.py`)."""
        ctx = self._routed(rule, environ)
        error: BaseException | None = None
        try:
            try:
                ctx.push()
                response = self._dispatched(ctx, rule)
            except Exception as e:
                error = e
                response = self.handle_exception(e)
            except:  # as Flask's: the error is the teardown's, then goes on up
                error = sys.exc_info()[1]
                raise
            return _sent(response, environ, start_response)
        finally:
            if "werkzeug.debug.preserve_context" in environ:  # a test client's `with`, as Flask's
                environ["werkzeug.debug.preserve_context"](_cv_app.get())
                environ["werkzeug.debug.preserve_context"](_cv_request.get())
            if error is not None and self.should_ignore_error(error):
                error = None
            ctx.pop(error)

    def _dispatched(self, ctx: RequestContext, rule: WerkzeugRule) -> Response:
        """`full_dispatch_request` for `rule`'s view: the same steps, each only where it has work."""
        self._got_first_request = True
        blueprints = ctx.request.blueprints
        rv: Any = None
        try:
            if request_started.receivers:
                request_started.send(self, _async_wrapper=self.ensure_sync)
            preprocessed = _hooked(self.url_value_preprocessors, blueprints) or _hooked(
                self.before_request_funcs, blueprints
            )
            if preprocessed:
                rv = self.preprocess_request()
            if rv is None:
                rv = self.view_functions[rule.endpoint]()  # a coroutine's rule is not routed here (`_fixed_rules`)
        except Exception as e:
            rv = self.handle_user_exception(e)
        session = ctx._session  # opened by the push
        untouched = session is None or not (session or session.accessed or session.modified)  # nothing to save
        if (
            isinstance(rv, self.response_class)
            and untouched
            and not ctx._after_request_functions
            and not _hooked(self.after_request_funcs, blueprints)
            and not request_finished.receivers
        ):
            return rv
        return self.finalize_request(rv)

    def _routed(self, rule: WerkzeugRule, environ: WSGIEnvironment) -> RequestContext:
        req = self.request_class(environ)
        req.json_module = self.json
        req.url_rule, req.view_args = rule, {}
        return RequestContext(self, environ, request=req)

    def request_context(self, environ: WSGIEnvironment) -> RequestContext:
        """Flask's request context; for a request `fixed_rules` routes, with its rule set on the request,
        so Flask neither binds a URL adapter to the request's host nor matches its path (with the
        signature computed once, a menu turn's CPU 0.94x in `sewamitra bench turns`:
        docs/reliability.md). With no adapter, `url_for` builds no URL in it, and no webhook builds one."""
        rule = self.fixed_rules().get((environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")))
        return super().request_context(environ) if rule is None else self._routed(rule, environ)

    def fixed_rules(self) -> dict[tuple[str, str], WerkzeugRule]:
        """The rules a request's path and method name alone, read once the app serves: each rule of
        `by_path` with a fixed path (no variables, defaults or redirect), by its path and each method it
        answers but OPTIONS (Flask answers that itself), its view no coroutine. Empty when the URL map
        reads more than the path: a server name, trusted hosts, host or subdomain matching."""
        if self._fixed is None:
            self._fixed = (
                {} if self._routes_by_host() else _fixed_rules(self.url_map, self.by_path, self.view_functions)
            )
        return self._fixed

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        if request is not None and request.url_rule is not None:
            return None  # routed by `fixed_rules`: nothing to match, and no webhook builds a URL
        return super().create_url_adapter(request)

    def _routes_by_host(self) -> bool:
        return bool(
            self.config["SERVER_NAME"]
            or self.config["TRUSTED_HOSTS"]
            or self.url_map.host_matching
            or self.subdomain_matching
        )


def _fixed_rules(
    url_map: Map, endpoints: frozenset[str], views: Mapping[str, Callable[..., Any]]
) -> dict[tuple[str, str], WerkzeugRule]:
    fixed: dict[tuple[str, str], WerkzeugRule] = {}
    for rule in url_map.iter_rules():
        coroutine = inspect.iscoroutinefunction(views.get(rule.endpoint))  # left to Flask, which runs it
        if rule.endpoint in endpoints and _fixed(rule) and not coroutine:
            for method in (rule.methods or set()) - {"OPTIONS"}:
                fixed.setdefault((rule.rule, method), rule)
    return fixed


def _hooked(hooks: Mapping[str | None, list[Any]], blueprints: Iterable[str]) -> bool:
    """Whether `hooks` (Flask's, by blueprint, None the app's own) has any for the app or these blueprints."""
    return bool(hooks.get(None)) or any(hooks.get(name) for name in blueprints)


def _sent(response: Response, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """`response(environ, start_response)`, and for a plain answer (200, its body bytes in a list with
    their length given, no location to make absolute, nothing to call at its close, not to a HEAD) that
    answer as it is: Werkzeug would copy its headers, look through them for nothing to change, and
    wrap its body in a generator and a closing iterator, to send the same bytes."""
    body = response.response
    if (
        response.status_code != 200
        or environ.get("REQUEST_METHOD") == "HEAD"
        or response.direct_passthrough
        or response._on_close
        or type(body) is not list
        or not all(type(part) is bytes for part in body)
    ):
        return response(environ, start_response)
    headers = response.headers.to_wsgi_list()
    names = {name.lower() for name, _ in headers}
    if "content-length" not in names or "location" in names or "content-location" in names:
        return response(environ, start_response)
    start_response(response.status, headers)
    return body


def _fixed(rule: WerkzeugRule) -> bool:
    """Whether the path alone is the rule's: no variables, defaults, host, subdomain or redirect."""
    plain = not (rule.arguments or rule.defaults or rule.host or rule.subdomain or rule.websocket)
    return plain and rule.redirect_to is None and rule.rule.isascii()


def create_app(settings: Settings | None = None, clock: Clock = SYSTEM) -> App:
    """The helpline's app, every part of it: the platforms' webhooks, the console and the API; its views
    read the time from `clock` (tests freeze it)."""
    app = webhook_app(settings or load_settings(), clock)
    _add_back_office(app)
    return app


def webhook_app(settings: Settings, clock: Clock = SYSTEM) -> App:
    """The platforms' webhooks (a call's turns, SMS, an officer's call, an agent's browser, a
    supervisor's leg, a call back) and /healthz: what a call needs."""
    # whose webhooks the voice and SMS views answer
    app = _bare_app(settings, Runtime(settings, clock), call_platform(settings))
    platform = settings.telephony.platform
    if not getattr(settings, platform).validate_signatures:
        log.warning(
            "!!! %s signature checks are OFF (%s.validate_signatures=false): local development only !!!",
            platform.capitalize(),
            platform,
        )
    voice.init_app(app, settings)
    app.register_blueprint(voice.bp, url_prefix=voice.voice_root(settings))  # /twilio/voice or /plivo/voice
    app.register_blueprint(officer.bp, url_prefix=f"{voice.voice_root(settings)}/officer")  # an officer's call
    app.register_blueprint(softphone.bp, url_prefix=f"{voice.voice_root(settings)}/client")  # an agent's browser
    app.register_blueprint(monitor.bp, url_prefix=f"{voice.voice_root(settings)}/monitor")  # a supervisor's
    app.register_blueprint(callback_call.bp, url_prefix=f"{voice.voice_root(settings)}/callback")  # call back a caller
    app.register_blueprint(sms.bp, url_prefix=f"/{platform}/sms")
    app.register_blueprint(health.bp)
    # A call's requests are routed by their path alone (`App.fixed_rules`): none of these views builds a URL.
    app.by_path = frozenset(rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint != "static")
    return app


def back_office_app(webhooks: Flask) -> Flask:
    """The console (and /privacy) and the API (and Open311), with the connections, clock and platform
    of `webhooks`' app."""
    runtime: Runtime = webhooks.extensions["sewamitra"]
    app = _bare_app(runtime.settings, runtime, webhooks.extensions["call_platform"])
    _add_back_office(app)
    return app


def _bare_app(settings: Settings, runtime: Runtime, platform: CallPlatform) -> App:
    app = App(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
    )
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops)  # type: ignore[method-assign]
    app.url_map.converters["id"] = RecordId
    app.extensions["sewamitra"] = runtime
    app.extensions["call_platform"] = platform
    for code in (403, 404, 405):
        app.register_error_handler(code, _http_error)
    return app


def _add_back_office(app: Flask) -> None:
    from api import web as api
    from console import web as console

    console.init_app(app)
    api.init_app(app)


class Helpline:
    """What `sewamitra serve` runs in each gunicorn worker: every path `create_app`'s app answers,
    answered alike, by two apps. The webhooks' app (`webhook_app`) is built at start and answers
    the paths of its rules (`/twilio/…` or `/plivo/…`, `/healthz`); the console's and API's
    (`back_office_app`, with the same connections) is built by the first request for any other
    path, and answers them all. A worker that only ever serves calls never loads the console's and
    the API's modules: about 7 MB less at its peak (docs/reliability.md)."""

    def __init__(self, settings: Settings, clock: Clock = SYSTEM, built: Callable[[], None] = lambda: None) -> None:
        self.webhooks = webhook_app(settings, clock)
        self._webhook_roots = frozenset(_root(rule.rule) for rule in self.webhooks.url_map.iter_rules())
        self._back_office: Flask | None = None
        self._building = threading.Lock()
        self._built = built  # called once the back office is built (gunicorn's worker settles its heap)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        app = self.webhooks if _root(environ.get("PATH_INFO", "")) in self._webhook_roots else self.back_office()
        return app(environ, start_response)

    @property
    def back_office_built(self) -> bool:
        return self._back_office is not None

    def back_office(self) -> Flask:
        if self._back_office is None:
            with self._building:
                if self._back_office is None:
                    self._back_office = back_office_app(self.webhooks)
                    self._built()
        return self._back_office


def _root(path: str) -> str:
    """A path's first segment: '/twilio/voice/turn' -> 'twilio', '/healthz' -> 'healthz'."""
    return path.lstrip("/").split("/", 1)[0]


def _http_error(error: HTTPException) -> ResponseReturnValue:
    """A refused, missing or misused path, answered in the language of the part asked: JSON for the
    API, Open311's own errors, the console's pages (plain text elsewhere)."""
    if request.path.startswith("/api/"):
        from api import web as api

        answer = api.http_error(error)
    elif request.path.startswith("/open311/"):
        from api import open311

        answer = open311.http_error(error)
    elif request.path.startswith("/console"):
        from console import web as console

        answer = console.http_error(error)
    else:
        answer = Response(f"{error.name.lower()}\n", status=error.code or 500, mimetype="text/plain")
    response = current_app.make_response(answer)
    if isinstance(error, MethodNotAllowed) and error.valid_methods:  # RFC 9110: a 405 says what is allowed
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response
