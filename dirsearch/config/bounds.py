"""Sane limits of a trial config's numbers, checked before anything is built from them.

A number far beyond any real run (``epochs: 10^20``, ``image_size: 100000``, a bin count of a
billion) validates by type but hangs or exhausts memory once training allocates for it, and
an integer too large for a float turns the cross-field rules' arithmetic into a traceback. The
limits are far above what any of the paper's recipes use; each message says the limit. (Floats
are already finite: the loader refuses inf and NaN.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dirsearch.common.formatting import shortened
from dirsearch.config.problems import Problems
from dirsearch.config.trial import TrialConfig

MAX_SEED = 2**53
"""Seeds (and ``seed + k`` for the repeats) stay exact in JSON and in every RNG's range."""


@dataclass(frozen=True)
class Limit:
    """``value <= high`` at ``path`` (and ``low <= value`` where no rule checks it already)."""

    path: str
    high: float
    why: str = ""
    low: float | None = None


LIMITS = (
    Limit("seed", MAX_SEED, "seeds stay exact in JSON", low=-MAX_SEED),
    Limit("data.seed", MAX_SEED, "seeds stay exact in JSON", low=-MAX_SEED),
    Limit("data.scale", 100, "1.2 million samples"),
    Limit("data.image_size", 4096),
    Limit("data.num_workers", 256),
    Limit("data.bins.count", 100_000),
    Limit("data.bins.start", 1e15, low=-1e15),
    Limit("data.bins.width", 1e15),
    Limit("model.dropout", 1, "a probability", low=0),
    Limit("train.epochs", 100_000),
    Limit("train.batch_size", 1_048_576),
    Limit("train.lr", 1e6, "a run meant to diverge uses 1e6"),
    Limit("train.weight_decay", 10),
    Limit("train.schedule.gamma", 1e12, "a schedule meant to diverge uses 1e9"),
    Limit("imbalance.lds.ks", 1001),
    Limit("imbalance.fds.ks", 1001),
    Limit("imbalance.fds.start_update", 100_000),
    Limit("imbalance.fds.start_smooth", 100_000),
)
"""The rules (``rules.py``) give the real lower limits (epochs >= 1, ks odd and positive, ...)
with their own messages."""
MAX_LAYER_WIDTH = 65_536
MAX_LAYERS = 64


def _bound(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() and abs(value) < 1e18 else f"{value:g}"


def _shown(value: float) -> str:
    try:
        return shortened(str(value), 40)
    except ValueError:  # an integer of more digits than Python prints
        return "a number too long to show"


def number_value(value: Any) -> float | None:
    """``value`` as a float, or None when it is no number or too large for one (a YAML integer
    can have thousands of digits)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def is_finite_number(value: Any) -> bool:
    number = number_value(value)
    return number is not None and math.isfinite(number)


def _value_at(config: TrialConfig, path: str) -> Any:
    value: Any = config
    for key in path.split("."):
        value = getattr(value, key, None)
    return value


def within_limits(config: TrialConfig, problems: Problems) -> bool:
    """Add a problem for every number beyond its limit; True when there was none."""
    before = len(problems.lines)
    for limit in LIMITS:
        value = _value_at(config, limit.path)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue  # None (optional), or a value another check refuses
        number = number_value(value)
        shown = _shown(value)
        if number is None or number > limit.high:
            why = f" ({limit.why})" if limit.why else ""
            problems.add(limit.path, f"must be at most {_bound(limit.high)}{why}, got {shown}")
        elif limit.low is not None and number < limit.low:
            problems.add(limit.path, f"must be at least {_bound(limit.low)}, got {shown}")
    widths = config.model.mlp_hidden
    if len(widths) > MAX_LAYERS or any(not 1 <= width <= MAX_LAYER_WIDTH for width in widths):
        problems.add(
            "model.mlp_hidden",
            f"at most {MAX_LAYERS} layers of 1 to {MAX_LAYER_WIDTH:,} units each",
        )
    return len(problems.lines) == before
