"""The confirm phase: the top configurations retrained with fresh seeds in ``confirm/`` (a second
Tuner, so it resumes the same way), ranked by their mean validation metric."""

from __future__ import annotations

import json
from typing import Any

from dirsearch.common.formatting import describe_configuration
from dirsearch.common.objective_mode import sign
from dirsearch.common.seed_statistics import mean_std, or_none
from dirsearch.imbalance.metrics import nested_metrics
from dirsearch.sweep.folder import CONFIRM, CONFIRM_CSV, CONFIRM_MD, write_text
from dirsearch.sweep.records import TrialRecord, read_trials
from dirsearch.sweep.spec import SweepSpec
from dirsearch.sweep.tables import ShotMetrics, csv_text, markdown
from dirsearch.tune.trainable import seeds_of
from dirsearch.tune.tuners import Callbacks, Say, fit_points


def confirm(
    spec: SweepSpec,
    folder: str,
    winners: list[TrialRecord],
    callbacks: Callbacks,
    say: Say,
) -> tuple[list[ShotMetrics], str, dict[str, Any]] | None:
    """Retrain the top configurations with fresh seeds; rank them by mean validation metric.
    Returns the winner's per-seed test metrics, a heading and its overrides, or None if
    interrupted."""
    search = spec.search
    first_fresh = max(seeds_of(spec, w.overrides, search.repeats)[-1] for w in winners) + 1
    fresh = [first_fresh + k for k in range(search.confirm.seeds)]
    points = [{**w.overrides, "seed": seed} for w in winners for seed in fresh]
    confirm_folder = f"{folder}/{CONFIRM}"
    say(f"confirming the top {len(winners)} configurations with seeds {fresh}")
    if fit_points(spec, confirm_folder, points, callbacks, say) is None:
        return None
    groups: dict[str, list[TrialRecord]] = {}
    for record in read_trials(confirm_folder):
        config = {k: v for k, v in record.overrides.items() if k != "seed"}
        groups.setdefault(json.dumps(config, sort_keys=True), []).append(record)
    summaries = [_summary(spec, records) for records in groups.values()]
    summaries.sort(
        key=lambda summary: sign(search.objective_mode) * summary[0][f"{search.objective} mean"]
    )
    rows = [{"rank": i, **row} for i, (row, _, _) in enumerate(summaries, start=1)]
    write_text(f"{folder}/{CONFIRM_MD}", markdown(rows) + "\n")
    write_text(f"{folder}/{CONFIRM_CSV}", csv_text(rows))
    say(f"\nconfirmed with {len(fresh)} fresh seeds:\n{markdown(rows)}")
    row, per_seed, winner = summaries[0]
    return (
        per_seed,
        f"confirmed winner ({row['configuration']}), mean ± std over {len(fresh)} seeds",
        winner,
    )


def _summary(
    spec: SweepSpec, records: list[TrialRecord]
) -> tuple[dict[str, Any], list[ShotMetrics], dict[str, Any]]:
    """One configuration's row (mean ± std of the objective over its seeds, mean test MAE), its
    per-seed test metrics and its overrides."""
    search = spec.search
    overrides = {k: v for k, v in records[0].overrides.items() if k != "seed"}
    finals = [r.history[-1] for r in records if r.history and "test/all/mae" in r.history[-1]]
    objective_mean, objective_std = mean_std(
        r.score(search.objective, search.objective_mode) for r in records
    )
    row = {
        "configuration": describe_configuration(overrides),
        "seeds": len(finals),
        f"{search.objective} mean": objective_mean,
        f"{search.objective} std": or_none(objective_std),
        "test/few/mae mean": or_none(mean_std(f["test/few/mae"] for f in finals)[0]),
        "test/all/mae mean": or_none(mean_std(f["test/all/mae"] for f in finals)[0]),
    }
    return row, [nested_metrics(final, "test") for final in finals], overrides
