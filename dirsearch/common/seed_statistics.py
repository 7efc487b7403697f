"""Mean and spread of one metric over the seeds of a configuration."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable


def mean_std(values: Iterable[object]) -> tuple[float, float]:
    """(mean, sample std) over the finite numbers among ``values``; NaN where they are too few
    (no finite value: no mean; one: no spread). An empty shot region has no value per seed, and
    it must not turn the mean over the other seeds into NaN."""
    finite = [float(v) for v in values if _is_finite_number(v)]
    mean = statistics.fmean(finite) if finite else math.nan
    std = statistics.stdev(finite) if len(finite) > 1 else math.nan
    return mean, std


def or_none(value: float) -> float | None:
    """NaN (too few seeds for a value) as None: an empty CSV cell and '-' in a table, not 'nan'."""
    return None if math.isnan(value) else value


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
