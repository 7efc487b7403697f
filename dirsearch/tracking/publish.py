"""What a finished sweep publishes on its parent MLflow run: the sweep's tables and files, a
description summing them up (``run_description``), the winner's test metrics (on the winner's
child run too), four plots and the best model (a LoggedModel of the parent run).

The plots and the model are written to a local folder first (the sweep folder when it is local,
so they are there without MLflow too); every upload goes through the write queue.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Metric, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from dirsearch.common.formatting import format_setting
from dirsearch.common.seed_statistics import mean_std
from dirsearch.imbalance.vocabulary import REGIONS, STATISTICS
from dirsearch.sweep.components import is_vanilla
from dirsearch.sweep.folder import MODEL, PLOTS, SEED_FOLDER, TABLE_FILES, read_text
from dirsearch.sweep.pareto import objective_values
from dirsearch.sweep.records import TrialRecord
from dirsearch.sweep.spec import SweepSpec
from dirsearch.tracking import plots
from dirsearch.tracking.logged_model import LoggedModelUpload
from dirsearch.tracking.model_export import evaluate_best, save_mlflow_model
from dirsearch.tracking.run_description import sweep_description
from dirsearch.tracking.run_layout import MAX_TAG_LENGTH, RunLayout
from dirsearch.tracking.write_queue import WriteQueue, warn
from dirsearch.train.datasets import load_data
from dirsearch.tune.finish import FinalResult

PLOTS_ARTIFACT, MODEL_ARTIFACT = "plots", "model"
"""The plots' artifact path on the parent run, and the name of its LoggedModel (so
``runs:/<parent>/model`` finds the model)."""


def publish_sweep(
    spec: SweepSpec, folder: str, result: FinalResult, layout: RunLayout, queue: WriteQueue
) -> None:
    """The parent run gets the sweep's files and the winner's test metrics (mean, and std
    over seeds when there are several); the winner's child run gets the same metrics."""
    metrics = test_metrics(result.per_seed, int(time.time() * 1000))
    parent = layout.runs.parent
    texts = {name: read_text(f"{folder}/{name}") for name in TABLE_FILES}

    def log_parent() -> None:
        layout.client.log_batch(
            parent,
            metrics=metrics,
            tags=[
                RunTag("dirsearch.winner", result.heading[:MAX_TAG_LENGTH]),
                RunTag(MLFLOW_RUN_NOTE, sweep_description(texts)),
            ],
        )
        layout.client.log_dict(parent, spec.fixed, "fixed_config.yaml")
        for name, text in texts.items():
            if text is not None:
                layout.client.log_text(parent, text, name)

    queue.submit(log_parent)
    _upload_artifacts(spec, folder, result, layout, queue)
    if result.best is not None and result.best.trial_id in layout.runs.trials:
        best_run = layout.runs.trials[result.best.trial_id]
        queue.submit(
            lambda: layout.client.log_batch(
                best_run, metrics=metrics, tags=[RunTag("dirsearch.best", "true")]
            )
        )


def test_metrics(per_seed: list[dict[str, dict[str, float]]], timestamp_ms: int) -> list[Metric]:
    """``test/<region>/<statistic>``: the mean over seeds, plus ``..._std`` with several seeds."""
    metrics = []
    for region in REGIONS:
        for statistic in STATISTICS:
            mean, std = mean_std(seed[region][statistic] for seed in per_seed)
            if math.isnan(mean):
                continue
            key = f"test/{region}/{statistic}"
            metrics.append(Metric(key, mean, timestamp_ms, 0))
            if len(per_seed) > 1:
                metrics.append(Metric(f"{key}_std", std, timestamp_ms, 0))
    return metrics


def _upload_artifacts(
    spec: SweepSpec, folder: str, result: FinalResult, layout: RunLayout, queue: WriteQueue
) -> None:
    """Plots and the best model on the parent run. A failure making them costs those files, not
    the finished sweep: it is reported in one line."""
    try:
        files = write_sweep_artifacts(spec, result, folder)
    except Exception as error:
        warn(f"plots and model not made ({type(error).__name__}: {str(error)[:200]})")
        return
    parent = layout.runs.parent
    queue.submit(lambda: layout.client.log_artifacts(parent, str(files.plots), PLOTS_ARTIFACT))
    if files.model is not None and result.best is not None:
        best = result.best
        params = {key: format_setting(value) for key, value in best.overrides.items()}
        tags = {"dirsearch.trial_id": best.trial_id, "dirsearch.trial_number": str(best.number)}
        queue.submit(LoggedModelUpload(layout, files.model, MODEL_ARTIFACT, params, tags))


def vanilla_start(spec: SweepSpec, records: list[TrialRecord]) -> dict[int, tuple[float, ...]]:
    """Trial number -> objectives of each start point that uses no DIR component (the search
    runs its start points first, so they are trials 1..len(points)), stopped or not: the
    reference the front is read against."""
    search = spec.search
    found = {}
    for record in records:
        if record.number <= len(spec.points) and is_vanilla(spec.trial_config(record.overrides)):
            values = objective_values(record, search.metrics, search.modes)
            if values is not None:
                found[record.number] = values
    return found


@dataclass(frozen=True)
class SweepArtifacts:
    plots: Path
    """A folder of PNG files."""
    model: Path | None
    """The best trial's MLflow model folder (None after ``confirm``: no single checkpoint)."""


def _local_folder(folder: str) -> Path:
    """Where the files go before upload: the sweep folder, or a temporary one for a URI."""
    if "://" in folder:
        return Path(tempfile.mkdtemp(prefix="dirsearch-artifacts-"))
    return Path(folder)


def write_sweep_artifacts(spec: SweepSpec, result: FinalResult, folder: str) -> SweepArtifacts:
    """The plots, and the best model when the winner is one trial with a checkpoint."""
    target = _local_folder(folder)
    best = None
    if result.best is not None and result.checkpoint is not None:
        config = spec.trial_config(result.best.overrides)
        with result.checkpoint.as_directory() as checkpoint:
            best = evaluate_best(config, Path(checkpoint) / SEED_FOLDER.format(0))
        train_targets = best.train_targets
    else:
        config = spec.trial_config({})
        train_targets = load_data(config.data).train.targets
    binning = config.data.bins.binning()
    metric, mode = spec.search.objective, spec.search.objective_mode
    figures = {
        "label_density.png": plots.label_density_figure(train_targets, binning, config.imbalance),
        "best_so_far.png": plots.best_so_far_figure(result.records, metric, mode),
        "few_vs_all_mae.png": plots.tradeoff_figure(
            result.records, metric, mode, result.best.trial_id if result.best else None
        ),
    }
    if result.front is not None:
        figures["pareto_front.png"] = plots.pareto_figure(
            result.front,
            spec.search.metrics,
            result.best.trial_id if result.best else None,
            vanilla_start(spec, result.records),
        )
    if any(reading.importances for reading in result.importances):  # else importance.md says why
        figures["importance.png"] = plots.importance_figure(result.importances, metric)
    if best is not None:
        figures["per_bin_test_mae.png"] = plots.per_bin_mae_figure(
            best.per_bin,
            binning,
            config.imbalance.shots,
            f"Test MAE per bin of trial {result.best.number} (seed {config.seed})",
        )
    for name, figure in figures.items():
        plots.save_png(figure, target / PLOTS / name)
    model = None
    if best is not None:
        model = target / MODEL
        shutil.rmtree(model, ignore_errors=True)  # from a finish before a resume
        save_mlflow_model(best, model)
    return SweepArtifacts(target / PLOTS, model)
