"""Every app of a process shares its templates' compiled code (most of the time a console page first
takes): a second app compiles none of the first's again, and a template whose source changed is
compiled anew."""

from __future__ import annotations

from pathlib import Path

from jinja2 import DictLoader, Environment

from sewamitra.app import CompiledTemplates, create_app
from tests.factories import make_settings


def test_a_second_app_runs_the_code_the_first_compiled(tmp_path: Path) -> None:
    first = create_app(make_settings(tmp_path)).jinja_env.get_template("console/sign_in.html")
    second = create_app(make_settings(tmp_path)).jinja_env.get_template("console/sign_in.html")
    assert first is not second
    assert second.root_render_func.__code__ is first.root_render_func.__code__


def test_a_changed_source_is_compiled_again() -> None:
    shared = CompiledTemplates()

    def environment(source: str) -> Environment:
        return Environment(loader=DictLoader({"page.html": source}), bytecode_cache=shared, autoescape=True)

    before, after, again = (
        environment("Hello {{ name }}"),
        environment("Goodbye {{ name }}"),
        environment("Hello {{ name }}"),
    )
    assert before.get_template("page.html").render(name="Asha") == "Hello Asha"
    assert after.get_template("page.html").render(name="Asha") == "Goodbye Asha"
    assert again.get_template("page.html").render(name="Asha") == "Hello Asha"
    assert (
        again.get_template("page.html").root_render_func.__code__
        is before.get_template("page.html").root_render_func.__code__
    )
