"""FDS layer (ALGORITHMS.md section 2) against hand values and a per-label loop reference."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from reference_dir import LoopFDS, ref_calibration_scale
from torch.utils._python_dispatch import TorchDispatchMode

from dirsearch.imbalance import FDS, Binning

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]
STAT_NAMES = ("running_mean", "running_var", "smoothed_mean", "smoothed_var")
TOL = {"rtol": 1e-5, "atol": 1e-5}


def make_pair(
    feature_dim: int, binning: Binning, device: str = "cpu", **options: Any
) -> tuple[FDS, LoopFDS]:
    fds = FDS(feature_dim, binning, **options).to(device)
    ref = LoopFDS(
        feature_dim,
        binning.count,
        start=binning.start,
        width=binning.width,
        device=device,
        **options,
    )
    return fds, ref


def assert_state_matches(fds: FDS, ref: LoopFDS) -> None:
    for name in STAT_NAMES:
        torch.testing.assert_close(getattr(fds, name).double(), getattr(ref, name), **TOL)
    assert fds.num_samples.double().tolist() == ref.num_samples.double().tolist()


def random_batch(
    gen: torch.Generator, n: int, d: int, binning: Binning, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets in a few bins (so some bins are never seen) plus outliers beyond both ends;
    features with a very different scale and offset per bin (so variance ratios get clipped)."""
    count = binning.count
    seen = torch.randperm(count, generator=gen)[: max(1, (2 * count) // 3)]
    labels = seen[torch.randint(0, seen.numel(), (n,), generator=gen)]
    frac = 0.05 + 0.9 * torch.rand(n, generator=gen, dtype=torch.float64)
    targets = binning.start + binning.width * (labels.double() + frac)
    if n >= 4:
        targets[0] = binning.start - 3.0 * binning.width  # pools into bin 0
        targets[1] = binning.start + (count + 2.5) * binning.width  # pools into the last bin
    scale = torch.exp(torch.empty(count, d, dtype=torch.float64).uniform_(-2.3, 2.3, generator=gen))
    scale[seen[0]] *= 5.0  # one loud bin: its smoothed/running variance ratio falls below 0.1
    offset = torch.randn(count, d, generator=gen, dtype=torch.float64) * 2.0
    bins = torch.floor((targets - binning.start) / binning.width).clamp(0, count - 1).long()
    noise = torch.randn(n, d, generator=gen, dtype=torch.float64)
    features = noise * scale[bins] + offset[bins]
    return features.float().to(device), targets.float().to(device)


def run_sequence(fds: FDS, ref: LoopFDS, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """update at epoch e, then smooth a fresh batch at epoch e + 1; compare after each step."""
    for epoch, (features, targets) in enumerate(batches[0::2]):
        fds.update(features, targets, epoch)
        ref.update(features.double(), targets.double(), epoch)
        assert_state_matches(fds, ref)
        smooth_features, smooth_targets = batches[2 * epoch + 1]
        got = fds.smooth(smooth_features, smooth_targets, epoch + 1)
        assert got.dtype == smooth_features.dtype
        expected = ref.smooth(smooth_features.double(), smooth_targets.double(), epoch + 1)
        torch.testing.assert_close(got.double(), expected, **TOL)


def test_initial_buffers() -> None:
    fds = FDS(6, Binning(count=9))
    for name, fill in zip(STAT_NAMES, (0.0, 1.0, 0.0, 1.0), strict=True):
        buffer = getattr(fds, name)
        assert buffer.shape == (9, 6)
        assert buffer.dtype == torch.float32
        assert torch.all(buffer == fill)
    assert fds.num_samples.shape == (9,)
    assert torch.all(fds.num_samples == 0)
    features = torch.randn(5, 6)
    torch.testing.assert_close(fds.smooth(features, torch.arange(5.0), 1), features)


def test_hand_computed_update_and_smooth() -> None:
    # 3 bins, 2 dims, triang ks 3 -> FDS window [1/4, 1/2, 1/4] (sum 1).
    fds = FDS(2, Binning(start=0.0, width=1.0, count=3), kernel="triang", ks=3)
    features = torch.tensor([[1.0, 1.0], [3.0, 1.2], [0.0, 0.0], [4.0, 4.0], [5.0, 5.0]])
    targets = torch.tensor([0.0, 0.5, 1.0, 1.9, 2.2])
    fds.update(features, targets, epoch=0)
    # unbiased stats; bin 2 holds one sample -> biased variance 0
    mean = torch.tensor([[2.0, 1.1], [2.0, 2.0], [5.0, 5.0]])
    var = torch.tensor([[2.0, 0.02], [8.0, 8.0], [0.0, 0.0]])
    torch.testing.assert_close(fds.running_mean, mean)
    torch.testing.assert_close(fds.running_var, var)
    assert fds.num_samples.tolist() == [2, 2, 1]
    # torch reflect padding: [m1, m0, m1, m2, m1]
    smoothed_mean = torch.tensor([[2.0, 1.55], [2.75, 2.525], [3.5, 3.5]])
    smoothed_var = torch.tensor([[5.0, 4.01], [4.5, 4.005], [4.0, 4.0]])
    torch.testing.assert_close(fds.smoothed_mean, smoothed_mean)
    torch.testing.assert_close(fds.smoothed_var, smoothed_var)

    queries = torch.tensor([[3.0, 2.0], [0.0, 6.0], [7.0, -1.0]])
    got = fds.smooth(queries, torch.tensor([0.2, 1.2, 2.7]), epoch=1)
    expected = torch.tensor(
        [
            # bin 0: ratios 2.5 and 200.5 -> clipped to 10
            [(3.0 - 2.0) * math.sqrt(2.5) + 2.0, (2.0 - 1.1) * math.sqrt(10.0) + 1.55],
            # bin 1: ratios 4.5/8 and 4.005/8
            [(0.0 - 2.0) * 0.75 + 2.75, (6.0 - 2.0) * math.sqrt(4.005 / 8.0) + 2.525],
            # bin 2: all variances 0 -> unchanged
            [7.0, -1.0],
        ]
    )
    torch.testing.assert_close(got, expected)


SHAPES = [
    # (feature_dim, batch, count, options)
    (1, 1, 5, {"momentum": 0.9}),
    (3, 7, 8, {"momentum": None, "kernel": "triang", "ks": 3}),
    (16, 64, 12, {"momentum": 0.9, "kernel": "laplace", "sigma": 1.5}),
    (5, 200, 25, {"momentum": None, "kernel": "gaussian", "ks": 21, "sigma": 8.0}),  # wide
    (33, 40, 30, {"momentum": 0.0}),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("feature_dim", "batch", "count", "options"), SHAPES)
def test_matches_loop_reference(
    device: str, feature_dim: int, batch: int, count: int, options: dict[str, Any]
) -> None:
    gen = torch.Generator().manual_seed(feature_dim * 1000 + batch)
    binning = Binning(start=2.0, width=0.5, count=count)
    fds, ref = make_pair(feature_dim, binning, device, **options)
    sizes = [batch, batch + 3, max(1, batch // 2), batch, 2 * batch + 1, batch]
    batches = [random_batch(gen, n, feature_dim, binning, device) for n in sizes]
    run_sequence(fds, ref, batches)


def test_loop_reference_scenario_is_not_trivial() -> None:
    """The random scenario above really hits both clips, one-sample bins and unseen bins."""
    gen = torch.Generator().manual_seed(5 * 1000 + 200)
    binning = Binning(start=2.0, width=0.5, count=25)
    ref = LoopFDS(5, 25, start=2.0, width=0.5, momentum=None, ks=21, sigma=8.0)
    features, targets = random_batch(gen, 200, 5, binning, "cpu")
    ref.update(features.double(), targets.double(), 0)
    seen = ref.num_samples > 0
    ratio = ref.smoothed_var[seen] / ref.running_var[seen]
    assert (ratio < 0.1).any()
    assert (ratio > 10).any()
    assert not seen.all()
    small_gen = torch.Generator().manual_seed(3 * 1000 + 7)
    _, small_targets = random_batch(small_gen, 7, 3, Binning(start=2.0, width=0.5, count=8), "cpu")
    labels = LoopFDS(3, 8, start=2.0, width=0.5).labels(small_targets)
    assert (torch.bincount(labels, minlength=8) == 1).any()


@pytest.mark.parametrize("device", DEVICES)
def test_first_update_is_at_start_update_and_earlier_epochs_do_nothing(device: str) -> None:
    gen = torch.Generator().manual_seed(1)
    binning = Binning(count=10)
    fds, ref = make_pair(4, binning, device, start_update=2, start_smooth=3, momentum=0.9)
    batches = [random_batch(gen, 30, 4, binning, device) for _ in range(3)]
    for epoch in (0, 1):
        fds.update(*batches[epoch], epoch)
        assert torch.all(fds.running_mean == 0)
        assert torch.all(fds.running_var == 1)
        assert torch.all(fds.num_samples == 0)
    fds.update(*batches[2], 2)  # factor 0: the batch statistics replace the initial ones
    ref.update(batches[2][0].double(), batches[2][1].double(), 2)
    assert_state_matches(fds, ref)
    features, targets = batches[0]
    torch.testing.assert_close(fds.smooth(features, targets, 2), features)  # before start_smooth
    torch.testing.assert_close(
        fds.smooth(features, targets, 3).double(),
        ref.smooth(features.double(), targets.double(), 3),
        **TOL,
    )


@pytest.mark.parametrize("device", DEVICES)
def test_eval_mode_and_early_epochs_are_identity(device: str) -> None:
    gen = torch.Generator().manual_seed(2)
    binning = Binning(count=10)
    fds = FDS(4, binning, start_smooth=2).to(device)
    fds.update(*random_batch(gen, 50, 4, binning, device), 0)
    features, targets = random_batch(gen, 20, 4, binning, device)
    assert not torch.equal(fds.smooth(features, targets, 2), features)
    for epoch in (0, 1):
        torch.testing.assert_close(fds.smooth(features, targets, epoch), features, rtol=0, atol=0)
    fds.eval()
    for epoch in (2, 50):
        torch.testing.assert_close(fds.smooth(features, targets, epoch), features, rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_zero_variance_dimension_and_zero_variance_bins(device: str) -> None:
    gen = torch.Generator().manual_seed(4)
    binning = Binning(count=6)
    fds, ref = make_pair(4, binning, device, momentum=0.9)
    targets = torch.tensor([0.5, 0.5, 0.5, 1.5, 1.5, 2.5, 3.5, 3.5, 4.5, 4.5], device=device)
    features = torch.randn(10, 4, generator=gen).to(device)
    features[:8, 2] = 1.5  # exactly constant -> running var exactly 0 in that dim
    features[8:] = torch.tensor([[0.0] * 4, [1e-6] * 4])  # bin 4: variances 5e-13, sum < 1e-10
    fds.update(features, targets, 0)
    ref.update(features.double(), targets.double(), 0)
    assert_state_matches(fds, ref)
    assert torch.all(fds.running_var[[0, 1, 3], 2] == 0)
    assert torch.all(fds.running_var[2] == 0)  # bin 2 holds a single sample
    assert torch.all(fds.running_var[4] > 0)
    assert float(fds.running_var[4].sum()) < 1e-10

    queries = torch.randn(6, 4, generator=gen).to(device)
    query_targets = torch.tensor([0.1, 1.1, 2.1, 3.1, 5.1, 4.1], device=device)
    got = fds.smooth(queries, query_targets, 1)
    torch.testing.assert_close(
        got.double(), ref.smooth(queries.double(), query_targets.double(), 1), **TOL
    )
    torch.testing.assert_close(got[[0, 1, 3], 2], queries[[0, 1, 3], 2], rtol=0, atol=0)
    torch.testing.assert_close(got[2], queries[2], rtol=0, atol=0)  # all variances 0
    torch.testing.assert_close(got[5], queries[5], rtol=0, atol=0)  # variances sum < 1e-10
    assert not torch.allclose(got[4], queries[4])  # never-seen bin 5: var 1, smoothed var not 1


@pytest.mark.parametrize("device", DEVICES)
def test_gradient_is_per_dimension_scale(device: str) -> None:
    gen = torch.Generator().manual_seed(6)
    binning = Binning(count=8)
    fds, ref = make_pair(3, binning, device, momentum=None)
    features, targets = random_batch(gen, 40, 3, binning, device)
    features[targets < 1.0, 1] = 2.0  # bin 0: a zero-variance dimension (gradient 1)
    fds.update(features, targets, 0)
    ref.update(features.double(), targets.double(), 0)
    queries, query_targets = random_batch(gen, 30, 3, binning, device)
    queries.requires_grad_(True)
    fds.smooth(queries, query_targets, 1).sum().backward()
    scale = ref_calibration_scale(ref.running_var, ref.smoothed_var)
    expected = scale[ref.labels(query_targets)]
    assert queries.grad is not None
    torch.testing.assert_close(queries.grad.double(), expected, **TOL)
    assert torch.all(queries.grad[query_targets < 1.0, 1] == 1.0)


def test_smooth_does_not_modify_its_input() -> None:
    gen = torch.Generator().manual_seed(7)
    binning = Binning(count=8)
    fds = FDS(3, binning)
    fds.update(*random_batch(gen, 40, 3, binning, "cpu"), 0)
    features, targets = random_batch(gen, 20, 3, binning, "cpu")
    before = features.clone()
    fds.smooth(features, targets, 1)
    assert torch.equal(features, before)


def test_state_dict_round_trip(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(8)
    binning = Binning(start=1.0, width=2.0, count=7)
    fds = FDS(5, binning, momentum=0.8)
    for epoch in range(2):
        fds.update(*random_batch(gen, 60, 5, binning, "cpu"), epoch)
    state = fds.state_dict()
    assert {*STAT_NAMES, "num_samples"} <= set(state)
    path = tmp_path / "fds.pt"
    torch.save(state, path)
    restored = FDS(5, binning, momentum=0.8)
    restored.load_state_dict(torch.load(path, weights_only=True))
    for name in (*STAT_NAMES, "num_samples"):
        assert torch.equal(getattr(restored, name), getattr(fds, name))
    features, targets = random_batch(gen, 25, 5, binning, "cpu")
    assert torch.equal(restored.smooth(features, targets, 3), fds.smooth(features, targets, 3))


def test_update_from_batches_equals_one_update() -> None:
    gen = torch.Generator().manual_seed(9)
    binning = Binning(count=10)
    whole, chunked = FDS(4, binning), FDS(4, binning)
    features, targets = random_batch(gen, 90, 4, binning, "cpu")
    for epoch in range(2):
        whole.update(features + epoch, targets, epoch)
        moments = chunked.new_moments()
        for rows in torch.split(torch.arange(90), 17):
            moments.add(features[rows] + epoch, chunked.bins_of(targets[rows]))
        chunked.update_from(moments, epoch)
    for name in (*STAT_NAMES, "num_samples"):
        torch.testing.assert_close(getattr(chunked, name), getattr(whole, name), **TOL)


class OpRecorder(TorchDispatchMode):
    """Records every aten op dispatched, and whether any indexes with a boolean mask."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = func.name()
        if name.startswith(("aten::index.", "aten::index_put")) and any(
            isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
            for i in (args[1] or [])
        ):
            name += "[bool mask]"
        self.ops.append(name)
        return func(*args, **(kwargs or {}))


SYNCING = ("aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select", "aten::item")


def _smooth_ops(fds: FDS, features: torch.Tensor, targets: torch.Tensor) -> list[str]:
    with OpRecorder() as recorder:
        fds.smooth(features, targets, 1)
    return recorder.ops


@pytest.mark.parametrize("device", DEVICES)
def test_smooth_never_synchronises_and_op_count_is_independent_of_bins(device: str) -> None:
    gen = torch.Generator().manual_seed(10)
    binning = Binning(count=50)
    fds = FDS(8, binning).to(device)
    fds.update(*random_batch(gen, 400, 8, binning, device), 0)
    features = torch.randn(64, 8, generator=gen).to(device)
    one_bin = _smooth_ops(fds, features, torch.full((64,), 7.5, device=device))
    all_bins = _smooth_ops(fds, features, torch.linspace(-5.0, 60.0, 64, device=device))
    assert one_bin == all_bins
    assert one_bin  # the recorder really saw the calibration ops
    for name in one_bin:
        assert name not in SYNCING, name
        assert "unique" not in name, name
        assert "[bool mask]" not in name, name


def test_update_op_count_is_independent_of_bins() -> None:
    """The statistics update is the same list of ops for 1 bin or all 50 bins present."""
    binning = Binning(count=50)
    features = torch.randn(300, 8, generator=torch.Generator().manual_seed(11))
    recorded = []
    for targets in (torch.full((300,), 7.5), torch.linspace(-5.0, 60.0, 300)):
        fds = FDS(8, binning)
        with OpRecorder() as recorder:
            fds.update(features, targets, 0)
        recorded.append(recorder.ops)
    assert recorded[0] == recorded[1]
    assert not any("[bool mask]" in name or "unique" in name for name in recorded[0])


def test_errors_name_the_parameter() -> None:
    binning = Binning(count=10)
    with pytest.raises(ValueError, match="count"):
        FDS(4, Binning(count=2), ks=5)
    FDS(4, Binning(count=3), ks=5)  # 3 bins can be reflect-padded by 2
    with pytest.raises(ValueError, match="count"):
        FDS(4, Binning(count=1), ks=3)
    with pytest.raises(ValueError, match="kernel"):
        FDS(4, binning, kernel="box")
    with pytest.raises(ValueError, match="ks"):
        FDS(4, binning, ks=4)
    with pytest.raises(ValueError, match="sigma"):
        FDS(4, binning, sigma=-1.0)
    for momentum in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="momentum"):
            FDS(4, binning, momentum=momentum)
    FDS(4, binning, momentum=0.0)
    FDS(4, binning, momentum=None)
    fds = FDS(4, binning)
    with pytest.raises(ValueError, match="feature_dim"):
        fds.update(torch.randn(6, 5), torch.arange(6.0), 0)
    fds.update(torch.randn(6, 4), torch.arange(6.0), 0)
    with pytest.raises(ValueError, match="feature_dim"):
        fds.smooth(torch.randn(6, 3), torch.arange(6.0), 1)
