"""The Pareto front of a sweep with several objectives: the trials no other trial beats on
every objective at once.

A trial's objectives are read at one epoch: the one where its first objective is best, which
is the epoch whose checkpoint the sweep keeps and scores on test. Only trials that ran every
epoch are compared (a stopped trial's early epoch is no fair comparison), unless none did:
then every trial with finite objectives is. ASHA stops trials on the first objective, so a
trial that is poor on it rarely runs to the end, whatever its other objectives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dirsearch.common.objective_mode import sign
from dirsearch.sweep.records import TrialRecord
from dirsearch.sweep.spec import SweepSpec
from dirsearch.sweep.statuses import COMPLETED


def pareto_optimal(points: Sequence[Sequence[float]], modes: Sequence[str]) -> list[bool]:
    """Whether each point is on the front: no other point is at least as good on every
    objective and better on one. Equal points are all on it. One numpy pass per point, so
    10,000 trials take about a second."""
    if not points:
        return []
    signs = np.array([sign(mode) for mode in modes], dtype=float)
    costs = np.asarray(points, dtype=float) * signs  # every objective to minimise
    optimal = []
    for cost in costs:
        no_worse = np.all(costs <= cost, axis=1)
        better = np.any(costs < cost, axis=1)
        optimal.append(not bool(np.any(no_worse & better)))
    return optimal


@dataclass(frozen=True)
class Front:
    """The trials compared for the front, their objective values, and which are optimal."""

    compared: list[TrialRecord]
    """Trials that ran every epoch (or every scored one when none did), in trial order."""
    values: dict[str, tuple[float, ...]]
    """Trial id -> its objectives at the epoch where the first is best."""
    optimal: list[TrialRecord]
    """The Pareto-optimal trials, best first by the first objective."""

    def is_optimal(self, record: TrialRecord) -> bool:
        return any(record.trial_id == other.trial_id for other in self.optimal)


def objective_values(
    record: TrialRecord, metrics: Sequence[str], modes: Sequence[str]
) -> tuple[float, ...] | None:
    """Every objective at the epoch where the first is best; None if any is missing."""
    row = record.best(metrics[0], modes[0])
    if row is None:
        return None
    values = tuple(row.get(metric) for metric in metrics)
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        return None
    return tuple(float(v) for v in values)


def pareto_front(
    records: Sequence[TrialRecord], metrics: Sequence[str], modes: Sequence[str], epochs: int
) -> Front:
    """The front over the trials that ran every epoch (every scored one if none did)."""
    values = {}
    for record in records:
        read = objective_values(record, metrics, modes)
        if read is not None:
            values[record.trial_id] = read
    scored = [record for record in records if record.trial_id in values]
    complete = [record for record in scored if record.status(epochs) == COMPLETED]
    compared = complete or scored
    flags = pareto_optimal([values[record.trial_id] for record in compared], modes)
    optimal = [record for record, flag in zip(compared, flags, strict=True) if flag]
    optimal.sort(key=lambda r: (sign(modes[0]) * values[r.trial_id][0], r.number))
    return Front(compared, {r.trial_id: values[r.trial_id] for r in compared}, optimal)


def sweep_front(records: Sequence[TrialRecord], spec: SweepSpec) -> Front | None:
    """The sweep's Pareto front, or None for a single objective (nothing to compare)."""
    search = spec.search
    if not search.multi_objective:
        return None
    return pareto_front(records, search.metrics, search.modes, spec.epochs)
