"""The Tuner of a sweep: the trainable with its resources, the searcher (Optuna TPE or random,
or a list of points), the scheduler (ASHA or FIFO), and the run settings both phases share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from ray import tune

from dirsearch.sweep.folder import trial_folder_name
from dirsearch.sweep.spec import SweepSpec
from dirsearch.tune.console import SweepConsole
from dirsearch.tune.schedulers import LiveASHAScheduler, LiveFIFOScheduler
from dirsearch.tune.search.bounded_tpe import BoundedHistoryTPESampler
from dirsearch.tune.search.optuna_searcher import TruthfulOptunaSearch
from dirsearch.tune.search.point_searcher import PointSearcher
from dirsearch.tune.trainable import train_configuration

Callbacks = list[tune.Callback]
Say = Callable[[str], None]
"""Where the console's lines go (print by default; a list's append in tests)."""


def print_line(line: str) -> None:
    """The console's default: flushed at once, so a piped log shows progress as it happens."""
    print(line, flush=True)


def trainable_for(spec: SweepSpec, *, repeats: int, evaluate_test: bool) -> Any:
    """The training function with the sweep bound to it and the trial's resources reserved."""
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
    elif search.multi_objective:
        # Optuna's TPE is multi-objective by itself (its good set: the trials of the best
        # non-dominated fronts), and needs far fewer trials than NSGA-II's generations. The
        # bounded view below keeps the best trials by one value, so it stays single-objective:
        # a suggestion here reads the whole study (fine to a few thousand trials).
        sampler = optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=search.searcher.startup_trials,
            multivariate=True,
            group=True,
        )
    else:
        # Multivariate TPE with each conditional sub-space (FDS on / off, ...) modelled
        # separately, over a bounded view of the study so a suggestion costs the same at
        # trial 10,000 as at trial 500.
        sampler = BoundedHistoryTPESampler(
            seed=seed, n_startup_trials=search.searcher.startup_trials
        )
    return TruthfulOptunaSearch(
        spec.space(),
        metrics=search.metrics,
        modes=search.modes,
        max_epochs=spec.epochs,
        sampler=sampler,
        points_to_evaluate=list(spec.points),
    )


def _scheduler(spec: SweepSpec) -> Any:
    scheduler = spec.search.scheduler
    if scheduler.name == "asha":
        return LiveASHAScheduler(
            max_t=spec.epochs,
            grace_period=scheduler.grace_period,
            reduction_factor=scheduler.reduction_factor,
        )
    return LiveFIFOScheduler()


def search_tuner(
    spec: SweepSpec, folder: str, callbacks: Callbacks, say: Say, trainable: Any = None
) -> tune.Tuner:
    """The search's Tuner; ``trainable`` replaces the training one (bench/: a no-op trainable
    measures the platform's own overhead through exactly this searcher and scheduler)."""
    search = spec.search
    return new_tuner(
        spec,
        folder,
        trainable or trainable_for(spec, repeats=search.repeats, evaluate_test=False),
        tune.TuneConfig(
            metric=search.objective,
            mode=search.objective_mode,
            search_alg=_searcher(spec),
            scheduler=_scheduler(spec),
            num_samples=spec.total_trials,
        ),
        callbacks,
        say,
    )


def new_tuner(
    spec: SweepSpec,
    folder: str,
    trainable: Any,
    tune_config: tune.TuneConfig,
    callbacks: Callbacks,
    say: Say,
) -> tune.Tuner:
    """A Tuner writing to ``folder`` (``<root>/<name>``), with the settings every phase shares:
    concurrency, trial folder names, reused actors, failure retries, kept checkpoints, and the
    console."""
    search = spec.search
    tune_config.max_concurrent_trials = search.max_concurrent
    tune_config.trial_dirname_creator = trial_folder_name
    tune_config.reuse_actors = True  # a new worker process per trial costs seconds
    root, name = folder.rsplit("/", 1)
    console = SweepConsole(
        search.objective, search.objective_mode, spec.epochs, tune_config.num_samples, say
    )
    return tune.Tuner(
        trainable,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=name,
            storage_path=root,
            callbacks=[console, *callbacks],
            failure_config=tune.FailureConfig(max_failures=search.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            verbose=0,
        ),
    )


def fit_points(
    spec: SweepSpec, folder: str, points: list[dict[str, Any]], callbacks: Callbacks, say: Say
) -> tune.ResultGrid | None:
    """Train each point once, scored on the test split, as a Tuner of its own in ``folder``
    (the confirm and ablation phases), resumed from Ray's state there when a stopped sweep left
    one; None when it stopped before every point ended."""
    trainable = trainable_for(spec, repeats=1, evaluate_test=True)
    if tune.Tuner.can_restore(folder):
        tuner = tune.Tuner.restore(folder, trainable=trainable, resume_errored=True)
    else:
        config = tune.TuneConfig(search_alg=PointSearcher(points), num_samples=len(points))
        tuner = new_tuner(spec, folder, trainable, config, callbacks, say)
    results = tuner.fit()
    if results.num_terminated + results.num_errors < len(points):
        return None
    return results
