"""The statistics every benchmark prints: measured values by nearest rank, never interpolated."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(ordered: Sequence[float], p: float) -> float:
    """The nearest-rank percentile: a measured value, never one interpolated between two; 0 if none."""
    if not ordered:
        return 0.0
    return float(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)])


def spread(values: Iterable[float], percentiles: Sequence[int]) -> dict[str, float]:
    """The given percentiles as p50, p99…, and the max: each 0 if nothing was measured."""
    ordered = sorted(values)
    figures = {f"p{p}": percentile(ordered, p) for p in percentiles}
    return figures | {"max": float(ordered[-1]) if ordered else 0.0}


def ratio(top: float, bottom: float) -> float:
    """`top / bottom`, or 0 where nothing was measured to divide by."""
    return top / bottom if bottom > 0 else 0.0
