"""ConR in a whole trial: its views, its stream, its extra pass beside RankSim, FDS and LDS, bf16
and CUDA, old checkpoints, the progress line, its config rules and the shipped space files.

The knob tests (each ConR knob reaching the first batch's loss and gradients) are in
``test_trainer_knobs_conr``; the loss itself against the published function in
``test_imbalance_conr``.
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from test_progress_results import Terminal
from test_trainer import Interrupted, assert_same_tensors, state_of, stop
from torch.utils.data import DataLoader
from trial_helpers import FDS_LDS, IMAGES, TRAIN_SAMPLES, make_config, merged, stable
from trial_recorder import Observed, observe

from dirsearch.config.files import trial_config_from_dict
from dirsearch.config.trial import TrialConfig
from dirsearch.errors import ConfigError
from dirsearch.sweep.spec_reader import load_sweep_spec
from dirsearch.train import checkpoint
from dirsearch.train.datasets import load_data
from dirsearch.train.loop import run_trial

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
CONR: dict[str, Any] = {"imbalance": {"conr": {"enabled": True}}}
RANKSIM: dict[str, Any] = {"imbalance": {"ranksim": {"enabled": True}}}
ONE_EPOCH: dict[str, Any] = {"train": {"epochs": 1}}


def joined(*overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides merged in order."""
    return functools.reduce(merged, overrides, {})


def first_raw_batch(config: TrialConfig) -> torch.Tensor:
    """The raw inputs of the first training batch: the data loader's first shuffled indices
    (its generator seeded ``seed``), fetched from the training dataset."""
    data = load_data(config.data)
    order = DataLoader(
        range(len(data.train.targets)),
        batch_size=config.train.batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(config.seed),
    )
    inputs, _ = data.train.dataset.__getitems__(next(iter(order)).tolist())
    return inputs


def conr_forwards(observed: Observed, epoch: int | None = None) -> list[Any]:
    """The ConR passes: the training-mode forwards on twice a batch's rows."""
    forwards = observed.recorded.of("train", epoch)
    return [f for f in forwards if len(f.inputs) == 2 * observed.config.train.batch_size]


def test_views_are_the_training_augmentation_twice_from_conrs_own_stream(
    tmp_path: Path,
) -> None:
    """On images each step's ConR pass takes the raw batch through the training augmentation
    twice, drawn from a generator seeded ``seed + 4``, first view first; the batch itself is
    augmented from ``seed + 1`` as without ConR."""
    observed = observe(make_config(IMAGES, CONR, ONE_EPOCH), tmp_path)
    config = observed.config
    raw = first_raw_batch(config)
    transform = load_data(config.data).transform
    batch, extra = observed.recorded.of("train", 0)[:2]
    augment = torch.Generator().manual_seed(config.seed + 1)
    torch.testing.assert_close(batch.inputs, transform.train(raw, augment), rtol=0, atol=0)
    stream = torch.Generator().manual_seed(config.seed + 4)
    views = [transform.train(raw, stream), transform.train(raw, stream)]
    torch.testing.assert_close(extra.inputs, torch.cat(views), rtol=0, atol=0)
    assert not torch.equal(views[0], views[1])
    assert extra.targets is not None and batch.targets is not None
    torch.testing.assert_close(extra.targets, batch.targets.repeat(2), rtol=0, atol=0)
    steps = TRAIN_SAMPLES // config.train.batch_size
    assert len(conr_forwards(observed)) == steps  # one extra pass per step
    assert len(observed.recorded.of("train")) == 2 * steps


