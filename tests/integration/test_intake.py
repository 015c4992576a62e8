"""Filing a request: its number, tried by the insert itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dispatch.intake import MAX_NUMBER_DRAWS, insert_request
from tests.factories import add_request, request_of

pytestmark = pytest.mark.both_databases


def values_of_a_request(engine: sa.Engine, request_id: int) -> dict[str, object]:
    """What a filing inserts, but the number: another request's, at the same place for the same caller."""
    request = request_of(engine, request_id)
    names = ("service_code", "pincode", "district", "latitude", "longitude", "caller_id", "created_at")
    return {name: getattr(request, name) for name in names}


def test_a_drawn_number_another_request_has_is_passed_over_for_the_next(engine: sa.Engine) -> None:
    first = add_request(engine)
    taken = request_of(engine, first).number
    draws: Iterator[str] = iter([taken, taken, "2000004"])
    with engine.begin() as connection:
        request_id, number = insert_request(connection, values_of_a_request(engine, first), lambda: next(draws))
    assert number == "2000004"
    assert request_of(engine, request_id).number == "2000004"
    assert request_of(engine, first).number == taken  # the other request is as it was


def test_no_free_number_in_every_draw_fails_the_filing_and_adds_nothing(engine: sa.Engine) -> None:
    first = add_request(engine)
    taken = request_of(engine, first).number
    values = values_of_a_request(engine, first)
    refused = f"no free request number found in {MAX_NUMBER_DRAWS} draws"
    with pytest.raises(RuntimeError, match=refused), engine.begin() as connection:
        insert_request(connection, values, lambda: taken)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM service_request")).scalar() == 1
