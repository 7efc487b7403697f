"""Every knob that changes the loss or the optimisation reaches the computation of a trial.

A sweep over a knob that silently stopped reaching training would tune nothing, and an attribute
test (``trainer.weight_table`` exists, ``optimizer.defaults["weight_decay"]`` is set) cannot
tell. So each test here runs a real tiny trial (``trial_helpers``), records what it computed
(``trial_recorder``: model forwards and optimiser steps, seen through torch's global hooks),
recomputes it by hand from the knob values, and does so for two values of one knob: both runs
must match their hand computation AND differ from each other. The FDS, dropout, RRT and precision
knobs are in ``test_trainer_knobs_model``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from trial_helpers import EVAL_SAMPLES, TRAIN_SAMPLES, make_config, merged
from trial_recorder import (
    Observed,
    ParamStep,
    binning,
    knob,
    max_difference,
    observe,
    train_targets,
)

from dirsearch.config.trial import TrialConfig
from dirsearch.imbalance import BalancedMSE, bin_weights, ranksim_loss, weighted_loss
from dirsearch.train import checkpoint
from dirsearch.train.datasets import load_data

pytestmark = pytest.mark.usefixtures("one_thread")

ONE_BATCH: dict[str, Any] = {"train": {"epochs": 1, "batch_size": 1024}}
"""All 603 training samples in one batch: the epoch's train/loss is the first batch's loss."""
TWO_STEPS: dict[str, Any] = {"train": {"epochs": 1, "batch_size": 256}}
"""Two full batches of 256 (the partial last batch is dropped): two optimiser steps."""


# ----- the loss: re-weighting, LDS, loss functions, Balanced MSE, RankSim ----------------------


def hand_weights(config: TrialConfig, targets: torch.Tensor) -> torch.Tensor:
    """Each target's loss weight, from a table built with the knob values."""
    imbalance = config.imbalance
    table = bin_weights(
        train_targets(config),
        binning(config),
        reweight=imbalance.reweight,
        lds=imbalance.lds.enabled,
        kernel=imbalance.lds.kernel,
        ks=imbalance.lds.ks,
        sigma=imbalance.lds.sigma,
    )
    return torch.tensor(table[binning(config).index(targets.numpy())], dtype=torch.float32)


def hand_loss(
    config: TrialConfig,
    preds: torch.Tensor,
    features: torch.Tensor,
    targets: torch.Tensor,
    balanced_mse: BalancedMSE | None,
) -> torch.Tensor:
    """The first batch's loss from the knob values: weighted point loss (or Balanced MSE) plus
    gamma x RankSim on the encoder features, RankSim's subset drawn from a generator seeded
    ``seed + 2`` (the trainer's RankSim stream)."""
    loss_config, ranksim = config.train.loss, config.imbalance.ranksim
    if balanced_mse is not None:
        loss = balanced_mse(preds, targets)
    else:
        given = {
            "beta": loss_config.beta,
            "gamma": loss_config.gamma,
            "activation": loss_config.activation,
        }
        params = {key: value for key, value in given.items() if value is not None}
        weights = hand_weights(config, targets)
        loss = weighted_loss(loss_config.name, preds, targets, weights, **params)
    if ranksim.enabled:
        loss = loss + ranksim.gamma * ranksim_loss(
            features,
            targets,
            interpolation_lambda=ranksim.interpolation_lambda,
            generator=torch.Generator().manual_seed(config.seed + 2),
        )
    return loss


def new_balanced_mse(config: TrialConfig) -> BalancedMSE | None:
    loss = config.train.loss
    return BalancedMSE(init_noise_sigma=loss.init_noise_sigma) if loss.name == "bmc" else None


def replayed_gradients(observed: Observed) -> list[torch.Tensor]:
    """The first step's gradients by hand: the initial model's encoder and regressor applied to
    the first batch (no FDS or dropout in these trials), the hand loss, backward."""
    first = observed.recorded.first_batch()
    model = observed.recorded.initial_model
    assert model is not None
    model.train()
    features = model.backbone(first.inputs)
    preds = model.regressor(features).squeeze(-1)
    torch.testing.assert_close(preds.detach(), first.preds, rtol=0, atol=0)
    balanced_mse = new_balanced_mse(observed.config)
    assert first.targets is not None
    hand_loss(observed.config, preds, features, first.targets, balanced_mse).backward()
    extra = list(balanced_mse.parameters()) if balanced_mse is not None else []
    return [param.grad for param in [*model.parameters(), *extra]]


