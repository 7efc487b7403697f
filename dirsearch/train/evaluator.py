"""Predictions and shot metrics of a model on one split: the validation score of every epoch, the
test score of the best epoch, and the evaluation of saved weights after a sweep."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dirsearch.config.trial import ShotsConfig, TrialConfig
from dirsearch.data.base import Split
from dirsearch.imbalance import shot_metrics
from dirsearch.train.model_setup import ModelSetup, set_up


class Evaluator:
    """Scores ``setup.model`` as it is when called; needs nothing of the training run."""

    def __init__(self, setup: ModelSetup, shots: ShotsConfig) -> None:
        self.setup = setup
        self.shots = shots

    @torch.no_grad()
    def predict(self, split: Split) -> np.ndarray:
        """Predictions for a whole split, in dataset order (eval mode: FDS is inactive)."""
        model, feeder, transform = self.setup.model, self.setup.feeder, self.setup.data.transform
        model.eval()
        chunks = []
        for inputs, _ in feeder.batches(split):
            with feeder.autocast():
                preds = model(feeder.model_input(transform.eval(inputs))).preds
            chunks.append(preds.float())
        # One copy to the host at the end: a per-batch .cpu() would wait on the GPU every batch.
        return torch.cat(chunks).cpu().numpy().astype(np.float64)

    def score(self, preds: np.ndarray, split: Split) -> dict[str, dict[str, float]]:
        """Shot metrics (all / many / medium / few x MAE, MSE, GM) of ``preds`` for ``split``;
        the regions count the training samples per bin."""
        return shot_metrics(
            preds,
            split.targets,
            self.setup.data.train.targets,
            self.setup.binning,
            many=self.shots.many,
            few=self.shots.few,
        )

    def evaluate(self, split_name: str) -> dict[str, dict[str, float]]:
        """Shot metrics of the split ``split_name`` ("train", "val" or "test")."""
        split = getattr(self.setup.data, split_name)
        return self.score(self.predict(split), split)


def evaluate_checkpoint(
    config: TrialConfig, checkpoint_dir: Path, split: str = "test"
) -> dict[str, dict[str, float]]:
    """Shot metrics of the best weights in ``checkpoint_dir`` on ``split`` (default: test)."""
    setup = set_up(config)
    setup.load_best_weights(Path(checkpoint_dir))
    return Evaluator(setup, config.imbalance.shots).evaluate(split)
