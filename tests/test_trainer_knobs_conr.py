"""Every ConR knob reaches the first batch's loss and gradients.

As in ``test_trainer_knobs``: a real tiny trial (all 603 training samples in one batch, feature
vectors, an MLP) runs under ``trial_recorder``; the first batch's loss and the first step's
gradients are recomputed by hand from the knob values, and two values of one knob must both match
their hand computation and differ from each other.

By hand, ConR is: two views of the batch, each the raw feature vectors plus Gaussian noise of std
``noise_std`` drawn from a generator seeded ``seed + 4`` (ConR's stream; feature vectors have no
augmentation), first view first; one forward pass of the model on the 2N views; labels the
targets twice; sample weights the targets' LDS / re-weighting weights (none for Balanced MSE);
``beta x conr_loss(features, labels, preds, weights, window=w, temperature=t, push=e)`` added to
the fit term. ``conr_loss`` itself is checked against a transcription of the published function
in ``test_imbalance_conr``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from test_trainer_knobs import (
    ONE_BATCH,
    SQINV_LDS,
    check_first_batch,
    hand_loss,
    hand_weights,
    new_balanced_mse,
    recorded_gradients,
)
from trial_helpers import TRAIN_SAMPLES, make_config, merged
from trial_recorder import Forward, Observed, knob, max_difference, observe

from dirsearch.config.trial import TrialConfig
from dirsearch.imbalance import conr_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def conr(**settings: Any) -> dict[str, Any]:
    return merged(SQINV_LDS, {"imbalance": {"conr": {"enabled": True, **settings}}})


def hand_views(config: TrialConfig, raw: torch.Tensor) -> torch.Tensor:
    """The 2N views: each the raw batch plus noise from ConR's stream (seed + 4)."""
    generator = torch.Generator().manual_seed(config.seed + 4)
    std = config.imbalance.conr.noise_std
    views = [raw + std * torch.randn(raw.shape, generator=generator) for _ in range(2)]
    return torch.cat(views)


def hand_conr(
    config: TrialConfig,
    features: torch.Tensor,
    preds: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    """beta x ConR of the views' features and predictions, the labels the targets twice."""
    settings = config.imbalance.conr
    labels = targets.repeat(2)
    weights = None if config.train.loss.name == "bmc" else hand_weights(config, labels)
    return settings.beta * conr_loss(
        features,
        labels,
        preds,
        weights,
        window=settings.w,
        temperature=settings.t,
        push=settings.e,
    )


def conr_forward(observed: Observed) -> Forward | None:
    """The first step's ConR pass: the second training-mode forward, on 2N inputs."""
    forwards = observed.recorded.of("train", epoch=0)
    return forwards[1] if len(forwards) > 1 else None


def check_conr_first_batch(observed: Observed) -> tuple[float, list[torch.Tensor]]:
    """Assert the first batch's loss and gradients are the fit term plus beta x ConR of the
    hand-made views; return them."""
    config = observed.config
    first = observed.recorded.first_batch()
    assert first.targets is not None
    assert len(first.targets) == TRAIN_SAMPLES
    extra = conr_forward(observed)
    assert extra is not None, "no ConR pass"
    assert extra.epoch == 0
    views = hand_views(config, first.inputs)
    torch.testing.assert_close(extra.inputs, views, rtol=0, atol=0)
    assert extra.targets is not None
    torch.testing.assert_close(extra.targets, first.targets.repeat(2), rtol=0, atol=0)

    balanced_mse = new_balanced_mse(config)
    base = hand_loss(config, first.preds, first.features, first.targets, balanced_mse)
    expected = base + hand_conr(config, extra.features, extra.preds, first.targets)
    loss = observed.result.history[0]["train/loss"]
    assert loss == pytest.approx(expected.item(), rel=1e-6)
    conr_term = hand_conr(config, extra.features, extra.preds, first.targets).item()
    assert observed.result.history[0]["train/conr"] == pytest.approx(conr_term, rel=1e-6)

    # The gradients: the initial model (no FDS or dropout here) on the batch and on the views.
    model = observed.recorded.initial_model
    assert model is not None
    model.train()
    features = model.backbone(first.inputs)
    preds = model.regressor(features).squeeze(-1)
    view_features = model.backbone(views)
    view_preds = model.regressor(view_features).squeeze(-1)
    torch.testing.assert_close(view_preds.detach(), extra.preds, rtol=0, atol=0)
    total = hand_loss(config, preds, features, first.targets, balanced_mse) + hand_conr(
        config, view_features, view_preds, first.targets
    )
    total.backward()
    learnt = list(balanced_mse.parameters()) if balanced_mse is not None else []
    hand = [param.grad for param in [*model.parameters(), *learnt]]
    gradients = recorded_gradients(observed)
    assert len(gradients) == len(hand)
    for actual, wanted in zip(gradients, hand, strict=True):
        torch.testing.assert_close(actual, wanted, rtol=1e-5, atol=1e-7)
    return loss, gradients


def check_any_first_batch(observed: Observed) -> tuple[float, list[torch.Tensor]]:
    """The ConR check when ConR is on, else the plain one (which also sees no ConR pass)."""
    if observed.config.imbalance.conr.enabled:
        return check_conr_first_batch(observed)
    assert conr_forward(observed) is None
    assert "train/conr" not in observed.result.history[0]
    return check_first_batch(observed)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        knob("conr.enabled", SQINV_LDS, conr()),
        knob("conr.beta", conr(beta=4.0), conr(beta=1.0)),
        knob("conr.w", conr(w=1.0), conr(w=4.0)),
        knob("conr.t", conr(t=0.2), conr(t=0.5)),
        knob("conr.e", conr(e=0.01), conr(e=0.05)),
        knob("conr.noise_std", conr(noise_std=0.1), conr(noise_std=1.0)),
        knob(
            "conr-sample-weights",
            merged(conr(), {"imbalance": {"reweight": "inverse"}}),
            conr(),
        ),
        knob(
            "conr-bmc",
            merged(conr(), {"imbalance": {"reweight": "none", "lds": {"enabled": False}}}),
            merged(
                conr(),
                {
                    "imbalance": {"reweight": "none", "lds": {"enabled": False}},
                    "train": {"loss": "bmc"},
                },
            ),
        ),
        knob(
            "conr-with-ranksim",
            conr(),
            merged(conr(), {"imbalance": {"ranksim": {"enabled": True}}}),
        ),
    ],
)
def test_first_batch_loss_and_gradients_follow_the_conr_knob(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any]
) -> None:
    """The first batch's loss (``train/loss`` of a one-batch epoch) is the fit term plus beta x
    ConR of the two views computed by hand with the knob's value, ``train/conr`` is that ConR
    term, and the first step's gradients are those of the hand loss; the two values differ."""
    observations = [
        check_any_first_batch(observe(make_config(ONE_BATCH, override), tmp_path))
        for override in (first, second)
    ]
    (loss_a, gradients_a), (loss_b, gradients_b) = observations
    assert abs(loss_a - loss_b) > 1e-4 * abs(loss_a)
    assert max_difference(gradients_a, gradients_b) > 1e-5
