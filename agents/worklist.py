"""Telecaller worklist."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

bp = Blueprint("worklist", __name__, url_prefix="/worklist")


@bp.get("")
def index() -> ResponseReturnValue:
    return "worklist"
