"""Requests."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

bp = Blueprint("requests", __name__, url_prefix="/requests")


@bp.get("")
def index() -> ResponseReturnValue:
    return "requests"
