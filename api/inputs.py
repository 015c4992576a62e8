"""Reading an API call: a JSON body into a checked model, query parameters one at a time; each
problem a 400 that names its field."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import request
from pydantic import BaseModel, ValidationError
from sqlmodel import Session, select

from api.errors import ApiError, from_validation, invalid
from core import pincodes
from core.text import is_control

Model = TypeVar("Model", bound=BaseModel)
MAX_PAGE = 10_000
PER_PAGE, PER_PAGE_MAX = 50, 200  # a list's rows a page: by default, and at most
KEY_MAX = 64  # an Idempotency-Key's length
TEXT_MAX = 100  # a query parameter's length: district names, phone numbers, dates, lists of codes
View = TypeVar("View", bound=Callable[..., Any])


def only(*names: str) -> Callable[[View], View]:
    """This view takes these query parameters and no others: a misspelt filter is a 400, not silently
    ignored (which would answer with everything)."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            unknown = sorted(set(request.args) - set(names))
            if unknown:
                takes = f"takes {', '.join(names)}" if names else "takes no query parameters"
                raise invalid({name[:40]: f"unknown query parameter; this path {takes}" for name in unknown[:5]})
            return view(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate


def json_body(model: type[Model]) -> Model:
    """The body as `model`: JSON (415 otherwise), an object with no key twice, every field valid."""
    if request.mimetype != "application/json":
        raise ApiError(415, "send the body as JSON (Content-Type: application/json)")
    try:
        raw = json.loads(request.get_data(cache=False).decode("utf-8"), object_pairs_hook=_no_repeats)
    except UnicodeDecodeError:
        raise invalid({"body": "not UTF-8 text"}) from None
    except json.JSONDecodeError as error:
        raise invalid({"body": f"not valid JSON ({error.msg}, at character {error.pos})"}) from None
    except _Repeated as repeated:
        raise invalid({str(repeated): "given more than once"}) from None
    except RecursionError:
        raise invalid({"body": "nested too deeply to be a request"}) from None
    except ValueError:  # a number too long to read (Python reads at most 4,300 digits)
        raise invalid({"body": "holds a number too long to read"}) from None
    if not isinstance(raw, dict):
        raise invalid({"body": "must be a JSON object"})
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise from_validation(error) from None


class _Repeated(Exception):
    """A JSON object named one key twice; the message is the key."""


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _Repeated(key[:60])
        found[key] = value
    return found


def one(name: str) -> str | None:
    """A query parameter given at most once (a repeated one is ambiguous), not empty: else 400."""
    values = request.args.getlist(name)
    if len(values) > 1:
        raise invalid({name: "given more than once"})
    value = values[0] if values else None
    if value is not None and any(is_control(char) for char in value):
        raise invalid({name: "contains control characters"})
    if value is not None and not 0 < len(value) <= TEXT_MAX:
        raise invalid({name: f"give 1 to {TEXT_MAX} characters, or leave the parameter out"})
    return value


def district(state: str) -> str | None:
    """A district of the service area, in any case ('agra'), as India Post spells it ('AGRA')."""
    raw = one("district")
    if raw is None:
        return None
    name = " ".join(raw.split()).upper()
    if name not in pincodes.districts(state):
        raise invalid({"district": f"not a district of {state.title()} (as India Post spells it: Lucknow, Agra…)"})
    return name


def paged(db: Session, query: Any, *order: Any) -> tuple[list[Any], int, int, int]:
    """The page of `query`, in `order`, that the `page` and `per_page` parameters ask for: its rows,
    the page, its size, and how many rows the whole query has."""
    page = whole_number("page", 1, 1, MAX_PAGE)
    per_page = whole_number("per_page", PER_PAGE, 1, PER_PAGE_MAX)
    total = db.execute(select(sa.func.count()).select_from(query.subquery())).scalar_one()
    rows = db.exec(query.order_by(*order).offset((page - 1) * per_page).limit(per_page)).all()
    return list(rows), page, per_page, total


def whole_number(name: str, default: int, lowest: int, highest: int) -> int:
    raw = one(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9 and lowest <= int(raw) <= highest):
        raise invalid({name: f"a whole number from {lowest} to {highest}"})
    return int(raw)


def choices(name: str, allowed: Iterable[str]) -> list[str]:
    """A comma-separated list of values from `allowed` (empty: any)."""
    raw = one(name)
    if raw is None:
        return []
    chosen = [part.strip() for part in raw.split(",") if part.strip()]
    options = sorted(allowed)
    wrong = [part for part in chosen if part not in options]
    if wrong or not chosen:
        raise invalid({name: f"one or more of {', '.join(options)}, separated by commas"})
    return chosen


def flag(name: str) -> bool | None:
    raw = one(name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise invalid({name: "true or false"})
    return raw == "true"


def day_or_moment(name: str, *, end: bool = False) -> datetime | None:
    """A date (its start, or with `end` its end) or a date-time with its zone, in UTC."""
    raw = one(name)
    if raw is None:
        return None
    try:
        if len(raw) == 10:
            moment = datetime.combine(date.fromisoformat(raw), time.max if end else time.min, UTC)
        else:
            moment = datetime.fromisoformat(raw)
    except ValueError:
        raise invalid({name: "a date (2026-12-02) or a date-time with its zone (2026-12-02T10:30:00+05:30)"}) from None
    if moment.tzinfo is None:
        raise invalid({name: "give the time zone too (Z or +05:30)"})
    if not 2000 <= moment.year <= 2100:
        raise invalid({name: "a date from the years 2000 to 2100"})
    return moment.astimezone(UTC)


def idempotency_key() -> str | None:
    """The client's `Idempotency-Key`: the same key sends the same request once."""
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    if not 1 <= len(raw) <= KEY_MAX or not raw.isascii() or not raw.isprintable():
        raise invalid({"Idempotency-Key": f"1 to {KEY_MAX} printable ASCII characters"})
    return raw
