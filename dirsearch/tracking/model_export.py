"""The winning trial's weights on the driver: test predictions for the per-bin plot, and an
MLflow PyTorch-flavour model that ``mlflow.pytorch.load_model`` loads and that can be registered.

The model is a ``torch.export`` program (``serialization_format="pt2"``), not a pickle: loading
a pickle runs whatever code the artifact store holds, so anyone who can write there could run
code on the machine of whoever loads the model; a pt2 archive holds a graph and tensors, and
MLflow loads it with ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``. The program includes the
data's preprocessing (a table's training standardisation, the images' normalisation), so it
predicts from raw feature rows or uint8 images, as a user has them.

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
    """Raw inputs (uint8 images at the training resolution, or float64 raw feature rows) ->
    predictions ``(N,)``: the transform's serving module and the regressor in one module, which
    ``torch.export`` turns into one program, so the logged model needs nothing of dirsearch."""

    def __init__(self, model: nn.Module, transform: BatchTransform) -> None:
        super().__init__()
        self.preprocess = transform.serving()
        self.model = model

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype the exported program takes (it is fixed at export)."""
        return self.preprocess.input_dtype

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocess(inputs)).preds


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
    predictor = Predictor(setup.model, setup.data.transform).eval()
    example = split_inputs(setup.data, "test", EXAMPLE_ROWS).to(predictor.input_dtype).contiguous()
    return BestModel(
        config=config,
        predictor=predictor,
        test_metrics=evaluator.score(preds, test),
        per_bin=per_bin_errors(preds, test.targets, train_targets, setup.binning),
        train_targets=np.asarray(train_targets),
        example=example.numpy(),
    )


def input_description(best: BestModel) -> str:
    """What the model takes, in words (the MLmodel's metadata; the signature has dtype and
    shape only)."""
    shape = ", ".join(map(str, best.example.shape[1:]))
    if best.example.dtype == np.uint8:
        return (
            f"uint8 RGB images (N, {shape}), channels first, already resized to "
            f"data.image_size as the dataset does (bilinear); normalised inside the model"
        )
    return (
        f"float64 raw feature rows (N, {shape}), the feature columns of the training CSV in "
        f"its order (data.features); standardised inside the model with the training split's "
        f"statistics"
    )


def save_mlflow_model(best: BestModel, folder: Path) -> Path:
    """An MLflow PyTorch-flavour model folder holding a pt2 program whose batch dimension is
    dynamic (signature and input example from the test split), with the trial config beside
    it."""
    import mlflow.pytorch
    from mlflow.models import infer_signature

    with torch.no_grad():
        output = best.predictor(torch.from_numpy(best.example)).numpy()
    mlflow.pytorch.save_model(
        best.predictor,
        str(folder),
        # The signature's -1 batch dimension is what MLflow exports as dynamic: the example
        # has several rows, so torch.export does not specialise it to the example's size.
        signature=infer_signature(best.example, output),
        input_example=best.example,
        serialization_format="pt2",
        metadata={"dirsearch.input": input_description(best)},
        # Given, not inferred: inferring loads the model in a subprocess, and the program
        # needs torch alone (mlflow adds itself).
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
    )
    (folder / CONFIG_FILE).write_text(yaml.safe_dump(best.config.to_dict(), sort_keys=False))
    return folder
