"""Search trials scored on the balanced test split from their checkpoints, as Ray tasks that run
side by side (each where a trial's resources are: a GPU node on a cluster)."""

from __future__ import annotations

from typing import Any

import ray

from dirsearch.sweep.records import TrialRecord
from dirsearch.sweep.spec import SweepSpec
from dirsearch.sweep.tables import ShotMetrics
from dirsearch.tune.trainable import evaluate_on_test


def evaluate_trials(
    spec: SweepSpec, trials: list[TrialRecord], checkpoints: dict[str, Any]
) -> dict[str, list[ShotMetrics]]:
    """Trial id -> the test metrics of each of its seeds' best weights; each trial once."""
    search = spec.search
    task = ray.remote(evaluate_on_test).options(
        num_cpus=search.resources.cpu, num_gpus=search.resources.gpu
    )
    sweep = spec.to_dict()
    pending = {
        trial.trial_id: task.remote(
            sweep, trial.overrides, search.repeats, checkpoints[trial.trial_id]
        )
        for trial in trials
    }
    return dict(zip(pending, ray.get(list(pending.values())), strict=True))
