"""One trial: LDS-weighted, FDS-equipped training of one TrialConfig, in plain PyTorch.

A trial is a function of its config: ``run_trial(config, workdir, report)`` trains, evaluates the
balanced validation split every epoch, writes a checkpoint folder and hands both to ``report``
(the sweep's Ray adapter forwards them to ``tune.report``; the CLI prints them). Giving it the
folder of an earlier report resumes exactly where that epoch ended. Nothing here imports Ray or
MLflow.

Epochs count from 0 inside (FDS's ``start_update`` / ``start_smooth`` are 0-based, as in the
paper's code); reported metrics carry ``epoch`` = epochs completed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

from dirsearch.common.formatting import format_metric
from dirsearch.config.trial import TrialConfig
from dirsearch.imbalance import REGIONS, flatten_metrics
from dirsearch.train import checkpoint
from dirsearch.train.evaluator import Evaluator
from dirsearch.train.fds_statistics import FdsStatistics, fds_statistics
from dirsearch.train.model_setup import ModelSetup, set_up
from dirsearch.train.objective import build_objective
from dirsearch.train.optimisation import Optimisation
from dirsearch.train.rng_streams import RngStreams
from dirsearch.train.training_pass import TrainingDiverged, TrainingPass
from dirsearch.train.trial_state import TrialRecord, TrialState

ReportFn = Callable[[dict[str, float], Path], None]


@dataclass
class TrialResult:
    """How a trial ended and where its best weights are."""

    status: str
    """"completed" or "diverged"."""
    epochs_done: int
    best_epoch: int | None
    best_metrics: dict[str, float]
    checkpoint_dir: Path | None
    message: str = ""
    history: list[dict[str, float]] = field(default_factory=list)
    test_metrics: dict[str, dict[str, float]] | None = None
    """Shot metrics of the best epoch's weights on the test split, when asked for."""


@dataclass
class EpochReport:
    """What one finished epoch hands to its caller: metrics, the checkpoint folder, and whether
    it is the best epoch so far (by ``train.select_metric``)."""

    metrics: dict[str, float]
    checkpoint_dir: Path
    improved: bool


@dataclass(frozen=True)
class Trial:
    """One trial's parts, wired together; ``run_epoch`` is the order they act in."""

    setup: ModelSetup
    training: TrainingPass
    statistics: FdsStatistics
    evaluator: Evaluator
    optimisation: Optimisation
    state: TrialState

    def run_epoch(self, epoch: int) -> dict[str, float]:
        """Train the 0-based ``epoch``, update the FDS statistics and score the validation
        split; returns the epoch's metrics (``lr``: the next epoch's learning rate)."""
        started = time.perf_counter()
        metrics = self.training.run(epoch)
        metrics["time/fds_pass_s"] = self.statistics.end_epoch(epoch)
        metrics.update(flatten_metrics(self.evaluator.evaluate("val"), "val"))
        metrics["lr"] = self.optimisation.lr
        metrics["epoch"] = epoch + 1
        metrics["time/epoch_s"] = time.perf_counter() - started
        return metrics


def build_trial(config: TrialConfig, *, progress: bool = False) -> Trial:
    """The parts of a trial of ``config``, before its first epoch (``progress``: draw a bar)."""
    setup = set_up(config)
    streams = RngStreams.seeded(config.seed)
    objective = build_objective(config, setup, streams)
    optimisation = Optimisation(config.train, setup.model, objective.parameter_groups())
    statistics = fds_statistics(setup, config.imbalance.fds.statistics, streams.fds)
    return Trial(
        setup,
        TrainingPass(
            setup, objective, optimisation, statistics, streams, config.train, progress=progress
        ),
        statistics,
        Evaluator(setup, config.imbalance.shots),
        optimisation,
        TrialState(config, setup.model, objective, optimisation, streams),
    )


def trial_epochs(
    config: TrialConfig,
    workdir: Path,
    *,
    resume_from: Path | None = None,
    progress: bool = False,
    evaluate_test: bool = False,
) -> Generator[EpochReport, None, TrialResult]:
    """Train ``config`` one epoch per ``next()``: each yields the epoch's report after its
    checkpoint folder is complete; the generator returns the TrialResult.

    A generator rather than a callback so that a caller can advance several trials in lockstep
    (the sweep trains repeats of one configuration with several seeds and reports their mean each
    epoch). ``resume_from`` (a reported folder) continues from the end of that epoch;
    ``evaluate_test`` scores the best epoch's weights on the test split at the end."""
    trial = build_trial(config, progress=progress)
    checkpoints = Path(workdir) / "checkpoints"
    record, previous = TrialRecord(), None
    if resume_from is not None:
        previous = Path(resume_from)
        record = trial.state.restore(previous)
    for epoch in range(record.epochs_done, config.train.epochs):
        try:
            metrics = trial.run_epoch(epoch)
        except TrainingDiverged as diverged:
            best = record.best
            return TrialResult(
                "diverged", epoch, best.epoch, best.metrics, previous, str(diverged), record.history
            )
        improved = record.add(metrics, config.train.select_metric)
        previous = checkpoint.write_epoch(
            checkpoints,
            record.epochs_done,
            trial.state.save(record),
            trial.setup.model.state_dict() if improved else None,
            previous,
        )
        yield EpochReport(metrics, previous, improved)
    best = record.best
    result = TrialResult(
        "completed", config.train.epochs, best.epoch, best.metrics, previous, "", record.history
    )
    if evaluate_test and previous is not None:
        trial.setup.load_best_weights(previous)
        result.test_metrics = trial.evaluator.evaluate("test")
    return result


def run_trial(
    config: TrialConfig,
    workdir: Path,
    report: ReportFn | None = None,
    *,
    resume_from: Path | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    evaluate_test: bool = False,
) -> TrialResult:
    """Train ``config`` for ``train.epochs`` epochs, calling ``report(metrics, folder)`` and
    ``log(summary line)`` after each (see ``trial_epochs`` for the other arguments)."""
    epochs = trial_epochs(
        config, workdir, resume_from=resume_from, progress=progress, evaluate_test=evaluate_test
    )
    while True:
        try:
            epoch = next(epochs)
        except StopIteration as finished:
            return finished.value
        if log is not None:
            log(epoch_summary(epoch.metrics, config.train.epochs, epoch.improved))
        if report is not None:
            report(epoch.metrics, epoch.checkpoint_dir)


def epoch_summary(metrics: dict[str, float], epochs: int, improved: bool) -> str:
    """One line per epoch: loss (and the ConR term when there is one), validation MAE per region,
    time and throughput."""
    regions = " ".join(
        f"{region} {format_metric(metrics[f'val/{region}/mae'])}" for region in REGIONS
    )
    conr = f"  train/conr {metrics['train/conr']:.4f}" if "train/conr" in metrics else ""
    return (
        f"epoch {int(metrics['epoch'])}/{epochs}  train/loss {metrics['train/loss']:.4f}{conr}  "
        f"val MAE {regions}  {metrics['time/epoch_s']:.1f}s "
        f"{metrics['train/samples_per_s']:,.0f} samples/s{'  *best' if improved else ''}"
    )