def test_conr_with_beta_zero_trains_bit_for_bit_like_conr_off(tmp_path: Path) -> None:
    """ConR's pass only adds its loss: its views and dropout masks draw from a stream of its own
    and BatchNorm's running statistics move with the batch's pass alone, so with beta 0 (images,
    BatchNorm, dropout, FDS, RankSim, LDS) every epoch's metrics, the final weights and every
    other stream equal those of the same run without ConR, bit for bit. Without ConR there is
    no ``train/conr`` and the metric keys are as they always were."""
    base = joined(IMAGES, FDS_LDS, RANKSIM, {"model": {"dropout": 0.3}, "train": {"epochs": 2}})
    without = run_trial(make_config(base), tmp_path / "without")
    zero = merged(base, {"imbalance": {"conr": {"enabled": True, "beta": 0.0}}})
    with_zero = run_trial(make_config(zero), tmp_path / "zero")
    assert [metrics["train/conr"] for metrics in with_zero.history] == [0.0, 0.0]
    keys = list(without.history[0])
    assert "train/conr" not in keys
    assert list(with_zero.history[0]) == [*keys[:1], "train/conr", *keys[1:]]
    no_conr = [
        {key: value for key, value in metrics.items() if key != "train/conr"}
        for metrics in with_zero.history
    ]
    assert stable(without.history) == stable(no_conr)
    assert without.checkpoint_dir is not None and with_zero.checkpoint_dir is not None
    first, second = state_of(without.checkpoint_dir), state_of(with_zero.checkpoint_dir)
    assert_same_tensors(first["model"], second["model"])
    for name in ("torch", "loader", "augment", "ranksim", "fds"):
        assert torch.equal(first["rng"][name], second["rng"][name]), name
    assert torch.equal(first["rng"]["conr"], torch.Generator().manual_seed(4).get_state())
    assert not torch.equal(second["rng"]["conr"], first["rng"]["conr"])


@pytest.mark.slow
def test_conr_ranksim_fds_and_lds_train_together(tmp_path: Path) -> None:
    """ConR, RankSim, FDS (smoothing from epoch 1) and SQINV+LDS in one image trial: every
    epoch's loss and ConR term are finite; the ConR pass goes through the FDS layer like the
    batch does (smoothed from start_smooth on); FDS's statistics see the training split only,
    never the views."""
    config = make_config(IMAGES, FDS_LDS, RANKSIM, CONR, {"train": {"batch_size": 256}})
    observed = observe(config, tmp_path)
    history = observed.result.history
    assert len(history) == 2
    for metrics in history:
        assert math.isfinite(metrics["train/loss"])
        assert 0 < metrics["train/conr"] < metrics["train/loss"]
    for epoch, smoothed in ((0, False), (1, True)):
        passes = conr_forwards(observed, epoch)
        assert len(passes) == TRAIN_SAMPLES // 256
        for forward in passes:
            assert (not torch.equal(forward.regressor_input, forward.features)) == smoothed
    fds = observed.epoch_models[-1]
    assert fds["fds.num_samples"].sum() == 2 * TRAIN_SAMPLES


@pytest.mark.slow
def test_conr_in_bf16_autocast_on_cpu(tmp_path: Path) -> None:
    """Under bf16 autocast (forced on the CPU, as CUDA runs by default) the ConR pass runs in
    autocast like the batch's forward (bf16 features) while the loss computes in float32: the
    term is finite and close to the float32 run's."""
    base = joined(IMAGES, FDS_LDS, CONR, ONE_EPOCH)
    bf16 = observe(make_config(base, {"train": {"amp": "bf16"}}), tmp_path)
    f32 = observe(make_config(base, {"train": {"amp": "off"}}), tmp_path)
    assert {f.features.dtype for f in conr_forwards(bf16)} == {torch.bfloat16}
    assert {f.features.dtype for f in conr_forwards(f32)} == {torch.float32}
    low, full = bf16.result.history[0]["train/conr"], f32.result.history[0]["train/conr"]
    assert math.isfinite(low)
    assert low == pytest.approx(full, rel=0.05)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_conr_on_cuda(tmp_path: Path) -> None:
    """On CUDA (bf16 autocast, channels_last by default) ConR trains beside RankSim, FDS and
    LDS, and its views are those of the CPU: the augmentation draws on a CPU generator."""
    base = joined(IMAGES, FDS_LDS, RANKSIM, CONR, ONE_EPOCH)
    cuda = observe(make_config(base, {"train": {"device": "cuda"}}), tmp_path)
    cpu = observe(make_config(base, {"train": {"device": "cpu"}}), tmp_path)
    metrics = cuda.result.history[0]
    assert math.isfinite(metrics["train/loss"])
    assert math.isfinite(metrics["train/conr"])
    on_cuda, on_cpu = conr_forwards(cuda)[0].inputs, conr_forwards(cpu)[0].inputs
    assert on_cuda.device.type == "cuda"
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=0, atol=1e-6)


