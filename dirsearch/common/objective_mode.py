"""Which of two objective values is better under ``mode`` (min or max): the one comparison the
searcher, the console, the leaderboard and the confirm phase all make."""

from __future__ import annotations

import math

MODES = ("min", "max")


def sign(mode: str) -> int:
    """+1 for min, -1 for max: ``sign * value`` sorts best first."""
    return 1 if mode == "min" else -1


def better(value: float, than: float | None, mode: str) -> bool:
    """Whether ``value`` beats ``than`` (None: nothing yet, so any number wins)."""
    return than is None or sign(mode) * value < sign(mode) * than


def worst(mode: str) -> float:
    """The value every real one beats: what a trial without a score ranks as."""
    return sign(mode) * math.inf