def recorded_gradients(observed: Observed) -> list[torch.Tensor]:
    return [param.grad for group in observed.recorded.steps[0] for param in group]


def check_first_batch(observed: Observed) -> tuple[float, list[torch.Tensor]]:
    """Assert the first batch's loss and gradients equal the hand computation; return them."""
    first = observed.recorded.first_batch()
    assert first.targets is not None
    assert len(first.targets) == TRAIN_SAMPLES
    loss = observed.result.history[0]["train/loss"]
    expected = hand_loss(
        observed.config,
        first.preds,
        first.features,
        first.targets,
        new_balanced_mse(observed.config),
    )
    assert loss == pytest.approx(expected.item(), rel=1e-6)
    gradients = recorded_gradients(observed)
    hand = replayed_gradients(observed)
    assert len(gradients) == len(hand)
    for actual, wanted in zip(gradients, hand, strict=True):
        torch.testing.assert_close(actual, wanted, rtol=1e-5, atol=1e-7)
    return loss, gradients


SQINV_LDS = {"imbalance": {"reweight": "sqrt_inv", "lds": {"enabled": True}}}


def lds(**settings: Any) -> dict[str, Any]:
    return {"imbalance": {"reweight": "sqrt_inv", "lds": {"enabled": True, **settings}}}


def loss(name: str, **params: Any) -> dict[str, Any]:
    return {"train": {"loss": {"name": name, **params}}}


def ranksim(**settings: Any) -> dict[str, Any]:
    return {"imbalance": {"ranksim": {"enabled": True, **settings}}}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        knob("reweight-none-sqrt_inv", {}, {"imbalance": {"reweight": "sqrt_inv"}}),
        knob(
            "reweight-sqrt_inv-inverse",
            {"imbalance": {"reweight": "sqrt_inv"}},
            {"imbalance": {"reweight": "inverse"}},
        ),
        knob("lds.enabled", {"imbalance": {"reweight": "sqrt_inv"}}, SQINV_LDS),
        knob("lds.kernel-triang", lds(kernel="gaussian"), lds(kernel="triang")),
        knob("lds.kernel-laplace", lds(kernel="gaussian"), lds(kernel="laplace")),
        knob("lds.ks", lds(ks=5), lds(ks=9)),
        knob("lds.sigma", lds(sigma=1.0), lds(sigma=3.0)),
        knob(
            "data.bins",
            SQINV_LDS,
            {**SQINV_LDS, "data": {"bins": {"start": 0, "width": 3, "count": 34}}},
        ),
        knob("loss-l1-mse", loss("l1"), loss("mse")),
        knob("loss-huber-beta", loss("huber", beta=1.0), loss("huber", beta=4.0)),
        knob(
            "loss-focal_l1-gamma",
            loss("focal_l1", beta=0.05, gamma=1.0),
            loss("focal_l1", beta=0.05, gamma=2.0),
        ),
        knob(
            "loss-focal_mse-beta",
            loss("focal_mse", beta=0.01, gamma=1.0),
            loss("focal_mse", beta=0.05, gamma=1.0),
        ),
        knob(
            "loss-focal-activation",
            loss("focal_l1", beta=0.02, activation="sigmoid"),
            loss("focal_l1", beta=0.02, activation="tanh"),
        ),
        knob(
            "loss-bmc-init_noise_sigma",
            loss("bmc", init_noise_sigma=1.0),
            loss("bmc", init_noise_sigma=5.0),
        ),
        knob("ranksim.enabled", SQINV_LDS, merged(SQINV_LDS, ranksim())),
        knob("ranksim.gamma", ranksim(gamma=100.0), ranksim(gamma=10.0)),
        knob(
            "ranksim.interpolation_lambda",
            ranksim(interpolation_lambda=2.0),
            ranksim(interpolation_lambda=0.5),
        ),
    ],
)
def test_first_batch_loss_and_gradients_follow_the_knob(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any]
) -> None:
    """The first batch's loss is the weighted loss (or Balanced MSE) plus gamma x RankSim
    computed by hand with the knob's value, and so are the gradients of the first step
    (RankSim's interpolation_lambda only shows in the gradients); the two values differ."""
    observations = [
        check_first_batch(observe(make_config(ONE_BATCH, override), tmp_path))
        for override in (first, second)
    ]
    (loss_a, gradients_a), (loss_b, gradients_b) = observations
    assert abs(loss_a - loss_b) > 1e-4 * abs(loss_a) or (
        max_difference(gradients_a, gradients_b) > 1e-4
    )


# ----- the optimiser: kind, lr, weight decay, momentum, Balanced MSE's noise lr ----------------

