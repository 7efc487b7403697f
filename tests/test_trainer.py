"""One trial end to end on tiny real data: metrics, checkpoints, exact resume, FDS, RRT, losses.

The tiny configs are in ``trial_helpers``; torch runs one intra-op thread here (conftest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from trial_helpers import (
    BATCH,
    EVAL_SAMPLES,
    FDS_LDS,
    IMAGES,
    TRAIN_SAMPLES,
    make_config,
    merged,
    nested_stable,
    stable,
)

from dirsearch.data.synthetic import write_synthetic
from dirsearch.errors import ConfigError, DataError
from dirsearch.imbalance import REGIONS, Binning, flatten_metrics
from dirsearch.train import checkpoint, devices
from dirsearch.train.evaluator import evaluate_checkpoint
from dirsearch.train.loop import TrialResult, build_trial, run_trial
from dirsearch.train.model_setup import set_up

pytestmark = pytest.mark.usefixtures("one_thread")

METRIC_KEYS = {"epoch", "lr", "train/loss"} | {
    f"val/{region}/{name}" for region in REGIONS for name in ("mae", "mse", "gm", "n")
}


@dataclass
class Reports:
    """A ``report`` callable that records each call and the files in the folder at that time."""

    metrics: list[dict[str, float]] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    files: list[set[str]] = field(default_factory=list)

    def __call__(self, metrics: dict[str, float], folder: Path) -> None:
        self.metrics.append(dict(metrics))
        self.folders.append(folder)
        self.files.append({path.name for path in folder.iterdir()})


def state_of(folder: Path) -> dict[str, Any]:
    return checkpoint.load(folder / checkpoint.STATE_FILE)


def best_weights(folder: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(folder / checkpoint.BEST_MODEL_FILE)


def assert_same_tensors(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    different = [key for key in first if not torch.equal(first[key], second[key])]
    assert different == []


def assert_reports_every_epoch(result: TrialResult, reports: Reports, epochs: int) -> None:
    """One report per epoch with every metric and a complete checkpoint folder."""
    assert result.status == "completed"
    assert result.epochs_done == epochs
    assert [metrics["epoch"] for metrics in reports.metrics] == list(range(1, epochs + 1))
    for metrics, folder, files in zip(reports.metrics, reports.folders, reports.files, strict=True):
        assert metrics.keys() >= METRIC_KEYS
        assert folder.name == f"epoch_{int(metrics['epoch']):04d}"
        assert {checkpoint.STATE_FILE, checkpoint.BEST_MODEL_FILE} <= files
        assert math.isfinite(metrics["train/loss"])
        assert math.isfinite(metrics["val/all/mae"])
        assert metrics["val/all/n"] == EVAL_SAMPLES
        regions = sum(metrics[f"val/{region}/n"] for region in ("many", "medium", "few"))
        assert regions == EVAL_SAMPLES
    assert stable(result.history) == stable(reports.metrics)
    assert result.checkpoint_dir == reports.folders[-1]


# ----- one run per dataset kind -----------------------------------------------------------------


def test_synthetic_tabular_trial(tmp_path: Path) -> None:
    reports = Reports()
    result = run_trial(make_config(), tmp_path, reports)
    assert_reports_every_epoch(result, reports, 2)
    assert [metrics["lr"] for metrics in reports.metrics] == [1e-3, 1e-3]


def test_synthetic_image_trial(tmp_path: Path) -> None:
    reports = Reports()
    result = run_trial(make_config(IMAGES), tmp_path, reports)
    assert_reports_every_epoch(result, reports, 2)


def test_tabular_csv_trial(tmp_path: Path) -> None:
    csv = write_synthetic(tmp_path / "data", kind="tabular", scale=0.05)
    config = make_config({"data": {"name": "tabular", "csv": str(csv)}})
    reports = Reports()
    result = run_trial(config, tmp_path / "run", reports)
    assert_reports_every_epoch(result, reports, 2)


def test_targets_outside_the_bins_are_clipped_with_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Synthetic ages span 0..101; bins [10, 60) leave ages on both sides outside.
    set_up(make_config({"data": {"bins": {"start": 10, "count": 50}}}))
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 3
    for line, split in zip(warnings, ("train", "val", "test"), strict=True):
        assert line.startswith("dirsearch: warning: ")
        assert f" {split} targets lie outside data.bins [10, 60) " in line
    set_up(make_config())
    assert capsys.readouterr().err == ""


def test_trial_writes_only_under_its_workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = run_trial(make_config({"train": {"epochs": 3}}), tmp_path / "run")
    assert list(cwd.iterdir()) == []
    folders = sorted(path.name for path in (tmp_path / "run" / "checkpoints").iterdir())
    assert folders == ["epoch_0002", "epoch_0003"]  # older folders are pruned
    assert result.checkpoint_dir == tmp_path / "run" / "checkpoints" / "epoch_0003"


# ----- exact resume -----------------------------------------------------------------------------


class Interrupted(Exception):
    """Raised by a report callback to simulate a crash right after an epoch's checkpoint."""


