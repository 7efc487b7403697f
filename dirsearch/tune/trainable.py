"""The Ray Tune function trainable: a thin adapter over ``trial_epochs``.

It builds the trial's configs (fixed part + sampled overrides, one per seed), resumes from
``tune.get_checkpoint()``, sets torch's thread count to the trial's CPUs (an oversubscribed
intra-op pool was measured ~60x slower), advances the seeds' trainings in lockstep and reports
their mean each epoch with one checkpoint folder holding every seed's (``seed_<k>/``).
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from dirsearch.common.files import link_or_copy
from dirsearch.common.objective_mode import sign
from dirsearch.common.seed_statistics import mean_std
from dirsearch.imbalance import flatten_metrics
from dirsearch.sweep.folder import SEED_FOLDER
from dirsearch.sweep.records import DIVERGED_SENTINEL
from dirsearch.sweep.spec import SweepSpec, spec_from_dict
from dirsearch.train.checkpoint import BEST_MODEL_FILE
from dirsearch.train.evaluator import evaluate_checkpoint
from dirsearch.train.loop import TrialResult, trial_epochs


def seeds_of(spec: SweepSpec, overrides: dict[str, Any], repeats: int) -> list[int]:
    """The seeds a trial trains: its config's seed and the next ``repeats - 1``."""
    base = overrides.get("seed", spec.fixed["seed"])
    return [int(base) + k for k in range(repeats)]


def train_configuration(
    overrides: dict[str, Any], *, spec: dict[str, Any], repeats: int, evaluate_test: bool
) -> None:
    """One Tune trial. ``overrides`` is the trial's config: dotted path -> sampled value."""
    sweep = spec_from_dict(spec)
    torch.set_num_threads(max(1, math.floor(sweep.search.resources.cpu)))
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # one INFO line per checkpoint
    # A folder of this call's own: Ray reuses worker processes (and their working folder) from
    # trial to trial. Reported checkpoints are persisted by tune.report, so it goes at the end.
    workdir = Path(tempfile.mkdtemp(prefix="dirsearch-trial-", dir=Path.cwd()))
    try:
        _train_in(sweep, overrides, repeats, evaluate_test, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _train_in(
    sweep: SweepSpec, overrides: dict[str, Any], repeats: int, evaluate_test: bool, workdir: Path
) -> None:
    seeds = seeds_of(sweep, overrides, repeats)
    configs = [sweep.trial_config(overrides, seed=seed) for seed in seeds]
    restored = _restore(workdir)
    runs = [
        trial_epochs(
            config,
            workdir / SEED_FOLDER.format(k),
            resume_from=None if restored is None else restored / SEED_FOLDER.format(k),
            evaluate_test=evaluate_test,
        )
        for k, config in enumerate(configs)
    ]
    rng_states: list[torch.Tensor | None] = [None] * len(runs)
    last: dict[str, Any] = {}
    while True:
        epochs, results = [], []
        for k, run in enumerate(runs):
            # Each seed keeps its own global torch RNG stream (dropout draws from it), so a seed
            # trains the same in lockstep as alone.
            if rng_states[k] is not None:
                torch.set_rng_state(rng_states[k])
            try:
                epochs.append(next(run))
            except StopIteration as finished:
                results.append(finished.value)
            rng_states[k] = torch.get_rng_state()
        diverged = [result for result in results if result.status == "diverged"]
        if diverged:
            tune.report(_diverged_metrics(last, diverged[0], sweep))
            return
        if results:
            if evaluate_test:
                tune.report({**last, **_test_metrics(results), "status": "completed"})
            return
        last = _mean_metrics([epoch.metrics for epoch in epochs])
        done = int(last["epoch"]) >= sweep.epochs
        last["status"] = "completed" if done else "running"
        _report_with_checkpoint(last, [epoch.checkpoint_dir for epoch in epochs], workdir)


def _restore(workdir: Path) -> Path | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    target = workdir / "restored"
    shutil.rmtree(target, ignore_errors=True)
    return Path(checkpoint.to_directory(str(target)))


def _mean_metrics(per_seed: list[dict[str, float]]) -> dict[str, Any]:
    """Each metric's mean over the seeds (NaN where no seed has a value: an empty region)."""
    return {key: mean_std(m[key] for m in per_seed)[0] for key in per_seed[0]}


def _report_with_checkpoint(metrics: dict[str, Any], folders: list[Path], workdir: Path) -> None:
    """Report with one folder holding each seed's epoch folder (hard links, no copies)."""
    bundle = workdir / "report"
    shutil.rmtree(bundle, ignore_errors=True)
    for k, folder in enumerate(folders):
        shutil.copytree(folder, bundle / SEED_FOLDER.format(k), copy_function=link_or_copy)
    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(bundle)))
    shutil.rmtree(bundle, ignore_errors=True)  # Tune has persisted it by now


def _diverged_metrics(last: dict[str, Any], result: TrialResult, sweep: SweepSpec) -> dict:
    """A finite, clearly marked objective: Optuna records the trial instead of stalling."""
    sentinel = sign(sweep.search.mode) * DIVERGED_SENTINEL
    return {
        **last,
        sweep.search.metric: sentinel,
        "epoch": result.epochs_done,
        "status": "diverged",
        "message": result.message,
    }


def _test_metrics(results: list[TrialResult]) -> dict[str, float]:
    tables = [result.test_metrics for result in results if result.test_metrics is not None]
    return _mean_metrics([flatten_metrics(table, "test") for table in tables])


def evaluate_on_test(
    spec: dict[str, Any], overrides: dict[str, Any], repeats: int, checkpoint: Any
) -> list[dict[str, dict[str, float]]]:
    """Shot metrics on the test split of each seed's best weights in a reported checkpoint
    (a Ray task, so it runs where the trial's resources are: a GPU node on a cluster)."""
    sweep = spec_from_dict(spec)
    torch.set_num_threads(max(1, math.floor(sweep.search.resources.cpu)))
    seeds = seeds_of(sweep, overrides, repeats)
    with checkpoint.as_directory() as folder:
        return [
            evaluate_checkpoint(
                sweep.trial_config(overrides, seed=seed), Path(folder) / SEED_FOLDER.format(k)
            )
            for k, seed in enumerate(seeds)
            if (Path(folder) / SEED_FOLDER.format(k) / BEST_MODEL_FILE).is_file()
        ]
