"""The Ray adapter: a sweep folder, the Tuner (Optuna or grid, ASHA or FIFO), resume, and the
final balanced-test table.

One sweep = one folder ``<storage>/<name>/`` that holds Ray's experiment state and trial
folders, ``sweep.json`` (the resolved spec: resume needs nothing else), a copy of the space
file, and at the end ``leaderboard.{md,csv}`` and ``results.{md,csv}``. With ``confirm`` the
top configurations are retrained with fresh seeds in ``confirm/`` (a second Tuner, so it resumes
the same way) and the table shows mean ± std over them.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import statistics
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from dirsearch.errors import ConfigError
from dirsearch.sweep.dimensions import format_value
from dirsearch.sweep.records import (
    TrialRecord,
    csv_text,
    leaderboard_rows,
    markdown,
    mean_std_table,
    parse_folder_name,
    ranked,
    read_text,
    read_trials,
    trial_folder_name,
    write_text,
)
from dirsearch.sweep.spec import SweepSpec, environment_problems, spec_from_dict
from dirsearch.tune.console import SweepConsole
from dirsearch.tune.search.optuna_searcher import TruthfulOptunaSearch
from dirsearch.tune.search.point_searcher import PointSearcher
from dirsearch.tune.trainable import evaluate_on_test, seeds_of, train_configuration

SPEC_FILE = "sweep.json"
CONFIRM = "confirm"
Callbacks = list[tune.Callback]
Say = Callable[[str], None]


def print_line(line: str) -> None:
    """The console's default: flushed at once, so a piped log shows progress as it happens."""
    print(line, flush=True)


@dataclass(frozen=True)
class FinalResult:
    """What ``finish`` hands to every callback with a ``sweep_finished(result)`` method (the
    MLflow tracker): the sweep's final tables without re-reading them from the folder."""

    rows: list[dict[str, Any]]
    """The leaderboard, best first."""
    records: list[TrialRecord]
    """Every search trial, in trial order."""
    best: TrialRecord | None
    """The winning search trial (None after ``confirm``: the winner is a configuration)."""
    checkpoint: Any
    """The winner's Ray checkpoint (its best weights per seed), or None after ``confirm``."""
    per_seed: list[dict[str, dict[str, float]]]
    """The winner's test metrics per seed: region -> statistic -> value."""
    heading: str


@runtime_checkable
class FinishHook(Protocol):
    def sweep_finished(self, result: FinalResult) -> None: ...


@dataclass(frozen=True)
class SweepOutcome:
    """How ``run``/``resume`` ended: the folder, and whether every trial finished."""

    folder: str
    finished: bool
    table: str = ""


def new_folder(spec: SweepSpec, storage: str | None, name: str | None) -> str:
    """``<storage>/<name>``: storage absolute (Ray requires it) or a URI; the name defaults to
    ``<experiment>-<date-time>``."""
    root = storage or "runs"
    if "?" in root:  # the sweep folder is <storage>/<name>: a query would end up in the middle
        raise ConfigError(
            f"--storage {root}: query parameters are not supported; give the endpoint of an "
            f"S3-compatible store as AWS_ENDPOINT_URL (on every node) and --storage s3://bucket/path"
        )
    if "://" not in root:
        root = str(Path(root).expanduser().resolve())
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{root.rstrip('/')}/{name or f'{spec.experiment}-{stamp}'}"


