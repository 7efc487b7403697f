"""The ``space:`` section read into dimensions: each one's kind and bounds, its ``when``
conditions, and every value it can take held to the rules of a fixed value (by building the trial
config it would give)."""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

from dirsearch.common.formatting import brief, format_setting, shortened
from dirsearch.config.bounds import is_finite_number
from dirsearch.config.fields import all_paths, field_at
from dirsearch.config.files import trial_config_from_dict
from dirsearch.config.loader import unknown_key_message
from dirsearch.config.problems import Problems
from dirsearch.errors import ConfigError
from dirsearch.sweep.dimensions import KINDS, Condition, Dimension, grid_points, grid_size_bound
from dirsearch.sweep.paths import MISSING, get_path, with_overrides

MAX_CHECKED_INTEGERS = 64
"""An int dimension with at most this many values has each value checked (odd ks and such)."""


DIMENSION_KEYS = (*KINDS, "when", "step", "log")
MAX_GRID_POINTS = 10_000
"""Points a grid may have (each one a trial)."""
MAX_CHOICES = 1000
"""Values one choice dimension may list: each is checked by building its trial config (about a
millisecond each)."""


def _parse_condition(raw: Any, key: str, problems: Problems) -> list[Condition]:
    if isinstance(raw, str):
        return [Condition(raw, (True,))]
    if isinstance(raw, dict) and raw:
        return [
            Condition(str(path), tuple(value) if isinstance(value, list) else (value,))
            for path, value in raw.items()
        ]
    problems.add(
        key,
        f"must be a path that must be true (when: imbalance.fds.enabled) or a mapping of paths "
        f"to the value(s) they must equal (when: {{imbalance.reweight: [inverse, sqrt_inv]}}), "
        f"got {brief(raw)}",
    )
    return []


