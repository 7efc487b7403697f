"""Every knob that changes the model's computation reaches it: FDS, dropout, RRT, pretrained
weights, hidden sizes, mixed precision and memory layout.

As in ``test_trainer_knobs``: a real tiny trial runs under ``trial_recorder``, what it computed
is recomputed by hand from the knob values, and two values of one knob must both match their hand
computation and differ from each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.ndimage import convolve1d
from trial_helpers import IMAGES, TRAIN_SAMPLES, make_config
from trial_recorder import Observed, binning, knob, max_difference, observe, train_targets

from dirsearch.config.trial import TrialConfig
from dirsearch.imbalance import FDS, Binning, kernel_window
from dirsearch.models.backbones import build_backbone
from dirsearch.train import checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

FDS_BUFFERS = ("running_mean", "running_var", "smoothed_mean", "smoothed_var", "num_samples")
FDS_TRIAL: dict[str, Any] = {
    "train": {"epochs": 3, "batch_size": 256},
    "imbalance": {"fds": {"enabled": True, "start_update": 0, "start_smooth": 1}},
}
"""Three epochs of two training batches (plus the extra pass over all 603 samples in three)."""


def fds(**settings: Any) -> dict[str, Any]:
    return {"imbalance": {"fds": settings}}


def fds_binning(config: TrialConfig) -> Binning:
    """FDS's bins by hand: the data bins, their first ones pooled below ``fds.bucket_start``."""
    bins, start = config.data.bins, config.imbalance.fds.bucket_start
    if start is None:
        return binning(config)
    skipped = round((start - bins.start) / bins.width)
    return Binning(start, bins.width, bins.count - skipped)


def collected(observed: Observed, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """(features, targets) FDS should pool after ``epoch``: the extra pass runs over the training
    split in dataset order; in-pass statistics are the training batches' encoder features."""
    recorded = observed.recorded
    if observed.config.imbalance.fds.statistics == "extra_pass":
        forwards, targets = recorded.of("fds_pass", epoch), train_targets(observed.config)
    else:
        forwards = recorded.of("train", epoch)
        targets = torch.cat([forward.targets for forward in forwards]).double().numpy()
    features = torch.cat([forward.features for forward in forwards]).double().numpy()
    assert len(features) == len(targets)
    return features, targets


def hand_fds_statistics(observed: Observed) -> list[dict[str, np.ndarray]]:
    """FDS's buffers after each epoch, written out: per-bin mean and unbiased variance of the
    collected features; the first update (at ``start_update``) takes them as they are, later ones
    blend ``momentum x old + (1 - momentum) x new`` (None: a running average over all samples
    seen); bins without samples keep their statistics; the smoothed statistics convolve the
    running ones over the bins with the sum-1 ``kernel`` window, reflected at the ends."""
    settings = observed.config.imbalance.fds
    bins = fds_binning(observed.config)
    dim = observed.recorded.first_batch().features.shape[1]
    mean, var = np.zeros((bins.count, dim)), np.ones((bins.count, dim))
    smoothed_mean, smoothed_var = mean.copy(), var.copy()
    seen = np.zeros(bins.count)
    window = kernel_window(settings.kernel, settings.ks, settings.sigma)
    window = window / window.sum()
    history = []
    for epoch in range(observed.config.train.epochs):
        if epoch >= settings.start_update:
            features, targets = collected(observed, epoch)
            index = bins.index(targets)
            count = np.bincount(index, minlength=bins.count)
            seen += count
            for b in np.flatnonzero(count):
                rows = features[index == b]
                new_var = rows.var(0, ddof=1) if len(rows) > 1 else np.zeros(dim)
                if epoch == settings.start_update:
                    keep = 0.0
                elif settings.momentum is None:
                    keep = 1 - count[b] / seen[b]
                else:
                    keep = settings.momentum
                mean[b] = keep * mean[b] + (1 - keep) * rows.mean(0)
                var[b] = keep * var[b] + (1 - keep) * new_var
            smoothed_mean = convolve1d(mean, window, axis=0, mode="mirror")
            smoothed_var = convolve1d(var, window, axis=0, mode="mirror")
        history.append(
            {
                "running_mean": mean.copy(),
                "running_var": var.copy(),
                "smoothed_mean": smoothed_mean,
                "smoothed_var": smoothed_var,
                "num_samples": seen.copy(),
            }
        )
    return history


def fds_buffers(observed: Observed) -> list[torch.Tensor]:
    """Every FDS buffer saved after every epoch, in one list."""
    return [model[f"fds.{name}"] for model in observed.epoch_models for name in FDS_BUFFERS]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        knob("fds.momentum", fds(momentum=0.9), fds(momentum=0.5)),
        knob("fds.momentum-null", fds(momentum=0.9), fds(momentum=None)),
        knob("fds.start_update", fds(start_update=0), fds(start_update=1)),
        knob("fds.statistics", fds(statistics="extra_pass"), fds(statistics="in_pass")),
        knob("fds.kernel", fds(kernel="gaussian"), fds(kernel="triang")),
        knob("fds.ks", fds(ks=5), fds(ks=9)),
        knob("fds.sigma", fds(sigma=2.0), fds(sigma=1.0)),
        knob("fds.bucket_start", fds(bucket_start=None), fds(bucket_start=3)),
        knob("data.bins", {}, {"data": {"bins": {"start": 0, "width": 3, "count": 34}}}),
    ],
)
def test_fds_statistics_follow_the_knob(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any]
) -> None:
    """After every epoch the FDS buffers equal the statistics computed by hand from the
    features the trial collected (recorded as it ran) and the knob's value; the values differ."""
    buffers = []
    for override in (first, second):
        observed = observe(make_config(FDS_TRIAL, override), tmp_path)
        expected = hand_fds_statistics(observed)
        assert len(observed.epoch_models) == len(expected) == 3
        for epoch, (model, wanted) in enumerate(zip(observed.epoch_models, expected, strict=True)):
            for name in FDS_BUFFERS:
                torch.testing.assert_close(
                    model[f"fds.{name}"].double(),
                    torch.from_numpy(wanted[name]),
                    rtol=1e-5,
                    atol=1e-5,
                    msg=lambda message, name=name, epoch=epoch: f"{name} epoch {epoch}: {message}",
                )
        buffers.append(fds_buffers(observed))
    assert max_difference(*buffers) > 1e-4


