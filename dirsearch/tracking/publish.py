"""The files a finished sweep leaves for its parent MLflow run: four plots and the best model.

Written to a local folder first (the sweep folder when it is local, so they are there without
MLflow too), then uploaded by the tracker's retrying queue.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dirsearch.sweep.spec import SweepSpec
from dirsearch.tracking import plots
from dirsearch.tracking.model_export import BestModel, evaluate_best, save_mlflow_model
from dirsearch.train.datasets import load_data
from dirsearch.tune.runner import FinalResult
from dirsearch.tune.trainable import SEED_FOLDER

PLOTS = "plots"
MODEL = "model"


@dataclass(frozen=True)
class SweepArtifacts:
    plots: Path
    """A folder of PNG files."""
    model: Path | None
    """The best trial's MLflow model folder (None after ``confirm``: no single checkpoint)."""
    best: BestModel | None


def local_folder(folder: str) -> Path:
    """Where the files go before upload: the sweep folder, or a temporary one for a URI."""
    if "://" in folder:
        return Path(tempfile.mkdtemp(prefix="dirsearch-artifacts-"))
    return Path(folder)


def write_sweep_artifacts(spec: SweepSpec, result: FinalResult, folder: str) -> SweepArtifacts:
    """The plots, and the best model when the winner is one trial with a checkpoint."""
    target = local_folder(folder)
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
    metric, mode = spec.search.metric, spec.search.mode
    figures = {
        "label_density.png": plots.label_density_figure(train_targets, binning, config.imbalance),
        "best_so_far.png": plots.best_so_far_figure(result.records, metric, mode),
        "few_vs_all_mae.png": plots.tradeoff_figure(
            result.records, metric, mode, result.best.trial_id if result.best else None
        ),
    }
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
        model = target / "best_model"
        shutil.rmtree(model, ignore_errors=True)  # from a finish before a resume
        save_mlflow_model(best, model)
    return SweepArtifacts(target / PLOTS, model, best)
