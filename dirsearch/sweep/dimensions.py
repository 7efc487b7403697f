"""Search dimensions over dotted trial-config paths, their conditions, and the Optuna space.

A dimension overrides one field of the fixed trial config (``imbalance.lds.sigma``) per trial.
``SearchSpace`` is the define-by-run function Optuna calls for each trial: it samples the
dimensions in file order and skips those whose ``when`` condition does not hold, so Optuna never
sees a parameter the trial does not use (FDS knobs only with FDS on, and so on). It is a plain
module-level class holding plain data, so Ray can pickle it into its experiment checkpoint.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from typing import Any, Protocol

from dirsearch.common.formatting import format_setting
from dirsearch.sweep.paths import get_path, set_path, with_overrides

KINDS = ("choice", "uniform", "loguniform", "int")


OPTUNA_SCALARS = (type(None), bool, int, float, str)


class Suggester(Protocol):
    """The part of ``optuna.Trial`` a search space uses."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...
    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int: ...


@dataclass(frozen=True)
class Condition:
    """The trial value at ``path`` must be one of ``values`` (``(True,)`` for a bare path)."""

    path: str
    values: tuple[Any, ...]

    def holds(self, mapping: dict[str, Any]) -> bool:
        return get_path(mapping, self.path) in self.values

    def describe(self) -> str:
        if self.values == (True,):
            return self.path
        shown = ", ".join(format_setting(value) for value in self.values)
        return f"{self.path} in [{shown}]" if len(self.values) > 1 else f"{self.path} = {shown}"


@dataclass(frozen=True)
class Dimension:
    """One searched field: ``kind`` with its ``values`` (choice) or bounds (the others)."""

    path: str
    kind: str
    values: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    step: int = 1
    log: bool = False
    conditions: tuple[Condition, ...] = ()

    def active(self, mapping: dict[str, Any]) -> bool:
        return all(condition.holds(mapping) for condition in self.conditions)

    def labels(self) -> list[Any]:
        """Choice values as Optuna stores them: scalars as they are, mappings and lists as
        their JSON text (Optuna's categorical parameters hold only None/bool/int/float/str)."""
        return [label_of(value) for value in self.values]

    def sample(self, trial: Suggester) -> Any:
        if self.kind == "choice":
            label = trial.suggest_categorical(self.path, self.labels())
            return self.values[self.labels().index(label)]
        if self.kind == "int":
            return trial.suggest_int(
                self.path, int(self.low), int(self.high), step=self.step, log=self.log
            )
        return trial.suggest_float(
            self.path, self.low, self.high, log=self.kind == "loguniform" or self.log
        )

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this dimension can produce (for start points)."""
        if self.kind == "choice":
            return label_of(value) in self.labels()
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and (not float(value).is_integer() or (value - self.low) % self.step):
            return False
        return self.low <= value <= self.high

    def bounds(self) -> list[Any]:
        """The values that stand for the dimension when checking the field accepts it."""
        if self.kind == "choice":
            return list(self.values)
        if self.kind == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]

    def describe(self) -> str:
        if self.kind == "choice":
            body = "choice [" + ", ".join(format_setting(value) for value in self.values) + "]"
        elif self.kind == "int":
            step = f" step {self.step}" if self.step != 1 else ""
            body = f"int [{int(self.low)}, {int(self.high)}]{step}{' log' if self.log else ''}"
        else:
            body = f"{self.kind} [{self.low:g}, {self.high:g}]"
        when = " and ".join(condition.describe() for condition in self.conditions)
        return f"{self.path}: {body}" + (f"  (when {when})" if when else "")


class SearchSpace:
    """Optuna's define-by-run space: ``space(trial)`` -> the trial's overrides by dotted path."""

    def __init__(self, fixed: dict[str, Any], dimensions: list[Dimension]) -> None:
        self.fixed = fixed
        self.dimensions = list(dimensions)

    def __call__(self, trial: Suggester) -> dict[str, Any]:
        overrides: dict[str, Any] = {}
        mapping = copy.deepcopy(self.fixed)
        for dimension in self.dimensions:
            if dimension.active(mapping):
                value = dimension.sample(trial)
                overrides[dimension.path] = value
                set_path(mapping, dimension.path, value)
        return overrides

    def optuna_point(self, point: dict[str, Any]) -> dict[str, Any]:
        """A start point in Optuna's parameter encoding (choice values as their labels)."""
        kinds = {dimension.path: dimension for dimension in self.dimensions}
        return {
            path: label_of(value) if kinds[path].kind == "choice" else value
            for path, value in point.items()
        }


def label_of(value: Any) -> Any:
    if isinstance(value, OPTUNA_SCALARS) and not (isinstance(value, float) and math.isnan(value)):
        return value
    return json.dumps(value, sort_keys=True)


def grid_size_bound(dimensions: list[Dimension]) -> int:
    """The product of the choice counts: the grid's size when every condition holds, an upper
    bound otherwise, known without listing a single point."""
    return math.prod(len(dimension.values) for dimension in dimensions)


def grid_points(
    dimensions: list[Dimension], fixed: dict[str, Any], limit: int | None = None
) -> list[dict[str, Any]] | None:
    """Every combination of the (choice) dimensions whose conditions hold; inactive dimensions
    are left out, so combinations that differ only in an unused knob appear once. None as soon
    as there are more than ``limit`` (the listing stops there instead of filling memory)."""
    points: list[dict[str, Any]] = [{}]
    for dimension in dimensions:
        expanded = []
        for point in points:
            if dimension.active(with_overrides(fixed, point)):
                expanded.extend({**point, dimension.path: value} for value in dimension.values)
            else:
                expanded.append(point)
            if limit is not None and len(expanded) > limit:
                return None
        points = expanded
    return points