BETAS = (0.9, 0.999)
EPS = 1e-8


@dataclass
class _Moments:
    """Per-parameter optimiser state of the hand computation (float64)."""

    first: torch.Tensor | None = None
    second: torch.Tensor | None = None


def hand_step(config: TrialConfig, param: ParamStep, state: _Moments, step: int) -> torch.Tensor:
    """The parameter after optimiser step ``step`` (1-based) from its recorded value and
    gradient, written out from the update rules. Balanced MSE's noise scale (the only 0-d
    parameter) has its own learning rate and no weight decay."""
    train = config.train
    noise = param.before.ndim == 0
    lr = train.loss.noise_lr if noise else train.lr
    decay = 0.0 if noise else train.weight_decay
    value = param.before.double()
    assert param.grad is not None
    grad = param.grad.double()
    if train.optimizer == "sgd":
        grad = grad + decay * value
        if train.momentum:
            state.first = grad if state.first is None else train.momentum * state.first + grad
            grad = state.first
        return value - lr * grad
    if train.optimizer == "adamw":
        value = value * (1 - lr * decay)
    else:
        grad = grad + decay * value
    beta1, beta2 = BETAS
    state.first = (1 - beta1) * grad + (beta1 * state.first if state.first is not None else 0)
    state.second = (1 - beta2) * grad**2 + (beta2 * state.second if state.second is not None else 0)
    denominator = (state.second / (1 - beta2**step)).sqrt() + EPS
    return value - lr / (1 - beta1**step) * state.first / denominator


def check_steps(observed: Observed) -> list[torch.Tensor]:
    """Assert every recorded step moved every parameter as the update rule says; return the
    parameters after the last step."""
    steps = observed.recorded.steps
    assert len(steps) == TRAIN_SAMPLES // 256
    states: dict[tuple[int, int], _Moments] = {}
    for number, step in enumerate(steps, start=1):
        for g, group in enumerate(step):
            for i, param in enumerate(group):
                expected = hand_step(
                    observed.config, param, states.setdefault((g, i), _Moments()), number
                )
                torch.testing.assert_close(param.after, expected.float(), rtol=2e-7, atol=1e-7)
    return [param.after for group in steps[-1] for param in group]


def optimizer(**train: Any) -> dict[str, Any]:
    return {"train": train}


def bmc_sgd(noise_lr: float) -> dict[str, Any]:
    loss = {"name": "bmc", "noise_lr": noise_lr}
    return optimizer(optimizer="sgd", lr=1e-6, weight_decay=0.5, loss=loss)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        knob(
            "optimizer-adam-adamw",
            optimizer(optimizer="adam", weight_decay=0.1),
            optimizer(optimizer="adamw", weight_decay=0.1),
        ),
        knob("optimizer-adam-sgd", optimizer(optimizer="adam"), optimizer(optimizer="sgd")),
        knob("lr-adam", optimizer(lr=1e-3), optimizer(lr=1e-2)),
        knob("lr-sgd", optimizer(optimizer="sgd", lr=1e-3), optimizer(optimizer="sgd", lr=1e-2)),
        knob(
            "weight_decay-sgd",
            optimizer(optimizer="sgd", lr=1e-2, weight_decay=0.0),
            optimizer(optimizer="sgd", lr=1e-2, weight_decay=0.5),
        ),
        knob(
            "weight_decay-adam",
            optimizer(optimizer="adam", weight_decay=0.0),
            optimizer(optimizer="adam", weight_decay=0.5),
        ),
        knob(
            "weight_decay-adamw",
            optimizer(optimizer="adamw", weight_decay=0.0),
            optimizer(optimizer="adamw", weight_decay=0.5),
        ),
        knob(
            "momentum-sgd",
            optimizer(optimizer="sgd", lr=1e-2, momentum=0.9),
            optimizer(optimizer="sgd", lr=1e-2, momentum=0.5),
        ),
        knob(
            "loss-bmc-noise_lr",
            # SGD shows the noise scale's own lr and its lack of weight decay directly; its
            # first gradient is about -4,000, hence the small rates.
            bmc_sgd(noise_lr=1e-4),
            bmc_sgd(noise_lr=1e-3),
        ),
    ],
)
def test_optimiser_steps_follow_the_knob(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any]
) -> None:
    """Two steps (SGD's momentum only shows from the second) move every parameter exactly as
    the update rule written out by hand with the knob's value; the two values differ."""
    after = [
        check_steps(observe(make_config(TWO_STEPS, override), tmp_path))
        for override in (first, second)
    ]
    assert max_difference(*after) > 1e-5


