"""Trials ranked by the (first) objective: the leaderboard rows and the candidates that could
win."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from dirsearch.common.formatting import format_setting
from dirsearch.common.objective_mode import sign
from dirsearch.imbalance.vocabulary import REGIONS
from dirsearch.sweep.pareto import Front
from dirsearch.sweep.records import TrialRecord
from dirsearch.sweep.spec import SweepSpec
from dirsearch.sweep.statuses import COMPLETED


def ranked(records: Iterable[TrialRecord], metric: str, mode: str) -> list[TrialRecord]:
    """Best first; ties keep trial order."""
    return sorted(records, key=lambda r: (sign(mode) * r.score(metric, mode), r.number))


def leaderboard_rows(
    records: list[TrialRecord], spec: SweepSpec, front: Front | None
) -> list[dict[str, Any]]:
    """One row per trial, best first by the first objective: sampled values, status, epochs,
    best val metrics; with several objectives (``front``: ``pareto.sweep_front``) a column per
    objective and whether the trial is on the Pareto front."""
    search = spec.search
    metric, mode = search.objective, search.objective_mode
    searched = sorted({path for record in records for path in record.overrides})
    rows = []
    for rank, record in enumerate(ranked(records, metric, mode), start=1):
        best = record.best(metric, mode) or {}
        row: dict[str, Any] = {
            "rank": rank,
            "trial": record.number,
            "status": record.status(spec.epochs),
            "epochs": record.epochs,
            "best_epoch": int(best["epoch"]) if "epoch" in best else None,
        }
        for path in searched:
            row[path] = format_setting(record.overrides[path]) if path in record.overrides else ""
        for region in REGIONS:
            row[f"val/{region}/mae"] = best.get(f"val/{region}/mae")
        for objective in search.metrics:
            row[objective] = best.get(objective)
        if front is not None:
            row["pareto"] = front.is_optimal(record)
        rows.append(row)
    return rows


def candidates(records: list[TrialRecord], spec: SweepSpec) -> list[TrialRecord]:
    """Trials that could win, best first, one per distinct configuration: those that ran every
    epoch (a stopped trial's early score is no fair comparison), or any scored ones if none did."""
    search = spec.search
    scored = [r for r in records if r.best(search.objective, search.objective_mode) is not None]
    complete = [r for r in scored if r.status(spec.epochs) == COMPLETED]
    unique: dict[str, TrialRecord] = {}
    for record in ranked(complete or scored, search.objective, search.objective_mode):
        unique.setdefault(json.dumps(record.overrides, sort_keys=True), record)
    return list(unique.values())