def stop(metrics: dict[str, float], folder: Path) -> None:
    raise Interrupted


RESUMABLE = {
    "images_conr_fds_lds_dropout": merged(
        merged(IMAGES, FDS_LDS),
        {
            "train": {"epochs": 3},
            "model": {"dropout": 0.2},
            "imbalance": {"conr": {"enabled": True}},
        },
    ),
    "images_fds_extra_pass_lds_cosine_dropout": merged(
        merged(IMAGES, FDS_LDS),
        {
            "train": {"epochs": 3, "schedule": "cosine"},
            "model": {"dropout": 0.2},
            "imbalance": {"fds": {"statistics": "extra_pass"}},
        },
    ),
    "tabular_fds_in_pass_bmc_ranksim_sgd_step": merged(
        FDS_LDS,
        {
            "train": {
                "epochs": 3,
                "optimizer": "sgd",
                "lr": 1e-4,
                "schedule": {"name": "step", "milestones": [2]},
                "loss": "bmc",
            },
            "imbalance": {
                "reweight": "none",
                "lds": {"enabled": False},
                "fds": {"statistics": "in_pass"},
                "ranksim": {"enabled": True},
            },
        },
    ),
}


@pytest.mark.parametrize("override", RESUMABLE.values(), ids=RESUMABLE.keys())
def test_resume_equals_an_uninterrupted_run(tmp_path: Path, override: dict[str, Any]) -> None:
    config = make_config(override)
    with pytest.raises(Interrupted):
        run_trial(config, tmp_path / "crashed", stop)
    resumed_reports = Reports()
    resumed = run_trial(
        config,
        tmp_path / "resumed",
        resumed_reports,
        resume_from=tmp_path / "crashed" / "checkpoints" / "epoch_0001",
    )
    full_reports = Reports()
    full = run_trial(config, tmp_path / "full", full_reports)

    assert [metrics["epoch"] for metrics in resumed_reports.metrics] == [2, 3]
    assert stable(resumed_reports.metrics) == stable(full_reports.metrics[1:])
    assert stable(resumed.history) == stable(full.history)
    assert resumed.best_epoch == full.best_epoch
    assert resumed.checkpoint_dir is not None
    assert full.checkpoint_dir is not None
    resumed_state, full_state = state_of(resumed.checkpoint_dir), state_of(full.checkpoint_dir)
    assert_same_tensors(resumed_state["model"], full_state["model"])
    assert_same_tensors(best_weights(resumed.checkpoint_dir), best_weights(full.checkpoint_dir))
    if full_state["balanced_mse"] is not None:
        assert_same_tensors(resumed_state["balanced_mse"], full_state["balanced_mse"])