# ----- the learning-rate schedule ---------------------------------------------------------------


def scheduled_lr(config: TrialConfig, epoch: int) -> float:
    """The learning rate of 0-based ``epoch``: x gamma per milestone reached, or cosine
    annealing to 0 over ``train.epochs``."""
    train = config.train
    schedule = train.schedule
    if schedule.name == "step":
        return train.lr * schedule.gamma ** sum(epoch >= m for m in schedule.milestones)
    if schedule.name == "cosine":
        return train.lr * (1 + math.cos(math.pi * epoch / train.epochs)) / 2
    return train.lr


PLAIN_SGD: dict[str, Any] = {
    "train": {"epochs": 3, "batch_size": 1024, "optimizer": "sgd", "lr": 1e-2, "momentum": 0.0}
}
"""One step per epoch of p <- p - lr x grad, so each step's size reads the lr it used."""


def schedule(name: str, **settings: Any) -> dict[str, Any]:
    return {"train": {"schedule": {"name": name, **settings}}}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        knob("schedule-none-cosine", schedule("none"), schedule("cosine")),
        knob("schedule-none-step", schedule("none"), schedule("step", milestones=[1])),
        knob(
            "schedule.milestones",
            schedule("step", milestones=[1], gamma=0.5),
            schedule("step", milestones=[2], gamma=0.5),
        ),
        knob(
            "schedule.gamma",
            schedule("step", milestones=[1], gamma=0.5),
            schedule("step", milestones=[1], gamma=0.1),
        ),
    ],
)
def test_each_epoch_steps_with_the_scheduled_lr(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any]
) -> None:
    """Epoch e's step is p - lr_e x grad with lr_e from the schedule by hand, and the reported
    lr after each epoch is the next epoch's; the two values differ."""
    moved = []
    for override in (first, second):
        observed = observe(make_config(PLAIN_SGD, override), tmp_path)
        config, steps = observed.config, observed.recorded.steps
        assert len(steps) == config.train.epochs
        for epoch, step in enumerate(steps):
            lr = scheduled_lr(config, epoch)
            for param in (param for group in step for param in group):
                assert param.grad is not None
                expected = param.before.double() - lr * param.grad.double()
                torch.testing.assert_close(param.after, expected.float(), rtol=2e-7, atol=1e-7)
        reported = [metrics["lr"] for metrics in observed.result.history]
        assert reported == pytest.approx([scheduled_lr(config, e) for e in range(1, 4)], abs=1e-12)
        moved.append(
            [param.after - param.before for step in steps for group in step for param in group]
        )
    assert max_difference(*moved) > 1e-6


# ----- model selection ---------------------------------------------------------------------------

SELECTION: dict[str, Any] = {"train": {"epochs": 5, "lr": 0.1}}
"""Adam at lr 0.1 oscillates, so the regions' errors reach their minimum in different epochs."""


def test_best_epoch_is_the_minimum_of_select_metric(tmp_path: Path) -> None:
    """For each selection metric the best epoch is the one where it is lowest in the history,
    ``best_model.pt`` holds the parameters at the end of that epoch, and the metrics disagree
    about which epoch that is (so a selection that ignored the knob would be caught)."""
    best_epochs = set()
    for select in ("val/all/mae", "val/many/mae", "val/few/mae"):
        observed = observe(make_config(SELECTION, {"train": {"select_metric": select}}), tmp_path)
        result = observed.result
        values = [metrics[select] for metrics in result.history]
        best = 1 + int(np.argmin(values))
        assert result.best_epoch == best
        assert result.best_metrics == result.history[best - 1]
        assert result.checkpoint_dir is not None
        saved = checkpoint.load(result.checkpoint_dir / checkpoint.BEST_MODEL_FILE)
        steps_per_epoch = TRAIN_SAMPLES // 64
        last_step = observed.recorded.steps[best * steps_per_epoch - 1]
        model = observed.recorded.initial_model
        assert model is not None
        names = [name for name, _ in model.named_parameters()]
        for name, param in zip(names, last_step[0], strict=True):
            assert torch.equal(saved[name], param.after), name
        best_epochs.add(best)
    assert len(best_epochs) > 1


# ----- evaluation regions, batches, seeds, data ---------------------------------------------


