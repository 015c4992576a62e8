"""The live queue."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

bp = Blueprint("queue", __name__, url_prefix="/queue")


@bp.get("")
def live() -> ResponseReturnValue:
    return "queue"
