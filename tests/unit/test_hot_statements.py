"""The statements a call's turns run on psycopg's own cursor are compiled for it, not left to SQLAlchemy's
execution: a bind SQLAlchemy rewrites as it runs (an expanding IN, a literal) would send one of them
back to the slower path without a word (`storage.db.rows_of`)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import psycopg

from dispatch import intake, notice
from ivr import effects
from storage import db

HOT = {
    "who rings (the call's first request)": effects._WHO_RINGS,
    "a first caller's language turn": notice._first_call(),
    "a booking's filing": intake._filing(),
    "the tracking menu's open requests": effects._OPEN_REQUESTS,
    "a request looked up by its number": effects._REQUEST_BY_NUMBER,
}


@pytest.mark.parametrize("statement", HOT.values(), ids=HOT.keys())
def test_a_hot_statement_runs_on_the_cursor(statement: sa.Executable) -> None:
    form = db._cursor_form(statement, psycopg.dialect())
    assert form is not None
    assert "%(" in form.sql  # psycopg's named parameters, filled from the values given


def test_a_statement_whose_binds_sqlalchemy_rewrites_is_left_to_it() -> None:
    table = sa.table("t", sa.column("id", sa.Integer))
    expanding = sa.select(table.c.id).where(table.c.id.in_([1, 2]))
    assert db._cursor_form(expanding, psycopg.dialect()) is None
