"""Every app of a process shares the URL builders werkzeug compiles for its rules (most of an app's
start): each app still builds every one of its URLs as werkzeug's own rules build them."""

from __future__ import annotations

from pathlib import Path

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
