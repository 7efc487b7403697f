"""The winning trial's weights on the driver: test predictions for the per-bin plot, and an
MLflow PyTorch-flavour model that ``mlflow.pytorch.load_model`` loads and that can be registered.

Evaluated on the driver's CPU: the driver may have no GPU, and one pass over the test split of
one model is small next to the sweep.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from dirsearch.config.trial import TrialConfig
from dirsearch.data.base import BatchTransform, DataBundle
from dirsearch.imbalance import PerBinErrors, per_bin_errors
from dirsearch.train.evaluator import Evaluator
from dirsearch.train.model_setup import set_up

CONFIG_FILE = "trial_config.yaml"
EXAMPLE_ROWS = 4


class Predictor(nn.Module):
    """Raw inputs (a dataset's batch: uint8 images or float features) -> predictions ``(N,)``:
    the evaluation transform and the regressor in one module, so the logged model needs nothing
    else from dirsearch at serving time than this class."""

    def __init__(self, model: nn.Module, transform: BatchTransform) -> None:
        super().__init__()
        self.model = model
        self.transform = transform

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(self.transform.eval(inputs)).preds


@dataclass(frozen=True)
class BestModel:
    """The winner's best weights, evaluated on the test split."""

    config: TrialConfig
    predictor: Predictor
    test_metrics: dict[str, dict[str, float]]
    per_bin: PerBinErrors
    train_targets: np.ndarray
    example: np.ndarray
    """The first test inputs: the MLflow model's input example."""


def on_cpu(config: TrialConfig) -> TrialConfig:
    train = dataclasses.replace(config.train, device="cpu", amp="off", memory_format="contiguous")
    return dataclasses.replace(config, train=train)


def split_inputs(data: DataBundle, split_name: str, rows: int) -> torch.Tensor:
    """The first ``rows`` raw inputs of a split (as its dataset delivers them)."""
    dataset = getattr(data, split_name).dataset
    inputs, _ = dataset.__getitems__(list(range(min(rows, len(dataset)))))
    return inputs


def evaluate_best(config: TrialConfig, seed_folder: Path) -> BestModel:
    """Load the best weights of one seed's checkpoint folder and score them on the test split."""
    setup = set_up(on_cpu(config))
    setup.load_best_weights(Path(seed_folder))
    test, train_targets = setup.data.test, setup.data.train.targets
    evaluator = Evaluator(setup, config.imbalance.shots)
    preds = evaluator.predict(test)
    return BestModel(
        config=config,
        predictor=Predictor(setup.model, setup.data.transform).eval(),
        test_metrics=evaluator.score(preds, test),
        per_bin=per_bin_errors(preds, test.targets, train_targets, setup.binning),
        train_targets=np.asarray(train_targets),
        example=split_inputs(setup.data, "test", EXAMPLE_ROWS).numpy(),
    )


def save_mlflow_model(best: BestModel, folder: Path) -> Path:
    """An MLflow PyTorch-flavour model folder (signature and input example from the test
    split) with the trial config beside the weights."""
    import mlflow.pytorch
    from mlflow.models import infer_signature

    with torch.no_grad():
        output = best.predictor(torch.from_numpy(best.example)).numpy()
    mlflow.pytorch.save_model(
        best.predictor,
        str(folder),
        signature=infer_signature(best.example, output),
        input_example=best.example,
        # The default (torch.export's pt2) fixes the batch size at the example's; a pickled
        # module serves any batch and keeps the FDS layer's buffers as they were trained.
        serialization_format="pickle",
    )
    (folder / CONFIG_FILE).write_text(yaml.safe_dump(best.config.to_dict(), sort_keys=False))
    return folder