def test_resume_with_another_config_is_refused(tmp_path: Path) -> None:
    run_trial(make_config({"train": {"epochs": 1}}), tmp_path / "first")
    folder = tmp_path / "first" / "checkpoints" / "epoch_0001"
    changed = make_config({"train": {"epochs": 1, "lr": 2e-3}})
    with pytest.raises(ConfigError) as caught:
        run_trial(changed, tmp_path / "second", resume_from=folder)
    message = str(caught.value)
    assert message.startswith(f"{folder}: checkpoint was written with a different config")
    assert "first difference: train.lr" in message


def test_resume_from_a_folder_without_state(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="checkpoint file not found"):
        run_trial(make_config(), tmp_path / "run", resume_from=tmp_path / "empty")


# ----- FDS ----------------------------------------------------------------------------------------

FDS_BUFFERS = ("running_mean", "running_var", "smoothed_mean", "smoothed_var", "num_samples")


def fds_buffers(folder: Path) -> dict[str, torch.Tensor]:
    model = state_of(folder)["model"]
    return {name: model[f"fds.{name}"] for name in FDS_BUFFERS}


@pytest.mark.parametrize(
    ("statistics", "samples_seen"),
    [("extra_pass", TRAIN_SAMPLES), ("in_pass", TRAIN_SAMPLES // BATCH * BATCH)],
)
def test_fds_statistics_start_at_start_update(
    tmp_path: Path, statistics: str, samples_seen: int
) -> None:
    """Before ``start_update`` the buffers keep their initial values; at it they hold one epoch's
    statistics: the whole training split for the extra pass, the batches trained on (the last
    partial batch is dropped) when collected in the training pass."""
    override = {"imbalance": {"fds": {"statistics": statistics, "start_update": 1}}}
    reports = Reports()
    run_trial(make_config(FDS_LDS, override), tmp_path, reports)
    before, after = (fds_buffers(folder) for folder in reports.folders)
    assert torch.equal(before["running_mean"], torch.zeros(102, 32))
    assert torch.equal(before["running_var"], torch.ones(102, 32))
    assert torch.equal(before["num_samples"], torch.zeros(102, dtype=torch.float64))
    assert after["num_samples"].sum().item() == samples_seen
    for name in ("running_mean", "running_var", "smoothed_mean", "smoothed_var"):
        assert not torch.equal(after[name], before[name]), name


def test_fds_extra_pass_holds_per_age_means_of_train_mode_features(tmp_path: Path) -> None:
    """The first update (momentum ignored) stores each age's mean feature of the final weights,
    computed in train mode over the training split in batches of 64, as recomputed here."""
    config = make_config(FDS_LDS, {"train": {"epochs": 1}})
    result = run_trial(config, tmp_path)
    assert result.checkpoint_dir is not None
    setup = set_up(config)
    setup.model.load_state_dict(state_of(result.checkpoint_dir)["model"])
    dataset = setup.data.train.dataset
    setup.model.train()
    for module in setup.model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.momentum = 0.0
    with torch.no_grad():
        features = torch.cat(
            [
                setup.model.backbone(dataset.inputs[start : start + BATCH])
                for start in range(0, TRAIN_SAMPLES, BATCH)
            ]
        ).double()
    ages = dataset.targets.long()
    stored = fds_buffers(result.checkpoint_dir)
    for age in (0, 30, 60, 95):
        rows = features[ages == age]
        assert stored["num_samples"][age].item() == len(rows)
        if len(rows):
            expected = rows.mean(0).float()
            torch.testing.assert_close(stored["running_mean"][age], expected)


def test_fds_extra_pass_only_observes(tmp_path: Path) -> None:
    """With smoothing never starting, the extra statistics pass must not change training: the
    weights and BatchNorm statistics equal those of a run without FDS, bit for bit."""
    without = run_trial(make_config({"train": {"epochs": 2}}), tmp_path / "without")
    override = {"imbalance": {"fds": {"enabled": True, "start_smooth": 99}}}
    observed = run_trial(make_config(override), tmp_path / "with")
    assert stable(without.history) == stable(observed.history)
    assert without.checkpoint_dir is not None
    assert observed.checkpoint_dir is not None
    model = state_of(observed.checkpoint_dir)["model"]
    assert_same_tensors(
        state_of(without.checkpoint_dir)["model"],
        {key: value for key, value in model.items() if not key.startswith("fds.")},
    )


def test_fds_extra_pass_leaves_the_training_streams_alone_on_images(tmp_path: Path) -> None:
    """On images the extra pass augments its batches and, with dropout, draws dropout masks: from
    streams of its own, so statistics collected from epoch 0 change nothing until smoothing
    starts (epoch 2 of 0..1 here, i.e. never): every epoch's metrics and the final weights equal
    those of the same run without FDS, bit for bit."""
    images = merged(IMAGES, {"model": {"dropout": 0.3}, "train": {"epochs": 2}})
    without = run_trial(make_config(images), tmp_path / "without")
    late = {"imbalance": {"fds": {"enabled": True, "start_update": 0, "start_smooth": 2}}}
    observed = run_trial(make_config(images, late), tmp_path / "with")
    assert observed.checkpoint_dir is not None
    assert fds_buffers(observed.checkpoint_dir)["num_samples"].sum() == 2 * TRAIN_SAMPLES
    assert stable(without.history) == stable(observed.history)
    assert without.checkpoint_dir is not None
    model = state_of(observed.checkpoint_dir)["model"]
    assert_same_tensors(
        state_of(without.checkpoint_dir)["model"],
        {key: value for key, value in model.items() if not key.startswith("fds.")},
    )


def test_fds_bucket_start_inside_and_outside_the_bins() -> None:
    inside = set_up(make_config({"imbalance": {"fds": {"enabled": True, "bucket_start": 3}}}))
    assert inside.model.fds is not None
    assert inside.model.fds.binning == Binning(3.0, 1.0, 99)
    for start in (-2, 102, 500):
        outside = {"imbalance": {"fds": {"enabled": True, "bucket_start": start}}}
        with pytest.raises(
            ConfigError, match=r"^test config: imbalance\.fds\.bucket_start: must lie inside"
        ):
            make_config(outside)


# ----- regressor re-training ----------------------------------------------------------------------


@pytest.mark.parametrize("target", ["folder", "file"])
def test_rrt_trains_only_the_regressor(tmp_path: Path, target: str) -> None:
    stage_one = run_trial(make_config(), tmp_path / "stage1")
    assert stage_one.checkpoint_dir is not None
    source = stage_one.checkpoint_dir
    path = source if target == "folder" else source / checkpoint.BEST_MODEL_FILE
    config = make_config({"train": {"lr": 1e-2, "rrt": {"checkpoint": str(path)}}})
    stage_two = run_trial(config, tmp_path / "stage2")
    assert stage_two.status == "completed"
    assert stage_two.checkpoint_dir is not None
    before = best_weights(source)
    state = state_of(stage_two.checkpoint_dir)
    after = state["model"]
    assert after.keys() == before.keys()
    regressor = {"regressor.weight", "regressor.bias"}
    assert_same_tensors(
        {key: value for key, value in after.items() if key not in regressor},
        {key: value for key, value in before.items() if key not in regressor},
    )
    for key in regressor:
        assert not torch.equal(after[key], before[key]), key
    assert [len(group["params"]) for group in state["optimizer"]["param_groups"]] == [2]


def test_rrt_checkpoint_of_another_architecture(tmp_path: Path) -> None:
    stage_one = run_trial(make_config({"train": {"epochs": 1}}), tmp_path / "stage1")
    config = make_config(
        {
            "model": {"mlp_hidden": [16]},
            "train": {"rrt": {"checkpoint": str(stage_one.checkpoint_dir)}},
        }
    )
    with pytest.raises(ConfigError, match=r"^train\.rrt\.checkpoint: .* does not fit this model"):
        run_trial(config, tmp_path / "stage2")


# ----- losses, optimisers, schedules --------------------------------------------------------------


def test_bmc_learns_its_noise_scale(tmp_path: Path) -> None:
    config = make_config({"train": {"loss": {"name": "bmc", "init_noise_sigma": 1.0}}})
    result = run_trial(config, tmp_path)
    assert result.status == "completed"
    assert result.checkpoint_dir is not None
    sigma = state_of(result.checkpoint_dir)["balanced_mse"]["noise_sigma"].item()
    assert math.isfinite(sigma)
    assert sigma != 1.0
    assert all(math.isfinite(metrics["train/loss"]) for metrics in result.history)


def test_ranksim_adds_to_the_training_loss(tmp_path: Path) -> None:
    plain = run_trial(make_config(), tmp_path / "plain")
    ranked = run_trial(make_config({"imbalance": {"ranksim": {"enabled": True}}}), tmp_path / "rs")
    assert ranked.status == "completed"
    assert all(math.isfinite(metrics["train/loss"]) for metrics in ranked.history)
    assert ranked.history[0]["train/loss"] != plain.history[0]["train/loss"]


@pytest.mark.parametrize(
    ("train", "optimizer", "lrs"),
    [
        ({"optimizer": "adam"}, torch.optim.Adam, [1e-3, 1e-3]),
        ({"optimizer": "adamw", "schedule": "cosine"}, torch.optim.AdamW, [5e-4, 0.0]),
        (
            {"optimizer": "sgd", "schedule": {"name": "step", "milestones": [1], "gamma": 0.1}},
            torch.optim.SGD,
            [1e-4, 1e-4],
        ),
        (
            {
                "epochs": 3,
                "optimizer": "sgd",
                "schedule": {"name": "step", "milestones": [1, 2], "gamma": 0.5},
            },
            torch.optim.SGD,
            [5e-4, 2.5e-4, 2.5e-4],
        ),
    ],
)
def test_optimisers_and_schedules(
    tmp_path: Path, train: dict[str, Any], optimizer: type, lrs: list[float]
) -> None:
    """``lr`` is reported after the epoch's scheduler step: cosine over 2 epochs gives lr/2 then
    0; a step schedule multiplies by gamma once per milestone passed."""
    config = make_config({"train": train})
    assert type(build_trial(config).optimisation.optimizer) is optimizer
    result = run_trial(config, tmp_path)
    assert result.status == "completed"
    assert [metrics["lr"] for metrics in result.history] == pytest.approx(lrs, abs=1e-12)


# ----- the GPU code paths, run on the CPU ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("statistics", ["extra_pass", "in_pass"])
def test_bf16_autocast_and_channels_last_train_on_cpu(tmp_path: Path, statistics: str) -> None:
    """What CUDA runs by default (bf16 autocast, channels_last images) forced on the CPU: FDS
    smoothing and statistics, LDS weights and RankSim all take bf16 features, and training
    learns like the float32 run does: both end far below the error of predicting the training
    mean, and within 10% of each other (measured: 14.3 vs 14.6 against 25.8)."""
    learns = {
        "train": {"epochs": 6, "lr": 1e-2, "schedule": "cosine"},
        "imbalance": {"fds": {"statistics": statistics}, "ranksim": {"enabled": True}},
    }
    gpu_like = {"train": {"amp": "bf16", "memory_format": "channels_last"}}
    setup = set_up(make_config(IMAGES, FDS_LDS, learns, gpu_like))
    assert setup.feeder.channels_last
    data = setup.data
    mean_predictor = float(np.abs(data.val.targets - data.train.targets.mean()).mean())
    result = run_trial(make_config(IMAGES, FDS_LDS, learns, gpu_like), tmp_path / "bf16")
    f32_only = {"train": {"amp": "off", "memory_format": "contiguous"}}
    reference = run_trial(make_config(IMAGES, FDS_LDS, learns, f32_only), tmp_path / "f32")
    assert result.status == reference.status == "completed"
    fds = checkpoint.load(result.checkpoint_dir / checkpoint.STATE_FILE)["model"]
    assert fds["fds.running_mean"].dtype == torch.float32
    assert fds["fds.num_samples"].sum() > 0  # the update ran on bf16 features
    bf16, f32 = result.history[-1]["val/all/mae"], reference.history[-1]["val/all/mae"]
    assert bf16 < 0.7 * mean_predictor
    assert f32 < 0.7 * mean_predictor
    assert abs(bf16 - f32) < 0.1 * f32


def test_auto_precision_and_layout_are_plain_float32_on_cpu() -> None:
    setup = set_up(make_config(IMAGES))
    assert not setup.feeder.channels_last
    with torch.no_grad(), devices.autocast(setup.feeder.device, "auto"):
        inputs = torch.zeros(2, *setup.data.input_shape)
        assert setup.model.eval()(inputs).preds.dtype == torch.float32


# ----- divergence ---------------------------------------------------------------------------------


def test_huge_learning_rate_diverges_without_an_exception(tmp_path: Path) -> None:
    reports = Reports()
    result = run_trial(make_config({"train": {"optimizer": "sgd", "lr": 1e6}}), tmp_path, reports)
    assert result.status == "diverged"
    assert result.message.startswith("training diverged at epoch 1, batch ")
    assert "train.lr" in result.message
    assert "\n" not in result.message
    assert (result.epochs_done, result.best_epoch, result.checkpoint_dir) == (0, None, None)
    assert result.history == []
    assert reports.metrics == []


def test_divergence_limit_stops_at_the_first_batch(tmp_path: Path) -> None:
    result = run_trial(make_config({"train": {"divergence_limit": 1e-3}}), tmp_path)
    assert result.status == "diverged"
    assert result.message.startswith("training diverged at epoch 1, batch 1: loss ")
    assert "train.divergence_limit=0.001" in result.message


def test_divergence_in_a_later_epoch_keeps_the_earlier_best(tmp_path: Path) -> None:
    """A step schedule multiplying lr by 1e9 after epoch 1 blows up epoch 2."""
    schedule = {"name": "step", "milestones": [1], "gamma": 1e9}
    config = make_config({"train": {"optimizer": "sgd", "schedule": schedule}})
    reports = Reports()
    result = run_trial(config, tmp_path, reports)
    assert result.status == "diverged"
    assert result.message.startswith("training diverged at epoch 2, batch ")
    assert (result.epochs_done, result.best_epoch) == (1, 1)
    assert result.checkpoint_dir == tmp_path / "checkpoints" / "epoch_0001"
    assert stable(result.history) == stable(reports.metrics)
    assert len(result.history) == 1
    assert result.best_metrics == result.history[0]


# ----- model selection and test evaluation --------------------------------------------------------


def assert_same_metrics(first: dict[str, dict[str, float]], second: dict[str, dict[str, float]]):
    assert nested_stable(first) == nested_stable(second)


WRECKED_IN_EPOCH_3: dict[str, Any] = {
    "train": {
        "epochs": 3,
        "lr": 0.01,
        "schedule": {"name": "step", "milestones": [2], "gamma": 300.0},
    }
}


@pytest.mark.parametrize("select", ["val/all/mae", "val/few/mse", "val/many/gm"])
def test_best_epoch_follows_select_metric(tmp_path: Path, select: str) -> None:
    """Multiplying lr by 300 after epoch 2 wrecks epoch 3, so the best epoch is not the last one;
    the best weights the last folder holds reproduce that epoch's reported validation metrics."""
    config = make_config(WRECKED_IN_EPOCH_3, {"train": {"select_metric": select}})
    lines: list[str] = []
    result = run_trial(config, tmp_path, log=lines.append)
    assert result.status == "completed"
    values = [metrics[select] for metrics in result.history]
    assert result.best_epoch == 1 + int(np.argmin(values)) == 2
    assert result.best_metrics == result.history[1]
    assert [line.endswith("*best") for line in lines] == [True, True, False]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert result.checkpoint_dir == tmp_path / "checkpoints" / "epoch_0003"
    val = evaluate_checkpoint(config, result.checkpoint_dir, "val")
    best = {key: value for key, value in result.best_metrics.items() if key.startswith("val/")}
    assert stable([flatten_metrics(val, "val")]) == stable([best])


def test_evaluate_test_scores_the_best_weights(tmp_path: Path) -> None:
    config = make_config(WRECKED_IN_EPOCH_3)
    without = run_trial(config, tmp_path / "plain")
    assert without.test_metrics is None
    result = run_trial(config, tmp_path / "run", evaluate_test=True)
    assert result.best_epoch == 2
    test = result.test_metrics
    assert test is not None
    assert set(test) == set(REGIONS)
    assert test["all"]["n"] == EVAL_SAMPLES
    assert sum(test[region]["n"] for region in ("many", "medium", "few")) == EVAL_SAMPLES
    assert result.checkpoint_dir is not None
    assert_same_metrics(evaluate_checkpoint(config, result.checkpoint_dir), test)
    assert_same_metrics(evaluate_checkpoint(config, result.checkpoint_dir, "test"), test)
    last = build_trial(config)
    last.setup.model.load_state_dict(state_of(result.checkpoint_dir)["model"])
    assert last.evaluator.evaluate("test")["all"]["mae"] > 2 * test["all"]["mae"]


# ----- devices ------------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^train\.device: cuda .* no CUDA GPU"):
        run_trial(make_config({"train": {"device": "cuda"}}), tmp_path)


# ----- csv_images (last: another module provides the loader) --------------------------------------


@pytest.fixture(scope="module")
def image_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic images written as PNG files plus a ``path,age,split`` CSV."""
    return write_synthetic(
        tmp_path_factory.mktemp("images"), kind="image", scale=0.05, image_size=16
    )


def csv_images(csv: Path, **data: Any) -> dict[str, Any]:
    return merged(IMAGES, {"data": {"name": "csv_images", "csv": str(csv), **data}})


def test_csv_images_trial(tmp_path: Path, image_csv: Path) -> None:
    reports = Reports()
    result = run_trial(make_config(csv_images(image_csv)), tmp_path, reports)
    assert_reports_every_epoch(result, reports, 2)


def test_csv_images_trains_like_the_in_memory_images(tmp_path: Path, image_csv: Path) -> None:
    """The PNGs are lossless copies at training size: same pixels, same run, bit for bit (file
    batches arrive channels-last; the batch transform must not let that change the rounding)."""
    from_files = run_trial(make_config(csv_images(image_csv)), tmp_path / "files")
    in_memory = run_trial(make_config(IMAGES), tmp_path / "memory")
    assert stable(from_files.history) == stable(in_memory.history)


def test_csv_images_cache_gives_the_same_training(tmp_path: Path, image_csv: Path) -> None:
    cache = tmp_path / "cache"
    uncached = run_trial(make_config(csv_images(image_csv)), tmp_path / "uncached")
    histories = []
    for attempt in ("fill", "reuse"):
        reports = Reports()
        result = run_trial(
            make_config(csv_images(image_csv, cache_dir=str(cache))), tmp_path / attempt, reports
        )
        assert_reports_every_epoch(result, reports, 2)
        assert any(path.is_file() for path in cache.rglob("*"))
        histories.append(stable(result.history))
    assert histories[0] == histories[1] == stable(uncached.history)
