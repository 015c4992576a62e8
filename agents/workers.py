"""Workers and providers."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

bp = Blueprint("workers", __name__, url_prefix="/workers")


@bp.get("")
def index() -> ResponseReturnValue:
    return "workers"
