"""Caller screens."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

bp = Blueprint("callers", __name__, url_prefix="/callers")


@bp.get("")
def index() -> ResponseReturnValue:
    return "callers"
