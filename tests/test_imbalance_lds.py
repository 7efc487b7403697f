"""LDS effective density and loss weights (ALGORITHMS.md section 1), hand values and a loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reference_dir import ref_label_density, ref_lds_weights

from dirsearch.imbalance import KERNELS, REWEIGHTS, Binning, label_density, lds_weights
from dirsearch.imbalance.lds import bin_weights

BINNING4 = Binning(start=0.0, width=1.0, count=4)
# Training counts per bin: [4, 1, 0, 9].
TARGETS4 = np.array([0.1, 0.5, 0.9, 0.0, 1.5] + [3.2] * 9)
BINS4 = np.array([0, 0, 0, 0, 1] + [3] * 9)


def _per_sample(per_bin: list[float]) -> np.ndarray:
    return np.array([per_bin[b] for b in BINS4])


def test_reweight_names() -> None:
    assert REWEIGHTS == ("none", "inverse", "sqrt_inv")


def test_empirical_counts_and_none_effective() -> None:
    density = label_density(TARGETS4, BINNING4, reweight="none", lds=False)
    assert density.empirical.dtype == np.float64
    assert density.empirical.shape == (4,)
    np.testing.assert_array_equal(density.empirical, [4.0, 1.0, 0.0, 9.0])
    np.testing.assert_array_equal(density.effective, [4.0, 1.0, 0.0, 9.0])


def test_none_gives_unit_float32_weights() -> None:
    weights = lds_weights(TARGETS4, BINNING4, reweight="none", lds=False)
    assert weights.dtype == np.float32
    np.testing.assert_array_equal(weights, np.ones(14, dtype=np.float32))


def test_sqrt_inv_without_lds_by_hand() -> None:
    density = label_density(TARGETS4, BINNING4, reweight="sqrt_inv", lds=False)
    np.testing.assert_allclose(density.effective, [2.0, 1.0, 0.0, 3.0], rtol=0, atol=1e-15)
    # raw 1/v: 1/2, 1, 1/3; sum over samples 4/2 + 1 + 9/3 = 6; N = 14 -> scale 14/6.
    weights = lds_weights(TARGETS4, BINNING4, reweight="sqrt_inv", lds=False)
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights, _per_sample([7 / 6, 7 / 3, 0.0, 7 / 9]), rtol=1e-6)


def test_sqrt_inv_with_triang_lds_zero_padded_edges_by_hand() -> None:
    density = label_density(TARGETS4, BINNING4, reweight="sqrt_inv", kernel="triang", ks=3)
    # window [0.5, 1, 0.5]; v = [2, 1, 0, 3] with zeros beyond both ends:
    # v~0 = 0.5*0 + 2 + 0.5*1, v~1 = 0.5*2 + 1 + 0.5*0,
    # v~2 = 0.5*1 + 0 + 0.5*3, v~3 = 0.5*0 + 3 + 0.
    np.testing.assert_allclose(density.effective, [2.5, 2.0, 2.0, 3.0], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(density.empirical, [4.0, 1.0, 0.0, 9.0])
    # raw 1/v~: 0.4 (x4), 0.5 (x1), 1/3 (x9): sum 5.1; N = 14.
    weights = lds_weights(TARGETS4, BINNING4, reweight="sqrt_inv", kernel="triang", ks=3)
    scale = 14 / 5.1
    np.testing.assert_allclose(
        weights, _per_sample([0.4 * scale, 0.5 * scale, 0.0, scale / 3]), rtol=1e-6
    )


def test_sqrt_inv_with_laplace_lds_by_hand() -> None:
    density = label_density(TARGETS4, BINNING4, reweight="sqrt_inv", kernel="laplace", ks=3)
    e = math.exp(-0.5)  # sigma 2: window [e^-1/2, 1, e^-1/2]
    np.testing.assert_allclose(
        density.effective, [2 + e, 1 + 2 * e, 4 * e, 3.0], rtol=0, atol=1e-14
    )


def test_gaussian_lds_default_window_by_hand() -> None:
    # ks 5, sigma 2 window (peak 1): [a, c, 1, c, a]
    a, c = 0.8582852377730948, 0.945827649085357
    density = label_density(TARGETS4, BINNING4, reweight="sqrt_inv")
    v = [2.0, 1.0, 0.0, 3.0]
    expected = [
        v[0] + c * v[1] + a * v[2],
        c * v[0] + v[1] + c * v[2] + a * v[3],
        a * v[0] + c * v[1] + v[2] + c * v[3],
        a * v[1] + c * v[2] + v[3],
    ]
    np.testing.assert_allclose(density.effective, expected, rtol=0, atol=1e-12)


def _inverse_targets() -> np.ndarray:
    # Counts per bin: [2, 7, 0, 1200]  -> clip(., 5, 1000) = [5, 7, 5, 1000].
    return np.concatenate([np.full(2, 0.5), np.full(7, 1.5), np.full(1200, 3.5)])


def test_inverse_clips_counts_without_lds() -> None:
    targets = _inverse_targets()
    density = label_density(targets, BINNING4, reweight="inverse", lds=False)
    np.testing.assert_array_equal(density.empirical, [2.0, 7.0, 0.0, 1200.0])
    np.testing.assert_array_equal(density.effective, [5.0, 7.0, 5.0, 1000.0])
    weights = lds_weights(targets, BINNING4, reweight="inverse", lds=False)
    total = 2 / 5 + 7 / 7 + 1200 / 1000
    scale = targets.size / total
    expected = np.concatenate(
        [np.full(2, scale / 5), np.full(7, scale / 7), np.full(1200, scale / 1000)]
    )
    np.testing.assert_allclose(weights, expected, rtol=1e-6)


def test_inverse_lds_convolves_floats_not_truncated_integers() -> None:
    targets = _inverse_targets()
    density = label_density(targets, BINNING4, reweight="inverse", kernel="triang", ks=3)
    # [5, 7, 5, 1000] (empty bin 2 clipped up to 5 too) smoothed with [0.5, 1, 0.5]:
    # 8.5 and 508.5 would be truncated to 8 and 508 by an integer convolution.
    np.testing.assert_allclose(density.effective, [8.5, 12.0, 508.5, 1002.5], rtol=0, atol=1e-12)
    weights = lds_weights(targets, BINNING4, reweight="inverse", kernel="triang", ks=3)
    total = 2 / 8.5 + 7 / 12 + 1200 / 1002.5
    scale = targets.size / total
    np.testing.assert_allclose(
        weights[[0, 2, 9]], [scale / 8.5, scale / 12, scale / 1002.5], rtol=1e-6
    )


def test_weights_mean_one_and_float32_on_random_data() -> None:
    rng = np.random.default_rng(3)
    targets = rng.gamma(2.0, 8.0, size=3000)
    binning = Binning(start=0.0, width=1.0, count=80)
    for reweight in ("inverse", "sqrt_inv"):
        for lds in (False, True):
            weights = lds_weights(targets, binning, reweight=reweight, lds=lds)
            assert weights.dtype == np.float32
            assert weights.shape == (3000,)
            assert abs(weights.astype(np.float64).mean() - 1.0) < 1e-6
            assert np.all(weights > 0)


@pytest.mark.parametrize("reweight", ["inverse", "sqrt_inv"])
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("ks", "sigma"), [(3, 1.0), (5, 2.0), (9, 0.7)])
def test_lds_matches_slow_loop(reweight: str, kernel: str, ks: int, sigma: float) -> None:
    rng = np.random.default_rng(ks * 7 + len(kernel))
    targets = np.concatenate([rng.normal(30.0, 9.0, 700), rng.uniform(-5.0, 90.0, 30)])
    start, width, count = 0.0, 1.5, 50
    binning = Binning(start=start, width=width, count=count)
    opts = {"reweight": reweight, "lds": True, "kernel": kernel, "ks": ks, "sigma": sigma}
    density = label_density(targets, binning, **opts)  # type: ignore[arg-type]
    empirical, effective = ref_label_density(targets, start, width, count, **opts)
    np.testing.assert_array_equal(density.empirical, empirical)
    np.testing.assert_allclose(density.effective, effective, rtol=1e-12, atol=1e-12)
    weights = lds_weights(targets, binning, **opts)  # type: ignore[arg-type]
    expected = ref_lds_weights(targets, start, width, count, **opts)
    np.testing.assert_allclose(weights, expected, rtol=2e-6)


@pytest.mark.parametrize("reweight", REWEIGHTS)
def test_without_lds_matches_slow_loop(reweight: str) -> None:
    rng = np.random.default_rng(11)
    targets = rng.uniform(0.0, 5.0, 400)
    binning = Binning(start=0.0, width=0.1, count=50)
    density = label_density(targets, binning, reweight=reweight, lds=False)
    _, effective = ref_label_density(targets, 0.0, 0.1, 50, reweight=reweight, lds=False)
    np.testing.assert_allclose(density.effective, effective, rtol=1e-15)
    weights = lds_weights(targets, binning, reweight=reweight, lds=False)
    expected = ref_lds_weights(targets, 0.0, 0.1, 50, reweight=reweight, lds=False)
    np.testing.assert_allclose(weights, expected, rtol=2e-6)


def test_torch_input_gives_same_result_as_numpy() -> None:
    as_tensor = torch.tensor(TARGETS4, dtype=torch.float32)
    got = lds_weights(as_tensor, BINNING4, reweight="sqrt_inv", kernel="triang", ks=3)
    expected = lds_weights(TARGETS4, BINNING4, reweight="sqrt_inv", kernel="triang", ks=3)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, expected)
    density = label_density(as_tensor, BINNING4, reweight="inverse", lds=False)
    np.testing.assert_array_equal(density.effective, [5.0, 5.0, 5.0, 9.0])


def test_bin_weights_table_gives_per_sample_weights() -> None:
    table = bin_weights(TARGETS4, BINNING4, reweight="sqrt_inv", lds=False)
    np.testing.assert_allclose(table, [7 / 6, 7 / 3, 0.0, 7 / 9], rtol=1e-12)
    np.testing.assert_array_equal(bin_weights(TARGETS4, BINNING4, reweight="none", lds=False), 1.0)


def test_lds_with_reweight_none_is_an_error() -> None:
    for func in (label_density, lds_weights):
        with pytest.raises(ValueError, match="lds") as info:
            func(TARGETS4, BINNING4, reweight="none", lds=True)
        assert "reweight" in str(info.value)


@pytest.mark.parametrize("func", [label_density, lds_weights])
def test_bad_inputs(func) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"train_targets|empty"):
        func(np.array([]), BINNING4)
    with pytest.raises(ValueError, match="train_targets"):
        func(np.array([1.0, np.nan]), BINNING4)
    with pytest.raises(ValueError, match="train_targets"):
        func(torch.tensor([1.0, float("inf")]), BINNING4)
    with pytest.raises(ValueError, match="reweight"):
        func(TARGETS4, BINNING4, reweight="log")
    with pytest.raises(ValueError, match="kernel"):
        func(TARGETS4, BINNING4, kernel="box")
    with pytest.raises(ValueError, match="ks"):
        func(TARGETS4, BINNING4, ks=4)
    with pytest.raises(ValueError, match="sigma"):
        func(TARGETS4, BINNING4, sigma=0.0)