def test_a_checkpoint_from_before_conr_resumes(tmp_path: Path) -> None:
    """A checkpoint written before ConR existed (no ``imbalance.conr`` in its config, no
    ``conr`` stream in its RNG state) resumes, and the run equals the uninterrupted one."""
    config = make_config({"train": {"epochs": 2}})
    with pytest.raises(Interrupted):
        run_trial(config, tmp_path / "crashed", stop)
    folder = tmp_path / "crashed" / "checkpoints" / "epoch_0001"
    state = state_of(folder)
    del state["config"]["imbalance"]["conr"]
    del state["rng"]["conr"]
    torch.save(state, folder / checkpoint.STATE_FILE)
    resumed = run_trial(config, tmp_path / "resumed", resume_from=folder)
    full = run_trial(config, tmp_path / "full")
    assert stable(resumed.history) == stable(full.history)
    assert resumed.checkpoint_dir is not None and full.checkpoint_dir is not None
    assert_same_tensors(
        state_of(resumed.checkpoint_dir)["model"], state_of(full.checkpoint_dir)["model"]
    )


def test_the_progress_line_and_the_epoch_summary_show_the_conr_term(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal the progress bar shows ``conr`` beside the loss, and the epoch's summary
    line shows ``train/conr``; without ConR neither does."""
    drawn = {}
    for name, override in (("off", {}), ("on", CONR)):
        terminal = Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        lines: list[str] = []
        run_trial(
            make_config(override, ONE_EPOCH), tmp_path / name, progress=True, log=lines.append
        )
        drawn[name] = (terminal.getvalue(), lines[0])
    bar, summary = drawn["on"]
    assert " loss " in bar and " conr " in bar
    assert "train/conr " in summary
    bar, summary = drawn["off"]
    assert " loss " in bar and "conr" not in bar
    assert "conr" not in summary


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("beta", -1.0, "must be >= 0, got -1.0"),
        ("w", 0.0, "must be > 0, got 0.0"),
        ("t", 0.0, "must be > 0, got 0.0"),
        ("t", -0.2, "must be > 0, got -0.2"),
        ("e", -0.01, "must be >= 0, got -0.01"),
        ("noise_std", -0.1, "must be >= 0, got -0.1"),
    ],
)
def test_conr_settings_are_checked(key: str, value: float, problem: str) -> None:
    mapping = {"imbalance": {"conr": {"enabled": True, key: value}}}
    with pytest.raises(ConfigError) as caught:
        trial_config_from_dict(mapping, "trial.yaml", Path("/base"))
    assert str(caught.value) == f"trial.yaml: imbalance.conr.{key}: {problem}"


def test_conr_defaults_are_the_papers() -> None:
    conr = trial_config_from_dict({}, "trial.yaml", Path("/base")).imbalance.conr
    assert (conr.enabled, conr.beta, conr.w, conr.t, conr.e) == (False, 4.0, 1.0, 0.2, 0.01)
    assert conr.noise_std == 0.1
    edge = {"imbalance": {"conr": {"beta": 0, "e": 0, "noise_std": 0}}}
    assert trial_config_from_dict(edge, "trial.yaml", Path("/base")).imbalance.conr.beta == 0


@pytest.mark.parametrize("name", ["imdb", "agedb"])
def test_the_paper_space_files_search_conr_behind_its_switch(name: str) -> None:
    spec = load_sweep_spec(ROOT / "search_spaces" / f"{name}.yaml")
    dimensions = {dimension.path: dimension for dimension in spec.dimensions}
    assert dimensions["imbalance.conr.enabled"].values == (False, True)
    for knob in ("beta", "w", "t", "e"):
        conditions = dimensions[f"imbalance.conr.{knob}"].conditions
        assert [(c.path, c.values) for c in conditions] == [("imbalance.conr.enabled", (True,))]
    for point in spec.points:  # the start points (vanilla, the paper's) keep ConR off
        assert point["imbalance.conr.enabled"] is False


def test_the_paper_grid_has_a_sqinv_lds_fds_conr_row() -> None:
    spec = load_sweep_spec(ROOT / "search_spaces" / "paper_grid.yaml")
    rows = [spec.trial_config(point).imbalance for point in spec.points]
    stacked = [
        row
        for row in rows
        if row.reweight == "sqrt_inv" and row.lds.enabled and row.fds.enabled and row.conr.enabled
    ]
    assert len(stacked) == 1
    assert sum(row.conr.enabled for row in rows) == 1
