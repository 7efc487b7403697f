"""The training objective: the loss of one batch, as a fit term plus regularisers.

The fit term is the point loss weighted per sample by LDS / re-weighting, or Balanced MSE (whose
learnt noise scale trains in an optimiser group of its own and is saved with the checkpoint).
Regularisers are terms added to it; each sees the training batch (its raw inputs, targets, epoch
and the model's output on it) and brings its own settings and random stream. A new regulariser is
one more class with ``__call__`` and one more entry in ``regularisers``; one that names a
``metric`` has its epoch mean reported as ``train/<metric>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch

from dirsearch.config.trial import (
    ConRConfig,
    ImbalanceConfig,
    LossConfig,
    RankSimConfig,
    TrialConfig,
)
from dirsearch.imbalance import (
    BalancedMSE,
    Binning,
    bin_weights,
    conr_loss,
    ranksim_loss,
    weighted_loss,
)
from dirsearch.models import RegressorOutput
from dirsearch.train.fds_statistics import frozen_batchnorm_statistics
from dirsearch.train.model_setup import ModelSetup
from dirsearch.train.rng_streams import RngStreams, global_rng_from


@dataclass(frozen=True)
class TrainingBatch:
    """What the terms of the batch loss may read."""

    inputs: torch.Tensor
    """The raw batch as the data delivered it (before augmentation), on the device."""
    targets: torch.Tensor
    epoch: int
    """The 0-based epoch (FDS smooths from ``start_smooth``)."""
    output: RegressorOutput
    """The model's output on the augmented batch."""


class Term(Protocol):
    """One summand of the batch loss."""

    metric: str | None
    """Reported as ``train/<metric>`` (its epoch mean) when set."""

    def __call__(self, batch: TrainingBatch) -> torch.Tensor: ...


class BatchLoss(NamedTuple):
    """The batch loss, and the terms with a ``metric`` by that name (detached)."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


class SampleWeights:
    """Each sample's LDS / re-weighting loss weight: a per-bin table kept on the device and looked
    up by the batch's bins (no host round trip per batch)."""

    def __init__(
        self,
        imbalance: ImbalanceConfig,
        train_targets: np.ndarray,
        binning: Binning,
        device: torch.device,
    ) -> None:
        table = bin_weights(
            train_targets,
            binning,
            reweight=imbalance.reweight,
            lds=imbalance.lds.enabled,
            kernel=imbalance.lds.kernel,
            ks=imbalance.lds.ks,
            sigma=imbalance.lds.sigma,
        )
        self.table = torch.tensor(table, dtype=torch.float32, device=device)
        self.binning = binning

    def __call__(self, targets: torch.Tensor) -> torch.Tensor:
        return self.table.index_select(0, self.binning.index(targets))


class WeightedPointLoss:
    """``mean_i(w_i * l_i)`` of the point loss ``train.loss.name`` (l1, mse, huber, focal)."""

    metric = None

    def __init__(self, loss: LossConfig, weights: SampleWeights) -> None:
        self.name = loss.name
        self.params = loss.params()  # fixed for the trial: not rebuilt per batch
        self.weights = weights

    def __call__(self, batch: TrainingBatch) -> torch.Tensor:
        preds, targets = batch.output.preds.float(), batch.targets
        return weighted_loss(self.name, preds, targets, self.weights(targets), **self.params)


class BalancedMSEFit:
    """Balanced MSE: divides out the batch's label prior instead of weighting samples."""

    metric = None

    def __init__(self, loss: LossConfig, device: torch.device) -> None:
        self.module = BalancedMSE(init_noise_sigma=loss.init_noise_sigma).to(device)
        self.noise_lr = loss.noise_lr

    def __call__(self, batch: TrainingBatch) -> torch.Tensor:
        return self.module(batch.output.preds.float(), batch.targets)

    def parameter_group(self) -> dict[str, Any]:
        """The noise scale's optimiser group: its own learning rate and no weight decay."""
        return {"params": list(self.module.parameters()), "lr": self.noise_lr, "weight_decay": 0.0}


class RankSim:
    """``gamma x`` RankSim of the encoder features: their similarity ranking should follow the
    labels' (Gong et al., ICML 2022)."""

    metric = None  # not reported on its own: the metrics of RankSim runs stay as they were

    def __init__(self, settings: RankSimConfig, generator: torch.Generator) -> None:
        self.settings = settings
        self.generator = generator

    def __call__(self, batch: TrainingBatch) -> torch.Tensor:
        return self.settings.gamma * ranksim_loss(
            batch.output.features.float(),
            batch.targets,
            interpolation_lambda=self.settings.interpolation_lambda,
            generator=self.generator,
        )


