"""Schemathesis reads /api/v1/openapi.json and throws generated calls, valid and not, at every
operation of the JSON API, Open311 and /healthz on the real app (PostgreSQL, Redis): no answer may
be a server error, and every answer must be one the document promises (status, type, schema)."""

from __future__ import annotations

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckFunction
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi import checks as openapi_checks

from storage import tokens
from storage.db import session_scope
from storage.models import ApiRole, Provider
from tests.factories import LUCKNOW_REQUEST, Api, add_worker

# Every check Schemathesis has, but that schema-valid data is always accepted: a PIN code can be
# well formed and unknown to India Post, a phone number well formed and not a real one.
EXCLUDED: list[CheckFunction] = [openapi_checks.positive_data_acceptance]


@pytest.fixture
def admin_token(app: Flask) -> str:
    """An admin's token, and something for it to find: a worker, an agency and a filed request."""
    engine = app.extensions["sewamitra"].engine
    add_worker(engine, "Ramesh Kumar", "+919415000001", km_north=1)
    with session_scope(engine) as session:
        session.add(Provider(name="Gomti Home Services", district="LUCKNOW"))
        secret = tokens.create_token(session, "fuzzer", ApiRole.ADMIN).secret
    assert Api(app, secret).post("/api/v1/requests", LUCKNOW_REQUEST).status_code == 201
    return secret


@pytest.fixture
def api_schema(app: Flask, admin_token: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_generated_call_gets_a_server_error_or_an_answer_the_document_does_not_promise(
    case: schemathesis.Case, admin_token: str, app: Flask
) -> None:
    case.call_and_validate(headers=_auth(case, admin_token), excluded_checks=EXCLUDED)


def _auth(case: schemathesis.Case, secret: str) -> dict[str, str]:
    """The token for /api/v1, unless this case dropped or mangled headers on purpose (then the
    answer must be the refusal)."""
    mangled = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
    return {"Authorization": f"Bearer {secret}"} if case.operation.path.startswith("/api/v1") and not mangled else {}