def hand_regions(config: TrialConfig, preds: np.ndarray) -> dict[str, tuple[int, float]]:
    """(n, MAE) per shot region of the validation predictions: a target's region is set by the
    training samples in its bin (many > shots.many, few < shots.few)."""
    bins = binning(config)
    counts = np.bincount(bins.index(train_targets(config)), minlength=bins.count)
    targets = load_data(config.data).val.targets
    shots = counts[bins.index(targets)]
    many, few = config.imbalance.shots.many, config.imbalance.shots.few
    masks = {"many": shots > many, "medium": (shots >= few) & (shots <= many), "few": shots < few}
    errors = np.abs(preds - targets)
    return {region: (int(mask.sum()), float(errors[mask].mean())) for region, mask in masks.items()}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        knob(
            "shots",
            {"imbalance": {"shots": {"many": 10, "few": 3}}},
            {"imbalance": {"shots": {"many": 15, "few": 5}}},
        ),
        knob("data.bins", {}, {"data": {"bins": {"start": 0, "width": 3, "count": 34}}}),
    ],
)
def test_shot_regions_follow_the_knob(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any]
) -> None:
    """The reported per-region validation n and MAE equal those computed by hand from the
    validation predictions the trial made, with the knob's regions; the two values differ."""
    reported = []
    for override in (first, second):
        observed = observe(make_config(ONE_BATCH, override), tmp_path)
        evaluated = observed.recorded.of("eval", epoch=0)
        preds = torch.cat([forward.preds for forward in evaluated]).double().numpy()
        assert len(preds) == EVAL_SAMPLES
        metrics = observed.result.history[0]
        regions = hand_regions(observed.config, preds)
        for region, (count, mae) in regions.items():
            assert metrics[f"val/{region}/n"] == count, region
            assert metrics[f"val/{region}/mae"] == pytest.approx(mae, rel=1e-9), region
        reported.append(regions)
    assert reported[0] != reported[1]


@pytest.mark.parametrize("batch_size", [64, 100])
def test_batch_size_sets_the_batches(tmp_path: Path, batch_size: int) -> None:
    """Training takes the full batches of a shuffled epoch (a partial last one is dropped);
    evaluation takes every sample in batches of the same size."""
    observed = observe(make_config(ONE_BATCH, {"train": {"batch_size": batch_size}}), tmp_path)
    trained = [len(forward.targets) for forward in observed.recorded.of("train")]
    assert trained == [batch_size] * (TRAIN_SAMPLES // batch_size)
    evaluated = [len(forward.inputs) for forward in observed.recorded.of("eval")]
    assert evaluated == [batch_size] * (EVAL_SAMPLES // batch_size) + [EVAL_SAMPLES % batch_size]
    assert len(observed.recorded.steps) == TRAIN_SAMPLES // batch_size


def test_seed_sets_the_initial_weights_and_the_batch_order(tmp_path: Path) -> None:
    """The first batch is the first of a data loader shuffling with a generator seeded with
    ``seed``, and the initial weights follow ``seed`` too."""
    runs = {}
    for seed in (0, 1):
        observed = observe(
            make_config(ONE_BATCH, {"seed": seed, "train": {"batch_size": 64}}), tmp_path
        )
        shuffled = DataLoader(
            range(TRAIN_SAMPLES),
            batch_size=64,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(seed),
        )
        expected = train_targets(observed.config)[next(iter(shuffled)).numpy()]
        first = observed.recorded.first_batch()
        assert first.targets is not None
        np.testing.assert_array_equal(first.targets.double().numpy(), expected)
        runs[seed] = observed
    weights = [run.recorded.initial_model.state_dict() for run in runs.values()]  # type: ignore[union-attr]
    assert not torch.equal(weights[0]["regressor.weight"], weights[1]["regressor.weight"])


def test_data_seed_and_scale_change_the_training_data(tmp_path: Path) -> None:
    """``data.seed`` draws other inputs for the same ages; ``data.scale`` sets the training
    samples per epoch (AgeDB-DIR's histogram x scale)."""
    base = observe(make_config(ONE_BATCH), tmp_path).recorded.first_batch()
    reseeded = observe(make_config(ONE_BATCH, {"data": {"seed": 1}}), tmp_path).recorded
    other = reseeded.first_batch()
    assert other.targets is not None and base.targets is not None
    assert torch.equal(other.targets.sort().values, base.targets.sort().values)
    assert not torch.equal(other.inputs.sort(0).values, base.inputs.sort(0).values)
    larger = make_config(ONE_BATCH, {"data": {"scale": 0.1}, "train": {"batch_size": 4096}})
    trained = len(observe(larger, tmp_path).recorded.first_batch().inputs)
    assert trained == round(TRAIN_SAMPLES * 2.025)  # rounded per age: 1,221