class ConR:
    """``beta x`` ConR (Keramati et al., ICLR 2024) on two extra views of the batch.

    Each view is the training augmentation of the raw batch drawn from ConR's own stream, once
    per view; feature vectors, which have no augmentation, get Gaussian noise of std
    ``noise_std`` instead (on top of the identity transform). One forward pass of the model on
    the 2N views (train mode, the batch's targets and epoch, so FDS smooths what it smooths for
    the batch; in the batch's autocast) gives the encoder features and the predictions that
    select the negatives; the labels are the targets twice, the sample weights their LDS /
    re-weighting weights (none for Balanced MSE).

    The pass only adds its loss: BatchNorm normalises the views by their own batch statistics
    but its running statistics move with the batch's pass alone, and dropout masks come from
    ConR's stream, not the global RNG. So with ``beta: 0`` a trial trains bit for bit as
    without ConR.
    """

    metric = "conr"

    def __init__(
        self,
        settings: ConRConfig,
        setup: ModelSetup,
        weights: SampleWeights | None,
        generator: torch.Generator,
    ) -> None:
        self.settings = settings
        self.model, self.feeder, self.transform = setup.model, setup.feeder, setup.data.transform
        self.noisy = len(setup.data.input_shape) == 1  # feature vectors: views by input noise
        self.weights = weights
        self.generator = generator

    def view(self, inputs: torch.Tensor) -> torch.Tensor:
        """One augmented view of a raw batch."""
        view = self.transform.train(inputs, self.generator)
        if self.noisy:
            noise = torch.randn(view.shape, generator=self.generator, dtype=view.dtype)
            view = view + self.settings.noise_std * noise.to(view.device)
        return view

    def __call__(self, batch: TrainingBatch) -> torch.Tensor:
        views = torch.cat([self.view(batch.inputs), self.view(batch.inputs)])
        labels = batch.targets.repeat(2)
        with (
            frozen_batchnorm_statistics(self.model),
            global_rng_from(self.generator, self.feeder.device),
        ):
            output = self.model(self.feeder.model_input(views), labels, batch.epoch)
        settings = self.settings
        return settings.beta * conr_loss(
            output.features,
            labels,
            output.preds,
            None if self.weights is None else self.weights(labels),
            window=settings.w,
            temperature=settings.t,
            push=settings.e,
        )


def regularisers(
    imbalance: ImbalanceConfig,
    setup: ModelSetup,
    weights: SampleWeights | None,
    streams: RngStreams,
) -> tuple[Term, ...]:
    """The enabled regularisers, in the order they are added to the fit term (``weights``: the
    fit term's sample weights, None for Balanced MSE)."""
    terms: list[Term] = []
    if imbalance.ranksim.enabled:
        terms.append(RankSim(imbalance.ranksim, streams.ranksim))
    if imbalance.conr.enabled:
        terms.append(ConR(imbalance.conr, setup, weights, streams.conr))
    return tuple(terms)


@dataclass(frozen=True)
class Objective:
    """The batch loss: the fit term plus each regulariser, in order."""

    fit: Term
    regularisers: tuple[Term, ...]
    balanced_mse: BalancedMSEFit | None
    """The fit term when it is Balanced MSE: the part of the objective that learns."""

    def __call__(self, batch: TrainingBatch) -> BatchLoss:
        loss, shown = self.fit(batch), {}
        for term in self.regularisers:
            value = term(batch)
            loss = loss + value
            if term.metric is not None:
                shown[term.metric] = value.detach()
        return BatchLoss(loss, shown)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The names of the terms reported on their own (``BatchLoss.terms``' keys)."""
        return tuple(term.metric for term in self.regularisers if term.metric is not None)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimiser groups of the objective's own learnt parameters (beside the model's)."""
        return [self.balanced_mse.parameter_group()] if self.balanced_mse is not None else []

    def state_dict(self) -> dict[str, torch.Tensor] | None:
        """The learnt parameters (a checkpoint's ``balanced_mse`` entry); None when none learn."""
        return self.balanced_mse.module.state_dict() if self.balanced_mse is not None else None

    def load_state_dict(self, state: dict[str, torch.Tensor] | None) -> None:
        if self.balanced_mse is not None:
            self.balanced_mse.module.load_state_dict(state)


def build_objective(config: TrialConfig, setup: ModelSetup, streams: RngStreams) -> Objective:
    """The objective of ``config``; the LDS weight table is built only for a weighted loss."""
    loss, device = config.train.loss, setup.feeder.device
    if loss.name == "bmc":
        balanced_mse = BalancedMSEFit(loss, device)
        terms = regularisers(config.imbalance, setup, None, streams)
        return Objective(balanced_mse, terms, balanced_mse)
    weights = SampleWeights(config.imbalance, setup.data.train.targets, setup.binning, device)
    terms = regularisers(config.imbalance, setup, weights, streams)
    return Objective(WeightedPointLoss(loss, weights), terms, None)
