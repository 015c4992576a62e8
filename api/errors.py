"""What goes wrong in an API call, said so a program can act on it: a status, a code, and the
fields at fault by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
import sqlalchemy as sa
from pydantic import ValidationError

# The error codes the API answers with, by HTTP status.
CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    500: "internal_error",
    503: "unavailable",
}


RETRY_AFTER_S = 5  # how soon a client may try again after an outage of the database or Redis


class ApiError(Exception):
    """An answer other than success; `fields` names each field at fault and what is wrong with it."""

    def __init__(
        self, status: int, message: str, fields: Mapping[str, str] | None = None, *, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = dict(fields or {})
        self._code = code

    @property
    def code(self) -> str:
        return self._code or CODES.get(self.status, "error")

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"status": self.status, "code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = self.fields
        return {"error": error}


def invalid(fields: Mapping[str, str]) -> ApiError:
    names = ", ".join(sorted(fields))
    return ApiError(400, f"not valid: {names}", fields)


def from_validation(error: ValidationError) -> ApiError:
    """Pydantic's complaints, one per field, in words a developer reads."""
    fields: dict[str, str] = {}
    for problem in error.errors(include_url=False, include_input=False):
        name = ".".join(str(part) for part in problem["loc"]) or "body"
        message = "unknown field" if problem["type"] == "extra_forbidden" else str(problem["msg"])
        fields.setdefault(name, message)
    return invalid(fields)


def unavailable(error: Exception) -> ApiError | None:
    """503 for a database or Redis that cannot be reached this moment (the client should retry), else None."""
    if isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError | redis.ConnectionError | redis.TimeoutError):
        return ApiError(503, "the helpline's database or queue cannot be reached this moment; try again shortly")
    return None
