"""The soak's citizens: they rate jobs low enough to book rework visits during the load, and from the
drain on rate above the rework threshold, so that the drain waits only for what the load left."""

from __future__ import annotations

import random
from typing import Any

from core.settings import load_settings
from devtools.soak.people import Manner, People


def _people() -> People:
    nobody: Any = None  # a rating reaches neither the helpline nor the sandbox
    return People(wire=nobody, engine=nobody, sandbox=nobody, rng=random.Random(155330), manner=Manner())


def test_citizens_rate_one_to_five_during_the_load() -> None:
    people = _people()

    ratings = {int(people._rating()) for _ in range(500)}

    assert ratings == {1, 2, 3, 4, 5}


def test_from_the_drain_no_rating_books_a_rework_visit() -> None:
    threshold = load_settings().rework.threshold_rating
    people = _people()
    people.draining = True

    ratings = {int(people._rating()) for _ in range(500)}

    assert min(ratings) > threshold
    assert max(ratings) == 5
