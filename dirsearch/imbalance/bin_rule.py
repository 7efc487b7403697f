"""Bins chosen from the targets: the rule behind ``data.bins: auto`` and ``dirsearch init``.

LDS, FDS and the shot regions all count training samples per bin, so bins that do not fit the
target's range make them meaningless: with the default width-1 bins a target in 0.0-1.0 lands in
one bin. The rule, in order:

1. Integer targets spanning fewer than ``INTEGER_GRID_LIMIT`` values (ages, counts of a few
   dozen): one bin per integer over the observed range, ``start = min``, width 1 (the paper's
   ages, as DIR has always binned them).
2. Otherwise the smallest readable width (1, 2, 2.5 or 5 times a power of ten; 1, 2 or 5 for
   integer targets, so no integer sits on a fractional edge) that gives at most
   ``TARGET_BINS`` bins over the observed range: 50 to 100 bins, the resolution DIR was
   designed at (AgeDB-DIR's 102, IMDB-WIKI-DIR's 100).
3. The first edge is the largest multiple of the width at or below the smallest target, so the
   edges are readable numbers and coincide with ``floor(target / width)``, the bins of the DIR
   split rule (``data/splits.py``); the last bin holds the largest target.

A given start, width or count is kept and only the others are derived. Pure numpy.
"""

from __future__ import annotations

import math

import numpy as np

from dirsearch.imbalance.bins import EDGE_TOLERANCE, Binning, check_finite

TARGET_BINS = 100
"""Most bins the derived width gives over the observed range."""

INTEGER_GRID_LIMIT = 200
"""Integer targets spanning fewer values than this get one bin per integer."""

READABLE_STEPS = (1.0, 2.0, 2.5, 5.0)
INTEGER_STEPS = (1.0, 2.0, 5.0)


def readable_width(raw: float, integer: bool = False) -> float:
    """The smallest readable number (1, 2, 2.5, 5 x 10^k) at or above ``raw`` (> 0); for integer
    targets 1, 2 or 5 x 10^k with k >= 0."""
    if not (math.isfinite(raw) and raw > 0):
        raise ValueError(f"width must be a finite number > 0; got {raw}")
    steps = INTEGER_STEPS if integer else READABLE_STEPS
    exponent = max(0, math.floor(math.log10(raw))) if integer else math.floor(math.log10(raw))
    while True:
        for step in steps:
            width = _clean(step * 10.0**exponent)
            if width >= raw * (1 - 1e-12):
                return width
        exponent += 1


def auto_binning(
    targets: np.ndarray,
    *,
    start: float | None = None,
    width: float | None = None,
    count: int | None = None,
) -> Binning:
    """Bins for ``targets`` by the module's rule; given ``start``/``width``/``count`` are kept.

    Raises ValueError when there are no targets, or when a width must be derived and the targets
    are all equal (no range to spread) or all at or below a given start.
    """
    values = np.asarray(targets, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("no targets to derive bins from")
    check_finite("targets", values)
    low, high = float(values.min()), float(values.max())
    integer = bool(np.all(values == np.round(values)))
    if width is None:
        first = low if start is None else start
        if count is None and integer and high - first + 1 < INTEGER_GRID_LIMIT:
            return Binning(first, 1.0, max(1, math.floor(high - first + EDGE_TOLERANCE) + 1))
        if high <= low:
            raise ValueError(f"every target equals {low:g}: there is no range to bin")
        if high <= first:
            raise ValueError(f"start {first:g} is not below the largest target {high:g}")
        if count is not None:  # exactly `count` equal bins from the start to the largest target
            return Binning(first, _clean((high - first) / count), count)
        width = readable_width((high - first) / TARGET_BINS, integer)
    if start is None:
        start = _clean(math.floor(low / width + EDGE_TOLERANCE) * width)
    if count is None:
        count = max(1, math.floor((high - start) / width + EDGE_TOLERANCE) + 1)
    return Binning(start, width, count)


def _clean(value: float) -> float:
    """``0.07000000000000001`` -> ``0.07``: twelve significant digits are plenty for an edge."""
    return float(f"{value:.12g}")
