"""Supervisor dashboard."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")


@bp.get("")
def today() -> ResponseReturnValue:
    return "dashboard"
