"""What training and evaluation both start from: the data, its bins, and the model on its device
(backbone, FDS layer when enabled, stage-1 weights for regressor re-training).

Evaluating saved weights needs only this (and an ``Evaluator``), not the optimiser or the loss
weights a training run builds on top of it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dirsearch.config.trial import TrialConfig
from dirsearch.data.base import DataBundle
from dirsearch.errors import ConfigError
from dirsearch.imbalance import FDS, Binning
from dirsearch.models import DIRRegressor, build_model, feature_dim
from dirsearch.train import checkpoint
from dirsearch.train.datasets import load_data
from dirsearch.train.devices import resolve_device
from dirsearch.train.feeding import Feeder


@dataclass(frozen=True)
class ModelSetup:
    """One trial's data and model, and how batches reach the model."""

    data: DataBundle
    binning: Binning
    """The bins of ``data.bins``: LDS weights and shot regions count training samples per bin."""
    model: DIRRegressor
    feeder: Feeder

    def load_best_weights(self, checkpoint_dir: Path) -> None:
        """Put the best epoch's weights of a checkpoint folder into the model."""
        self.model.load_state_dict(checkpoint.load(checkpoint_dir / checkpoint.BEST_MODEL_FILE))


def set_up(config: TrialConfig) -> ModelSetup:
    """Load the data and build the model of ``config``, in the order that fixes the initial
    weights: the global RNG is seeded with ``seed`` right before the data and the model."""
    device = resolve_device(config.train.device)
    torch.manual_seed(config.seed)
    data = load_data(config.data)
    binning = config.data.bins.binning()
    warn_outside_bins(data, binning)
    model = _build_model(config, data.input_shape).to(device)
    rrt = config.train.rrt.checkpoint
    if rrt is not None:
        _load_stage_one(model, Path(rrt))
    feeder = Feeder.for_trial(config, device, data.input_shape)
    if feeder.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return ModelSetup(data, binning, model, feeder)


def warn_outside_bins(data: DataBundle, binning: Binning) -> None:
    """Targets outside ``data.bins`` are counted in the edge bins: say so, once per split."""
    low, high = binning.edges[0], binning.edges[-1]
    for name in ("train", "val", "test"):
        targets = getattr(data, name).targets
        outside = int(np.count_nonzero((targets < low) | (targets >= high)))
        if outside:
            print(
                f"dirsearch: warning: {outside} {name} targets lie outside data.bins "
                f"[{low:g}, {high:g}) and count in the first or last bin",
                file=sys.stderr,
            )


def _build_model(config: TrialConfig, input_shape: tuple[int, ...]) -> DIRRegressor:
    model_config, fds_config = config.model, config.imbalance.fds
    fds = None
    if fds_config.enabled:
        fds = FDS(
            feature_dim(model_config.arch, input_shape, mlp_hidden=model_config.mlp_hidden),
            config.fds_binning(),
            kernel=fds_config.kernel,
            ks=fds_config.ks,
            sigma=fds_config.sigma,
            momentum=fds_config.momentum,
            start_update=fds_config.start_update,
            start_smooth=fds_config.start_smooth,
        )
    return build_model(
        model_config.arch,
        input_shape,
        fds=fds,
        pretrained=Path(model_config.pretrained) if model_config.pretrained else None,
        mlp_hidden=model_config.mlp_hidden,
        dropout=model_config.dropout,
    )


def _load_stage_one(model: DIRRegressor, path: Path) -> None:
    """RRT stage 2: weights from a stage-1 checkpoint, then only the regressor trains."""
    if not path.exists():
        raise ConfigError(
            f"train.rrt.checkpoint: {path} not found; give a stage-1 checkpoint folder "
            f"or its {checkpoint.BEST_MODEL_FILE}"
        )
    if path.is_dir():
        path = path / checkpoint.BEST_MODEL_FILE
    weights = checkpoint.load(path)
    if isinstance(weights, dict) and "model" in weights:
        weights = weights["model"]
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise ConfigError(
            f"train.rrt.checkpoint: {path} does not fit this model "
            f"(same model.arch and imbalance.fds needed): {first_line}"
        ) from None
    model.freeze_all_but_regressor()
