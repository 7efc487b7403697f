"""The ways dirsearch writes a value: a metric with three decimals (missing as '-'), a setting
as it would be written in the YAML file, and a value quoted in an error message (cut short)."""

from __future__ import annotations

import math
from typing import Any

MISSING_METRIC = "-"


def format_metric(value: float | None) -> str:
    """Three decimals; a missing value (empty shot region, no score yet) shows as '-', never as a
    number, so a table cannot pass off an absent region as 0 or NaN."""
    if value is None or not math.isfinite(value):
        return MISSING_METRIC
    return f"{value:.3f}"


def format_setting(value: Any) -> str:
    """A value as it would be written in the YAML file (null, true, 0.5, {name: l1})."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        items = ", ".join(f"{key}: {format_setting(item)}" for key, item in value.items())
        return "{" + items + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_setting(item) for item in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def shortened(text: str, limit: int = 80) -> str:
    """``text`` cut to about ``limit`` characters: an error message echoes what it found, and a
    value from a hostile or broken file can be megabytes long."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}... ({len(text):,} characters)"


def brief(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for an error message, cut to about ``limit`` characters (see
    ``shortened``); a value nested too deeply to print is described, not printed."""
    try:
        return shortened(repr(value), limit)
    except RecursionError:
        return f"<a {type(value).__name__} nested too deeply to show>"


def format_overrides(overrides: dict[str, Any]) -> str:
    """A trial's sampled values on one line: ``path=value, ...`` (empty for none)."""
    return ", ".join(f"{path}={format_setting(value)}" for path, value in overrides.items())


def describe_configuration(overrides: dict[str, Any]) -> str:
    """A configuration as the result tables name it: its sampled values, or 'fixed config'."""
    return format_overrides(overrides) or "fixed config"
