"""Every app of a process shares the parts werkzeug parses its rules into and the URL builders it
compiles for them (most of an app's start): each app still matches and builds every one of its URLs
as werkzeug's own rules do, with converters of its own map."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from werkzeug.exceptions import NotFound
from werkzeug.routing import AnyConverter, IntegerConverter, Map, PathConverter
from werkzeug.routing import Rule as WerkzeugRule

from sewamitra import app as composition
from sewamitra.app import create_app
from tests.factories import AUTH_TOKEN, PLIVO_AUTH_ID, make_settings

PLIVO = {"SEWAMITRA_TELEPHONY__PLATFORM": "plivo", "PLIVO_AUTH_ID": PLIVO_AUTH_ID, "PLIVO_AUTH_TOKEN": AUTH_TOKEN}


def sample(rule: WerkzeugRule) -> dict[str, object]:
    """A value for each of the rule's arguments, with characters that must be quoted, and one unknown."""
    values: dict[str, object] = {"page": "2 of 3"}
    for name, converter in rule._converters.items():
        if isinstance(converter, IntegerConverter):
            values[name] = 7
        elif isinstance(converter, AnyConverter):
            values[name] = sorted(converter.items)[-1]
        elif isinstance(converter, PathConverter):
            values[name] = "hi/a b.mp3"
        else:
            values[name] = "a b/ç"
    return values


def matchable(rule: WerkzeugRule) -> dict[str, object]:
    """`sample`'s values of the rule's own arguments, a segment's without a slash (which it cannot match)."""
    values = sample(rule)
    plain = {
        n for n, c in rule._converters.items() if not isinstance(c, (IntegerConverter, AnyConverter, PathConverter))
    }
    return {n: str(v).replace("/", "-") if n in plain else v for n, v in values.items() if n in rule.arguments}


def as_werkzeug_builds(rule: WerkzeugRule, converters: dict[str, type]) -> WerkzeugRule:
    plain = WerkzeugRule(rule.rule, defaults=rule.defaults, endpoint=rule.endpoint, methods=rule.methods)
    plain.bind(Map(converters=converters))
    return plain


def test_each_app_builds_every_url_as_werkzeugs_own_rules_do(tmp_path: Path) -> None:
    twilio = create_app(make_settings(tmp_path))
    plivo = create_app(make_settings(tmp_path, **PLIVO))
    for app in (twilio, plivo):
        converters = dict(app.url_map.converters)
        for rule in app.url_map.iter_rules():
            assert isinstance(rule, composition.Rule)
            plain = as_werkzeug_builds(rule, converters)
            values = sample(rule)
            for unknown in (True, False):
                assert rule.build(values, append_unknown=unknown) == plain.build(values, append_unknown=unknown)


def test_a_second_app_compiles_no_builder_of_its_own(tmp_path: Path) -> None:
    create_app(make_settings(tmp_path))
    compiled = dict(composition._BUILDERS)
    second = create_app(make_settings(tmp_path))
    assert compiled == composition._BUILDERS
    assert len(compiled) >= len(list(second.url_map.iter_rules()))


def test_each_app_parses_its_rules_as_werkzeugs_own_rules_do_with_converters_of_its_own_map(tmp_path: Path) -> None:
    twilio = create_app(make_settings(tmp_path))
    again = create_app(make_settings(tmp_path))
    plivo = create_app(make_settings(tmp_path, **PLIVO))
    for app in (twilio, again, plivo):
        converters = dict(app.url_map.converters)
        adapter = app.url_map.bind("localhost")
        for rule in app.url_map.iter_rules():
            plain = as_werkzeug_builds(rule, converters)
            assert (rule._parts, rule._trace, rule.arguments) == (plain._parts, plain._trace, plain.arguments)
            assert list(rule._converters) == list(plain._converters)
            for mine, theirs in zip(rule._converters.values(), plain._converters.values(), strict=True):
                assert (type(mine), mine.regex, mine.weight) == (type(theirs), theirs.regex, theirs.weight)
                assert mine.map is app.url_map
            values = matchable(rule)
            path = rule.build(values, append_unknown=False)
            assert path is not None
            method = sorted((rule.methods or {"GET"}) - {"HEAD", "OPTIONS"})[0]
            assert adapter.match(unquote(path[1]), method=method) == (rule.endpoint, values)
    for app in (twilio, again):  # a record's id: a positive 32-bit integer, by each app's own converter
        adapter = app.url_map.bind("localhost")
        assert adapter.match("/console/callbacks/7/take", method="POST") == (
            "console.callbacks.take",
            {"callback_id": 7},
        )
        for beyond in ("0", "99999999999"):
            with pytest.raises(NotFound):
                adapter.match(f"/console/callbacks/{beyond}/take", method="POST")


def test_a_second_app_parses_no_rule_of_its_own(tmp_path: Path) -> None:
    create_app(make_settings(tmp_path))
    parsed = dict(composition._PARSED)
    second = create_app(make_settings(tmp_path))
    assert parsed == composition._PARSED
    assert len(parsed) >= len(list(second.url_map.iter_rules()))


def test_a_call_request_routed_by_its_path_alone_gets_the_rule_werkzeug_matches(tmp_path: Path) -> None:
    for settings in (make_settings(tmp_path), make_settings(tmp_path, **PLIVO)):
        platform = settings.telephony.platform
        for app in (composition.webhook_app(settings), create_app(settings)):
            fixed = app.fixed_rules()
            adapter = app.url_map.bind("localhost")
            assert fixed[(f"/{platform}/voice/step", "POST")].endpoint == "voice.step"
            assert fixed[("/healthz", "HEAD")].endpoint == "health.healthz"
            for (path, method), rule in fixed.items():
                assert adapter.match(path, method=method, return_rule=True) == (rule, {})
            assert {rule.endpoint for rule in fixed.values()} <= composition.webhook_app(settings).by_path
            assert not any(rule.endpoint.startswith(("console", "api", "open311")) for rule in fixed.values())


def test_a_request_the_path_alone_does_not_route_is_flasks_to_answer(tmp_path: Path) -> None:
    client = composition.webhook_app(make_settings(tmp_path)).test_client()
    wrong_method = client.get("/twilio/voice/step")
    assert wrong_method.status_code == 405
    assert set(wrong_method.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    assert client.post("/twilio/voice/step/").status_code == 404
    assert client.post("/twilio/voice/nowhere").status_code == 404


def test_trusted_hosts_are_checked_by_flask_on_every_request(tmp_path: Path) -> None:
    app = composition.webhook_app(make_settings(tmp_path))
    app.config["TRUSTED_HOSTS"] = ["helpline.example.org"]
    assert app.fixed_rules() == {}
    assert app.test_client().post("/twilio/voice/step", base_url="http://elsewhere.example.org").status_code == 400


def test_no_view_routed_by_its_path_builds_a_url(tmp_path: Path) -> None:
    """A request routed by its path has no URL adapter, so `url_for` would fail in it: the views
    `webhook_app` routes so come from modules that never call it."""
    app = composition.webhook_app(make_settings(tmp_path))
    modules = {sys.modules[app.view_functions[endpoint].__module__] for endpoint in app.by_path}
    assert {module.__name__ for module in modules} >= {"ivr.voice", "ivr.sms", "sewamitra.health"}
    for module in modules:
        assert "url_for" not in inspect.getsource(module), module.__name__
