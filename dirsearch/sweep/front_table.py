"""The table of a sweep's Pareto front: each optimal trial's objectives on the validation split
and its error per region on the balanced test split, best first by the first objective."""

from __future__ import annotations

from typing import Any

from dirsearch.common.formatting import describe_configuration
from dirsearch.common.seed_statistics import mean_std
from dirsearch.imbalance.vocabulary import REGIONS
from dirsearch.sweep.pareto import Front
from dirsearch.sweep.records import TrialRecord
from dirsearch.sweep.statuses import COMPLETED
from dirsearch.sweep.tables import ShotMetrics, markdown

MAX_FRONT_TABLES = 5
"""Pareto-optimal trials scored on test at most: each costs a test pass per seed, and a front
of dozens is read from the plot, not from a table."""


def tested_front(front: Front, epochs: int) -> list[TrialRecord]:
    """The optimal trials that ran every epoch, best first by the first objective, capped."""
    complete = [record for record in front.optimal if record.status(epochs) == COMPLETED]
    return complete[:MAX_FRONT_TABLES]


def front_rows(
    front: Front, metrics: tuple[str, ...], tested: dict[str, list[ShotMetrics]]
) -> list[dict[str, Any]]:
    """One row per tested trial: its objectives (validation) and test MAE per region (mean
    over its seeds)."""
    rows = []
    for record in front.optimal:
        if record.trial_id not in tested:
            continue
        per_seed = tested[record.trial_id]
        row: dict[str, Any] = {
            "trial": record.number,
            "configuration": describe_configuration(record.overrides),
        }
        for metric, value in zip(metrics, front.values[record.trial_id], strict=True):
            row[metric] = value
        for region in REGIONS:
            row[f"test/{region}/mae"] = mean_std(seed[region]["mae"] for seed in per_seed)[0]
        rows.append(row)
    return rows


def front_markdown(front: Front, metrics: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    """The front's table with a heading that says what was compared and read where."""
    compared = len(front.compared)
    heading = (
        f"Pareto front over {', '.join(metrics)}: {len(front.optimal)} of {compared} trials "
        f"compared (those that ran every epoch, if any did) are optimal; each trial's objectives "
        f"are read at its best epoch by {metrics[0]}. Test split (mean over seeds) of the "
        f"{len(rows)} best by {metrics[0]} that ran every epoch:"
    )
    return f"{heading}\n\n{markdown(rows)}\n"
