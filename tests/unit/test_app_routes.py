"""Every app of a process shares the parts werkzeug parses its rules into and the URL builders it
compiles for them (most of an app's start): each app still matches and builds every one of its URLs
as werkzeug's own rules do, with converters of its own map."""

from __future__ import annotations

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
