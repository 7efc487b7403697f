"""The Ray Tune function trainable: a thin adapter over ``trial_epochs``.

It builds the trial's configs (fixed part + sampled overrides, one per seed), resumes from
``tune.get_checkpoint()``, sets torch's thread count to the trial's CPUs (an oversubscribed
intra-op pool was measured ~60x slower), advances the seeds' trainings in lockstep and reports
their mean each epoch with one checkpoint folder holding every seed's (``seed_<k>/``).

A checkpoint whose ``state.pt`` is unreadable falls back to the trial's checkpoint before it
(Tune keeps two). Every report then names its ``training_iteration`` itself, the epochs done:
Tune would count on from the checkpoint it handed over, one ahead of the epoch trained again,
and ASHA's rungs, Optuna's steps and the sweep's records all count by it. Without a fallback
the number is the one Tune would give.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from pyarrow import fs as pafs
from ray import tune

from dirsearch.common.files import link_or_copy
from dirsearch.common.objective_mode import sign
from dirsearch.common.seed_statistics import mean_std
from dirsearch.imbalance import flatten_metrics
from dirsearch.sweep.folder import SEED_FOLDER
from dirsearch.sweep.records import DIVERGED_SENTINEL
from dirsearch.sweep.spec import SweepSpec, spec_from_dict
from dirsearch.train.checkpoint import BEST_MODEL_FILE, newest_usable, state_problem
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
    restored = _restore(workdir, len(seeds))
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
            # One report after the last epoch that ended (epochs_done: those before it).
            metrics = _diverged_metrics(last, diverged[0], sweep)
            tune.report({**metrics, ITERATION: diverged[0].epochs_done + 1})
            return
        if results:
            if evaluate_test:
                metrics = {**last, **_test_metrics(results), "status": "completed"}
                tune.report({**metrics, ITERATION: results[0].epochs_done + 1})
            return
        last = _mean_metrics([epoch.metrics for epoch in epochs])
        done = int(last["epoch"]) >= sweep.epochs
        last["status"] = "completed" if done else "running"
        _report_with_checkpoint(
            {**last, ITERATION: round(last["epoch"])},
            [epoch.checkpoint_dir for epoch in epochs],
            workdir,
        )


ITERATION = "training_iteration"
"""Tune's count of a trial's reports; kept equal to the epochs done (see the module docs)."""
CHECKPOINT_NAME = re.compile(r"checkpoint_(\d+)")
"""How Tune names a trial's checkpoint folders (``checkpoint_000004``)."""


def _restore(workdir: Path, seeds: int) -> Path | None:
    """The local copy of the checkpoint to continue from: the one Tune hands over, or, when a
    seed's ``state.pt`` in it is unreadable, the trial's newest earlier one that loads (one
    warning line each skipped)."""
    latest = tune.get_checkpoint()
    if latest is None:
        return None
    copies: dict[str, Path] = {}

    def problem(candidate: tune.Checkpoint) -> str | None:
        target = workdir / f"restored_{len(copies)}"
        shutil.rmtree(target, ignore_errors=True)
        folder = copies[candidate.path] = Path(candidate.to_directory(str(target)))
        for k in range(seeds):
            found = state_problem(folder / SEED_FOLDER.format(k))
            if found is not None:
                shutil.rmtree(folder, ignore_errors=True)  # a model's size of disk, not used
                # Named by where it is stored, not by the local copy.
                return found.replace(str(folder), candidate.path, 1)
        return None

    def newest_first() -> Iterator[tune.Checkpoint]:
        yield latest
        yield from reversed(_earlier_checkpoints(latest))

    chosen = newest_usable(newest_first(), problem, lambda candidate: candidate.path)
    return copies[chosen.path]


def _earlier_checkpoints(latest: tune.Checkpoint) -> list[tune.Checkpoint]:
    """The trial's checkpoints older than ``latest`` that its storage still holds (the trial
    folder on a local, shared or object-store file system), oldest first."""
    parent, _, name = latest.path.rstrip("/").rpartition("/")
    match = CHECKPOINT_NAME.fullmatch(name)
    if not parent or match is None:
        return []
    system = latest.filesystem
    found = []
    for info in system.get_file_info(pafs.FileSelector(parent)):
        other = CHECKPOINT_NAME.fullmatch(info.base_name)
        if info.type == pafs.FileType.Directory and other and int(other[1]) < int(match[1]):
            found.append((int(other[1]), info.path))
    return [tune.Checkpoint(path, filesystem=system) for _, path in sorted(found)]


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
    """Finite, clearly marked objectives: Optuna records the trial instead of stalling."""
    search = sweep.search
    sentinels = {
        metric: sign(mode) * DIVERGED_SENTINEL
        for metric, mode in zip(search.metrics, search.modes, strict=True)
    }
    return {
        **last,
        **sentinels,
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