def hand_smoothed(
    observed: Observed, epoch: int, features: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """``FDS.smooth`` of a fresh FDS layer holding the statistics saved after ``epoch - 1``."""
    config = observed.config
    settings = config.imbalance.fds
    layer = FDS(
        features.shape[1],
        fds_binning(config),
        kernel=settings.kernel,
        ks=settings.ks,
        sigma=settings.sigma,
        start_smooth=0,
    )
    saved = observed.epoch_models[epoch - 1]
    layer.load_state_dict({name: saved[f"fds.{name}"] for name in FDS_BUFFERS})
    return layer.train().smooth(features, targets, epoch)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        knob("fds.enabled", fds(enabled=False), fds(enabled=True)),
        knob("fds.start_smooth", fds(start_smooth=1), fds(start_smooth=2)),
    ],
)
def test_regressor_reads_smoothed_features_from_start_smooth(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any]
) -> None:
    """The regressor reads the raw encoder features in training epochs before ``start_smooth``
    (and always without FDS, in evaluation and in the statistics pass); from ``start_smooth`` on
    it reads ``FDS.smooth`` of them with the statistics of the end of the previous epoch."""
    inputs = []
    for override in (first, second):
        observed = observe(make_config(FDS_TRIAL, override), tmp_path)
        settings = observed.config.imbalance.fds
        smoothed_epochs = set()
        for forward in observed.recorded.forwards:
            if (
                forward.kind == "train"
                and settings.enabled
                and forward.epoch >= settings.start_smooth
            ):
                assert forward.targets is not None
                expected = hand_smoothed(observed, forward.epoch, forward.features, forward.targets)
                assert not torch.equal(expected, forward.features)
                torch.testing.assert_close(forward.regressor_input, expected, rtol=1e-6, atol=1e-6)
                smoothed_epochs.add(forward.epoch)
            else:
                assert torch.equal(forward.regressor_input, forward.features), forward.kind
        expected_epochs = set(range(settings.start_smooth, 3)) if settings.enabled else set()
        assert smoothed_epochs == expected_epochs
        inputs.append([forward.regressor_input for forward in observed.recorded.of("train")])
    assert max_difference(*inputs) > 1e-4


# ----- dropout ------------------------------------------------------------------------------------

TWO_STEPS: dict[str, Any] = {"train": {"epochs": 1, "batch_size": 256}}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        knob("model.dropout-0-0.3", {"model": {"dropout": 0.0}}, {"model": {"dropout": 0.3}}),
        knob("model.dropout-0.3-0.6", {"model": {"dropout": 0.3}}, {"model": {"dropout": 0.6}}),
    ],
)
def test_dropout_acts_on_the_regressor_input_in_training(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any]
) -> None:
    """In training the regressor reads each feature either zeroed or scaled by 1 / (1 - p), with a
    fraction p of them zeroed; in evaluation it reads the features unchanged."""
    fractions = []
    for override in (first, second):
        observed = observe(make_config(TWO_STEPS, override), tmp_path)
        p = observed.config.model.dropout
        features = torch.cat([f.features for f in observed.recorded.of("train")])
        read = torch.cat([f.regressor_input for f in observed.recorded.of("train")])
        live = features != 0  # the encoder ends in a ReLU: exact zeros say nothing
        dropped = live & (read == 0)
        torch.testing.assert_close(read[~dropped], features[~dropped] / (1 - p))
        fraction = float(dropped.sum() / live.sum())
        assert fraction == pytest.approx(p, abs=0.03)
        for forward in observed.recorded.of("eval"):
            assert torch.equal(forward.regressor_input, forward.features)
        fractions.append(fraction)
    assert abs(fractions[0] - fractions[1]) > 0.15