def start_ray(address: str | None) -> None:
    """A local Ray sized to this machine, or the cluster at ``address``."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
        return
    import torch

    ray.init(
        address="local",
        num_cpus=os.cpu_count(),
        num_gpus=torch.cuda.device_count(),
        include_dashboard=False,
        logging_level=logging.WARNING,
    )


def configure_driver() -> None:
    """Driver-side settings (environment variables the user set win). The experiment state is
    saved at least every second, so a driver killed between two saves loses at most the trials
    it started in that second (Ray's adaptive default can wait much longer). The console shows
    our one line per trial: Ray's tables and banners, Optuna's and MLflow's INFO lines and
    Optuna's experimental-feature warning stay off."""
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    # Checkpointing every epoch of short trials is the point here, not a bottleneck to warn of.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables, no banners
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its schema-creation INFO lines
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def check_cluster(spec: SweepSpec) -> None:
    """Fail before any trial starts when the cluster cannot host one (Ray would leave the
    trials PENDING forever)."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    problems = environment_problems(spec, gpus)
    cpus = resources.get("CPU", 0)
    if spec.search.resources.cpu > cpus:
        problems.append(
            f"{spec.source}: search.resources.cpu: each trial asks for "
            f"{spec.search.resources.cpu:g} CPUs but the cluster has {cpus:g}"
        )
    if problems:
        raise ConfigError("\n".join(problems))


def _trainable(spec: SweepSpec, *, repeats: int, evaluate_test: bool) -> Any:
    resources = {"cpu": spec.search.resources.cpu, "gpu": spec.search.resources.gpu}
    trainable = tune.with_parameters(
        train_configuration, spec=spec.to_dict(), repeats=repeats, evaluate_test=evaluate_test
    )
    return tune.with_resources(trainable, resources)


def _searcher(spec: SweepSpec) -> Any:
    search = spec.search
    if search.searcher.name == "grid":
        return PointSearcher(list(spec.points))
    seed = search.searcher.seed
    sampler: optuna.samplers.BaseSampler
    if search.searcher.name == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        # group=True models each conditional sub-space (FDS on / off, ...) separately.
        sampler = optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=search.searcher.startup_trials,
            multivariate=True,
            group=True,
        )
    return TruthfulOptunaSearch(
        spec.space(),
        metric=search.metric,
        mode=search.mode,
        max_epochs=spec.epochs,
        sampler=sampler,
        points_to_evaluate=list(spec.points),
    )


def total_trials(spec: SweepSpec) -> int:
    return len(spec.points) if spec.search.searcher.name == "grid" else spec.search.num_samples


def search_tuner(
    spec: SweepSpec, folder: str, callbacks: Callbacks, say: Say, trainable: Any = None
) -> tune.Tuner:
    """The search's Tuner; ``trainable`` replaces the training one (bench/: a no-op trainable
    measures the platform's own overhead through exactly this searcher and scheduler)."""
    search = spec.search
    if search.scheduler.name == "asha":
        scheduler: Any = ASHAScheduler(
            max_t=spec.epochs,
            grace_period=search.scheduler.grace_period,
            reduction_factor=search.scheduler.reduction_factor,
        )
    else:
        scheduler = FIFOScheduler()
    root, name = folder.rsplit("/", 1)
    return tune.Tuner(
        trainable or _trainable(spec, repeats=search.repeats, evaluate_test=False),
        tune_config=tune.TuneConfig(
            metric=search.metric,
            mode=search.mode,
            search_alg=_searcher(spec),
            scheduler=scheduler,
            num_samples=total_trials(spec),
            max_concurrent_trials=search.max_concurrent,
            trial_dirname_creator=trial_folder_name,
            reuse_actors=True,  # a new worker process per trial costs seconds
        ),
        run_config=_run_config(spec, root, name, callbacks, total_trials(spec), say),
    )


def _run_config(
    spec: SweepSpec, root: str, name: str, callbacks: Callbacks, total: int, say: Say
) -> Any:
    console = SweepConsole(spec.search.metric, spec.search.mode, spec.epochs, total, say)
    return tune.RunConfig(
        name=name,
        storage_path=root,
        callbacks=[console, *callbacks],
        failure_config=tune.FailureConfig(max_failures=spec.search.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        verbose=0,
    )


def run(
    spec: SweepSpec,
    space_text: str,
    folder: str,
    *,
    callbacks: Callbacks = (),
    say: Say = print_line,
) -> SweepOutcome:
    """Start a sweep in ``folder`` (Ray must be running); returns when it ends or stops."""
    configure_driver()
    write_text(f"{folder}/{SPEC_FILE}", json.dumps(spec.to_dict(), indent=2))
    write_text(f"{folder}/space.yaml", space_text)
    resources = spec.search.resources
    say(
        f"sweep {spec.experiment}: {total_trials(spec)} trials of up to {spec.epochs} epochs, "
        f"{spec.search.max_concurrent} at a time, {resources.cpu:g} CPU "
        f"{resources.gpu:g} GPU each -> {folder}"
    )
    tuner = search_tuner(spec, folder, list(callbacks), say)
    return _fit_and_finish(spec, folder, tuner, list(callbacks), say)


def holds_sweep(folder: str) -> bool:
    return read_text(f"{folder.rstrip('/')}/{SPEC_FILE}") is not None


def load_spec(folder: str) -> SweepSpec:
    text = read_text(f"{folder.rstrip('/')}/{SPEC_FILE}")
    if text is None:
        raise ConfigError(
            f"{folder}: not a sweep folder (no {SPEC_FILE}); give the folder that "
            f"`dirsearch run` printed"
        )
    return spec_from_dict(json.loads(text))


def resume(folder: str, *, callbacks: Callbacks = (), say: Say = print_line) -> SweepOutcome:
    """Continue a sweep whose driver stopped: finished trials stay, running ones continue from
    their checkpoints, and Optuna's and ASHA's state come back from Ray's experiment state."""
    configure_driver()
    folder = folder.rstrip("/")
    spec = load_spec(folder)
    if not tune.Tuner.can_restore(folder):
        raise ConfigError(f"{folder}: Ray's experiment state is missing; the sweep cannot resume")
    say(f"resuming sweep {spec.experiment} in {folder}")
    tuner = tune.Tuner.restore(
        folder,
        trainable=_trainable(spec, repeats=spec.search.repeats, evaluate_test=False),
        resume_errored=True,
    )
    return _fit_and_finish(spec, folder, tuner, list(callbacks), say)


def _fit_and_finish(
    spec: SweepSpec,
    folder: str,
    tuner: tune.Tuner,
    callbacks: Callbacks,
    say: Say,
) -> SweepOutcome:
    results = tuner.fit()
    if results.num_terminated + results.num_errors < total_trials(spec):
        return SweepOutcome(folder, finished=False)
    checkpoints = {parse_folder_name(Path(r.path).name)[1]: r.checkpoint for r in results}
    return finish(spec, folder, checkpoints, callbacks, say)


def finish(
    spec: SweepSpec,
    folder: str,
    checkpoints: dict[str, Any],
    callbacks: Callbacks,
    say: Say,
) -> SweepOutcome:
    """Leaderboard, then the winner on the balanced test split (or the confirm phase)."""
    search = spec.search
    # Only the trials of Ray's experiment: a driver killed before Ray saved its state leaves
    # folders of trials that the resumed sweep ran again under new ids.
    records = [record for record in read_trials(folder) if record.trial_id in checkpoints]
    rows = leaderboard_rows(records, search.metric, search.mode, spec.epochs)
    write_text(f"{folder}/leaderboard.md", markdown(rows) + "\n")
    write_text(f"{folder}/leaderboard.csv", csv_text(rows))
    winners = _candidates(records, spec)
    if not winners:
        raise ConfigError(
            f"{folder}: no trial finished with a finite {search.metric}; see leaderboard.md"
        )
    if search.confirm.top_k > 0:
        outcome = _confirm(spec, folder, winners[: search.confirm.top_k], callbacks, say)
        if outcome is None:
            return SweepOutcome(folder, finished=False)
        per_seed, heading = outcome
    else:
        best = winners[0]
        task = ray.remote(evaluate_on_test).options(
            num_cpus=search.resources.cpu, num_gpus=search.resources.gpu
        )
        per_seed = ray.get(
            task.remote(spec.to_dict(), best.overrides, search.repeats, checkpoints[best.trial_id])
        )
        heading = f"best trial {best.number} ({describe(best.overrides)}), {len(per_seed)} seed(s)"
    table, csv_rows = mean_std_table(per_seed)
    write_text(f"{folder}/results.md", f"{heading}; test split:\n\n{table}\n")
    write_text(f"{folder}/results.csv", csv_text(csv_rows))
    say(f"\n{heading}; test split:\n{table}")
    confirmed = search.confirm.top_k > 0
    final = FinalResult(
        rows,
        records,
        None if confirmed else best,
        None if confirmed else checkpoints[best.trial_id],
        per_seed,
        heading,
    )
    for callback in callbacks:
        if isinstance(callback, FinishHook):
            callback.sweep_finished(final)
    return SweepOutcome(folder, finished=True, table=table)


def describe(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in overrides.items()) or "fixed config"


def _candidates(records: list[TrialRecord], spec: SweepSpec) -> list[TrialRecord]:
    """Trials that could win, best first, one per distinct configuration: those that ran every
    epoch (a stopped trial's early score is no fair comparison), or any scored ones if none did."""
    search = spec.search
    scored = [r for r in records if r.best(search.metric, search.mode) is not None]
    complete = [r for r in scored if r.status(spec.epochs) == "completed"]
    unique: dict[str, TrialRecord] = {}
    for record in ranked(complete or scored, search.metric, search.mode):
        unique.setdefault(json.dumps(record.overrides, sort_keys=True), record)
    return list(unique.values())


def _confirm(
    spec: SweepSpec,
    folder: str,
    winners: list[TrialRecord],
    callbacks: Callbacks,
    say: Say,
) -> tuple[list[dict], str] | None:
    """Retrain the top configurations with fresh seeds; rank them by mean validation metric.
    Returns the winner's per-seed test metrics and a heading, or None if interrupted."""
    search = spec.search
    first_fresh = max(seeds_of(spec, w.overrides, search.repeats)[-1] for w in winners) + 1
    fresh = [first_fresh + k for k in range(search.confirm.seeds)]
    points = [{**w.overrides, "seed": seed} for w in winners for seed in fresh]
    confirm_folder = f"{folder}/{CONFIRM}"
    trainable = _trainable(spec, repeats=1, evaluate_test=True)
    say(f"confirming the top {len(winners)} configurations with seeds {fresh}")
    if tune.Tuner.can_restore(confirm_folder):
        tuner = tune.Tuner.restore(confirm_folder, trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=PointSearcher(points),
                num_samples=len(points),
                max_concurrent_trials=search.max_concurrent,
                trial_dirname_creator=trial_folder_name,
                reuse_actors=True,
            ),
            run_config=_run_config(spec, folder, CONFIRM, callbacks, len(points), say),
        )
    results = tuner.fit()
    if results.num_terminated + results.num_errors < len(points):
        return None
    groups: dict[str, list[TrialRecord]] = {}
    for record in read_trials(confirm_folder):
        config = {k: v for k, v in record.overrides.items() if k != "seed"}
        groups.setdefault(json.dumps(config, sort_keys=True), []).append(record)
    summaries = [_confirm_summary(spec, records) for records in groups.values()]
    sign = 1 if search.mode == "min" else -1
    summaries.sort(key=lambda summary: sign * summary[0][f"{search.metric} mean"])
    rows = [{"rank": i, **row} for i, (row, _) in enumerate(summaries, start=1)]
    write_text(f"{folder}/confirm.md", markdown(rows) + "\n")
    write_text(f"{folder}/confirm.csv", csv_text(rows))
    say(f"\nconfirmed with {len(fresh)} fresh seeds:\n{markdown(rows)}")
    row, per_seed = summaries[0]
    return (
        per_seed,
        f"confirmed winner ({row['configuration']}), mean ± std over {len(fresh)} seeds",
    )


def _confirm_summary(spec: SweepSpec, records: list[TrialRecord]) -> tuple[dict, list[dict]]:
    search = spec.search
    overrides = {k: v for k, v in records[0].overrides.items() if k != "seed"}
    finals = [r.history[-1] for r in records if r.history and "test/all/mae" in r.history[-1]]
    vals = [r.score(search.metric, search.mode) for r in records]
    per_seed = [_nested(final, "test") for final in finals]
    row = {
        "configuration": describe(overrides),
        "seeds": len(finals),
        f"{search.metric} mean": statistics.fmean(vals),
        f"{search.metric} std": statistics.stdev(vals) if len(vals) > 1 else None,
        "test/few/mae mean": statistics.fmean(f["test/few/mae"] for f in finals)
        if finals
        else None,
        "test/all/mae mean": statistics.fmean(f["test/all/mae"] for f in finals)
        if finals
        else None,
    }
    return row, per_seed


def _nested(flat: dict[str, Any], prefix: str) -> dict[str, dict[str, float]]:
    """``{"test/few/mae": x}`` -> ``{"few": {"mae": x}}`` (the inverse of flatten_metrics)."""
    nested: dict[str, dict[str, float]] = {}
    for key, value in flat.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == prefix:
            nested.setdefault(parts[1], {})[parts[2]] = value
    return nested
