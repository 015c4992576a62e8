"""Helpers for console tests: users of each role, and a browser-like client that signs in and
sends the session's CSRF token with every form, as the console's own pages do."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select
from werkzeug.test import TestResponse

from storage.db import session_scope
from storage.models import Provider, Role, User
from storage.users import create_user
from tests.factories import engine_of

PASSWORD = "correct horse battery"
# The users tests make by the hundred: scrypt at 1/32 of the helpline's cost (storage.users.HASHING,
# which test_users pins and every user made through the console or the CLI gets); sign-in reads the
# cost from the hash, so it checks these as it checks any.
QUICK_HASHING = "scrypt:1024:8:1"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def add_user(
    engine: sa.Engine, username: str, role: Role, *, provider: str | None = None, phone: str | None = None
) -> User:
    with session_scope(engine) as session:
        if provider and session.exec(select(Provider).where(Provider.name == provider)).first() is None:
            session.add(Provider(name=provider, district="LUCKNOW"))
            session.flush()
        return create_user(
            session,
            username,
            role,
            PASSWORD,
            full_name=username.title(),
            phone=phone,
            provider=provider,
            hashing=QUICK_HASHING,
        )


class Console:
    """One person at the console: a test client with a cookie jar, signing in like a browser."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        self.csrf = ""

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        response = self.client.get(path, **kwargs)
        found = TOKEN.search(response.get_data(as_text=True))
        if found:
            self.csrf = found.group(1)
        return response

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> TestResponse:
        """A form sent from a console page: with the token the page carried."""
        if not self.csrf:
            self.get("/console/sign-in")
        return self.client.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kwargs)

    def sign_in(self, username: str, password: str = PASSWORD) -> TestResponse:
        self.get("/console/sign-in")
        response = self.post("/console/sign-in", {"username": username, "password": password})
        # Signing in starts a new session, with a token of its own: the sign-in page (public, and the
        # console's lightest) carries it, so no test pays for the role's home page it does not look at.
        self.get("/console/sign-in")
        return response


def page(response: TestResponse) -> str:
    """The HTML of a console page as the test's client got it."""
    return response.get_data(as_text=True)


def rows(app: Flask, model: type) -> list[Any]:
    with Session(engine_of(app)) as session:
        return list(session.exec(select(model)).all())


def signed_in(app: Flask, username: str, role: Role) -> Console:
    """A console user of `role`, added and signed in."""
    add_user(app.extensions["sewamitra"].engine, username, role)
    console = Console(app)
    assert console.sign_in(username).status_code == 302  # signed in: on to the role's home page
    return console
