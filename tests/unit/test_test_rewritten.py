"""The controller of a split run rewrites the test modules' assertions before the workers start
(tests/rewritten.py): the code it keeps is the code pytest's own import would keep and read."""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.assertion.rewrite import _read_pyc

from tests import rewritten

MODULE = "def test_it():\n    answer = 41\n    assert answer == 42\n"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("sys.dont_write_bytecode", False)  # as under `make test`
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "test_one.py").write_text(MODULE)
    (tmp_path / "conftest.py").write_text("")
    (tmp_path / "helpers.py").write_text("X = 1\n")
    return tmp_path


def test_each_test_module_and_conftest_is_rewritten_once_and_read_back(pytestconfig: pytest.Config, tree: Path) -> None:
    assert rewritten.ahead(pytestconfig, tree) == 2

    module = tree / "deep" / "test_one.py"
    code = _read_pyc(module, rewritten._pyc(module))
    assert code is not None, "pytest's import reads what was kept"
    names = {name for constant in code.co_consts if hasattr(constant, "co_names") for name in constant.co_names}
    assert "@pytest_ar" in names, "the assert was rewritten, so its failure explains itself"
    assert not rewritten._pyc(tree / "helpers.py").exists()  # not a test module: pytest does not rewrite it

    assert rewritten.ahead(pytestconfig, tree) == 0  # kept: nothing to do on the next run


def test_a_module_changed_since_is_rewritten_again(pytestconfig: pytest.Config, tree: Path) -> None:
    rewritten.ahead(pytestconfig, tree)
    module = tree / "deep" / "test_one.py"
    module.write_text(MODULE + "\n\ndef test_more():\n    assert 1\n")

    assert rewritten.ahead(pytestconfig, tree) == 1


def test_nothing_is_kept_where_python_keeps_no_bytecode(
    pytestconfig: pytest.Config, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.dont_write_bytecode", True)

    assert rewritten.ahead(pytestconfig, tree) == 0
    assert not list(tree.rglob("*.pyc"))


def test_a_module_that_does_not_parse_is_left_for_pytest_to_report(pytestconfig: pytest.Config, tree: Path) -> None:
    (tree / "test_broken.py").write_text("def test_it(:\n")

    assert rewritten.ahead(pytestconfig, tree) == 2  # the others
    assert not rewritten._pyc(tree / "test_broken.py").exists()