# ----- regressor re-training, pretrained weights, hidden sizes ----------------------------------


def test_rrt_starts_from_stage_one_and_trains_only_the_regressor(tmp_path: Path) -> None:
    """With ``train.rrt`` the trial starts from the stage-1 weights, its encoder runs in eval
    mode (features of the frozen BatchNorm statistics) and only the regressor moves; without it
    the weights are fresh and every parameter trains."""
    stage_one = observe(make_config(TWO_STEPS), tmp_path).result.checkpoint_dir
    assert stage_one is not None
    stage_one_weights = checkpoint.load(stage_one / checkpoint.BEST_MODEL_FILE)
    rrt = make_config(TWO_STEPS, {"train": {"lr": 1e-2, "rrt": {"checkpoint": str(stage_one)}}})
    observed = observe(rrt, tmp_path)
    model = observed.recorded.initial_model
    assert model is not None
    for name, value in model.state_dict().items():
        assert torch.equal(value, stage_one_weights[name]), name
    frozen = model.backbone.eval()
    with torch.no_grad():
        for forward in observed.recorded.of("train"):
            assert torch.equal(forward.features, frozen(forward.inputs))
    trained = [param for group in observed.recorded.steps[0] for param in group]
    assert [tuple(param.before.shape) for param in trained] == [(1, 32), (1,)]
    assert all(not torch.equal(param.before, param.after) for param in trained)

    fresh = observe(make_config(TWO_STEPS, {"train": {"lr": 1e-2}}), tmp_path).recorded
    assert fresh.initial_model is not None
    assert not torch.equal(
        fresh.initial_model.state_dict()["backbone.0.weight"],
        stage_one_weights["backbone.0.weight"],
    )
    assert len(fresh.steps[0][0]) == len(list(model.parameters()))


def test_pretrained_weights_are_the_starting_point(tmp_path: Path) -> None:
    """``model.pretrained`` loads the encoder's initial parameters and statistics from the file."""
    torch.manual_seed(123)
    backbone = build_backbone("mlp", (8,), mlp_hidden=(32, 32))
    with torch.no_grad():
        backbone[1].running_mean.uniform_()  # a statistic no fresh model has
    path = tmp_path / "backbone.pt"
    torch.save(backbone.state_dict(), path)
    starts = []
    for pretrained in (None, str(path)):
        observed = observe(make_config(TWO_STEPS, {"model": {"pretrained": pretrained}}), tmp_path)
        assert observed.recorded.initial_model is not None
        start = observed.recorded.initial_model.backbone.state_dict()
        same = all(torch.equal(start[name], value) for name, value in backbone.state_dict().items())
        assert same == (pretrained is not None)
        starts.append(list(start.values()))
    assert max_difference(*starts) > 0.1


@pytest.mark.parametrize("hidden", [[32, 32], [16]])
def test_mlp_hidden_sets_the_encoder(tmp_path: Path, hidden: list[int]) -> None:
    """The encoder's features have ``mlp_hidden[-1]`` dimensions and it trains one linear layer
    and one BatchNorm (weight and bias each) per hidden size, plus the regressor."""
    observed = observe(make_config(TWO_STEPS, {"model": {"mlp_hidden": hidden}}), tmp_path)
    assert observed.recorded.first_batch().features.shape == (256, hidden[-1])
    assert len(observed.recorded.steps[0][0]) == 4 * len(hidden) + 2


# ----- mixed precision and memory layout (images) -----------------------------------------------

ONE_IMAGE_BATCH: dict[str, Any] = {"train": {"epochs": 1, "batch_size": 1024}}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        knob("train.amp", {"train": {"amp": "off"}}, {"train": {"amp": "bf16"}}),
        knob(
            "train.memory_format",
            {"train": {"memory_format": "contiguous"}},
            {"train": {"memory_format": "channels_last"}},
        ),
    ],
)
def test_precision_and_layout_follow_the_knob(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any]
) -> None:
    """The images reach the model in the layout asked for, and the encoder computes in the
    precision asked for: its features equal a replay of the initial encoder on the same input
    under the same autocast (bf16) or none (off)."""
    seen = []
    for override in (first, second):
        observed = observe(make_config(IMAGES, ONE_IMAGE_BATCH, override), tmp_path)
        train = observed.config.train
        forward = observed.recorded.first_batch()
        assert len(forward.inputs) == TRAIN_SAMPLES
        channels_last = train.memory_format == "channels_last"
        assert forward.inputs.is_contiguous() != channels_last
        assert forward.inputs.is_contiguous(memory_format=torch.channels_last) == channels_last
        model = observed.recorded.initial_model
        assert model is not None
        bf16 = train.amp == "bf16"
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            replayed = model.train().backbone(forward.inputs)
        assert forward.features.dtype == (torch.bfloat16 if bf16 else torch.float32)
        torch.testing.assert_close(forward.features, replayed, rtol=0, atol=0)
        seen.append((forward.features.dtype, forward.inputs.stride()))
    assert seen[0] != seen[1]