def read_dimensions(raw: Any, fixed: dict[str, Any], problems: Problems) -> list[Dimension]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        problems.add("space", "must be a mapping of dotted trial paths to dimensions")
        return []
    dimensions: list[Dimension] = []
    for path, body in raw.items():
        key = f"space.{shortened(str(path), 60)}"
        if field_at(str(path)) is None:
            close = difflib.get_close_matches(str(path), all_paths(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.add(key, f"not a field of the trial config{hint}")
            continue
        dimension = _read_dimension(str(path), body, key, problems)
        if dimension is None:
            continue
        conditions = (
            _parse_condition(body["when"], f"{key}.when", problems) if "when" in body else []
        )
        if all(_check_condition(c, f"{key}.when", dimensions, fixed, problems) for c in conditions):
            dimensions.append(dataclasses.replace(dimension, conditions=tuple(conditions)))
    return dimensions


def _read_dimension(path: str, body: Any, key: str, problems: Problems) -> Dimension | None:
    kinds = [kind for kind in KINDS if isinstance(body, dict) and kind in body]
    if len(kinds) != 1:
        problems.add(
            key, f"must be a mapping with exactly one of {', '.join(KINDS)} (and optional when)"
        )
        return None
    for unknown in sorted(set(body) - set(DIMENSION_KEYS), key=str):
        name = shortened(str(unknown), 60)
        problems.add(f"{key}.{name}", unknown_key_message(name, DIMENSION_KEYS))
    (kind,) = kinds
    value = body[kind]
    if kind == "choice":
        if not isinstance(value, list) or not value:
            problems.add(f"{key}.choice", f"must be a non-empty list of values, got {brief(value)}")
            return None
        if len(value) > MAX_CHOICES:
            problems.add(
                f"{key}.choice", f"{len(value):,} values; at most {MAX_CHOICES:,} are allowed"
            )
            return None
        return Dimension(path, kind, values=tuple(value))
    numbers = isinstance(value, list) and len(value) == 2
    numbers = numbers and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    if not numbers:
        problems.add(f"{key}.{kind}", f"must be [low, high], got {brief(value)}")
        return None
    if not all(is_finite_number(v) for v in value):
        problems.add(f"{key}.{kind}", f"low and high must be finite numbers, got {brief(value)}")
        return None
    low, high = value
    problem = None
    if low >= high:
        problem = f"low must be below high, got {brief(value)}"
    elif kind == "loguniform" and low <= 0:
        problem = f"loguniform needs low > 0, got {low}"
    elif kind == "int" and not all(isinstance(v, int) for v in value):
        problem = f"int bounds must be integers, got {brief(value)}"
    if problem:
        problems.add(f"{key}.{kind}", problem)
        return None
    step, log = body.get("step", 1), body.get("log", False)
    if kind != "int" and ("step" in body or "log" in body):
        problems.add(key, "step and log belong to int dimensions (use loguniform for floats)")
        return None
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        problems.add(f"{key}.step", f"must be an integer >= 1, got {brief(step)}")
        return None
    if not isinstance(log, bool) or (log and (step != 1 or low < 1)):
        problems.add(f"{key}.log", "must be true or false; log needs step 1 and low >= 1")
        return None
    return Dimension(path, kind, low=float(low), high=float(high), step=step, log=log)


def _check_condition(
    condition: Condition,
    key: str,
    earlier: list[Dimension],
    fixed: dict[str, Any],
    problems: Problems,
) -> bool:
    """A condition reads a boolean or choice field, fixed or searched by an earlier dimension,
    and compares it with values that field can take."""
    searched = next((d for d in earlier if d.path == condition.path), None)
    found = field_at(condition.path)
    if found is None:
        problems.add(key, f"{shortened(condition.path, 60)} is not a field of the trial config")
        return False
    hint, metadata = found
    if searched is not None and searched.kind == "choice":
        allowed = [get_path({"v": value}, "v") for value in searched.values]
    elif hint is bool:
        allowed = [True, False]
    elif metadata.get("choices"):
        allowed = list(metadata["choices"])
    else:
        problems.add(
            key,
            f"{condition.path} is neither a boolean nor a choice field, nor a choice dimension "
            f"defined above; a condition must read one",
        )
        return False
    later = get_path(fixed, condition.path) is MISSING
    if later:
        problems.add(key, f"{condition.path} is not a field of the trial config")
        return False
    wrong = [value for value in condition.values if value not in allowed]
    if wrong:
        shown = shortened(", ".join(format_setting(value) for value in allowed), 200)
        problems.add(
            key,
            f"{condition.path} never equals {shortened(format_setting(wrong[0]), 60)} "
            f"(allowed: {shown})",
        )
        return False
    return True


def _satisfying(
    dimension: Dimension, dimensions: list[Dimension], fixed: dict[str, Any]
) -> dict[str, Any]:
    """Overrides that make ``dimension`` active: each condition's first allowed value, and
    recursively the conditions of the dimensions those values come from."""
    overrides: dict[str, Any] = {}
    for condition in dimension.conditions:
        parent = next((d for d in dimensions if d.path == condition.path), None)
        if parent is not None:
            overrides.update(_satisfying(parent, dimensions, fixed))
        overrides[condition.path] = condition.values[0]
    return overrides


def check_dimension_values(
    dimensions: list[Dimension],
    fixed: dict[str, Any],
    source: str,
    base: Path,
    problems: Problems,
) -> None:
    """Each value (or bound) a dimension can take must give a valid trial config when its
    conditions hold: the same rules as a fixed value, including impossible combinations."""
    for dimension in dimensions:
        values = dimension.bounds()
        if dimension.kind == "int":
            count = (dimension.high - dimension.low) // dimension.step + 1
            if count <= MAX_CHECKED_INTEGERS and not dimension.log:
                values = list(range(int(dimension.low), int(dimension.high) + 1, dimension.step))
        context = _satisfying(dimension, dimensions, fixed)
        for value in values:
            mapping = with_overrides(fixed, {**context, dimension.path: value})
            try:
                trial_config_from_dict(mapping, source, base)
            except ConfigError as error:
                problems.absorb(
                    error,
                    f"space.{dimension.path}: value {shortened(format_setting(value), 60)} is "
                    f"refused: ",
                )
                break  # one line per dimension is enough to act on


def read_grid(
    dimensions: list[Dimension], fixed: dict[str, Any], problems: Problems
) -> list[dict[str, Any]]:
    """The grid's points, the product of its choice dimensions; a grid of more than
    ``MAX_GRID_POINTS`` is refused, its size known from the choice counts before any point is
    listed (conditions can only make it smaller, so the listing stops past the limit)."""
    bound = grid_size_bound(dimensions)
    points = grid_points(dimensions, fixed, limit=MAX_GRID_POINTS)
    if points is None:
        counts = " x ".join(str(len(dimension.values)) for dimension in dimensions)
        size = f"{bound:,} points ({counts} choices)"
        if any(dimension.conditions for dimension in dimensions):
            size = f"more than {MAX_GRID_POINTS:,} points (up to {size})"
        problems.add(
            "space",
            f"the grid has {shortened(size, 200)}; at most {MAX_GRID_POINTS:,} are allowed: "
            f"fewer choices, or the optuna or random searcher",
        )
        return []
    return points
