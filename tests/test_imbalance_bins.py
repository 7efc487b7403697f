"""Binning: target -> bin index, edges, centres, histogram (ALGORITHMS.md section 0)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from reference_dir import ref_bin_index

from dirsearch.imbalance import Binning

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]


def test_defaults_are_one_year_bins_over_100_ages() -> None:
    binning = Binning()
    assert (binning.start, binning.width, binning.count) == (0.0, 1.0, 100)


def test_index_hand_computed_with_clipping() -> None:
    binning = Binning(start=10.0, width=2.0, count=4)  # bins [10,12) [12,14) [14,16) [16,18)
    targets = np.array([10.0, 11.99, 12.0, 15.5, 17.9, 9.0, -50.0, 18.0, 1e6])
    got = binning.index(targets)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [0, 0, 1, 2, 3, 0, 0, 3, 3])


def test_index_tolerance_puts_decimal_edges_in_the_upper_bin() -> None:
    # 0.3 / 0.1 == 2.9999999999999996 in float64: a plain floor would say bin 2.
    binning = Binning(start=0.0, width=0.1, count=50)
    targets = np.array([0.3, 0.7, 2.3, 4.9, 0.29])
    np.testing.assert_array_equal(binning.index(targets), [3, 7, 23, 49, 2])


def test_index_matches_reference_on_random_targets() -> None:
    rng = np.random.default_rng(0)
    binning = Binning(start=-1.5, width=0.25, count=37)
    targets = rng.uniform(-4.0, 12.0, size=500)
    targets[:40] = np.round(targets[:40] * 4) / 4  # many exactly on an edge
    expected = [ref_bin_index(y, -1.5, 0.25, 37) for y in targets]
    np.testing.assert_array_equal(binning.index(targets), expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64])
def test_index_of_tensor_is_long_on_same_device(device: str, dtype: torch.dtype) -> None:
    binning = Binning(start=0.0, width=1.0, count=5)
    targets = torch.tensor([0, 1, 4, 7, -2], dtype=dtype, device=device)
    got = binning.index(targets)
    assert isinstance(got, torch.Tensor)
    assert got.dtype == torch.long
    assert got.device == targets.device
    assert got.tolist() == [0, 1, 4, 4, 0]


def test_index_of_tensor_agrees_with_numpy() -> None:
    binning = Binning(start=0.0, width=0.1, count=50)
    values = np.round(np.linspace(0.0, 5.0, 51), 10)
    as_tensor = binning.index(torch.tensor(values, dtype=torch.float64))
    np.testing.assert_array_equal(as_tensor.numpy(), binning.index(values))
    np.testing.assert_array_equal(binning.index(values), np.minimum(np.arange(51), 49))


def test_edges_and_centers() -> None:
    binning = Binning(start=3.0, width=0.5, count=4)
    np.testing.assert_allclose(binning.edges, [3.0, 3.5, 4.0, 4.5, 5.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(binning.centers, [3.25, 3.75, 4.25, 4.75], rtol=0, atol=1e-12)
    assert binning.edges.shape == (5,)
    assert binning.centers.shape == (4,)


def test_histogram_numpy_hand_computed() -> None:
    binning = Binning(start=0.0, width=1.0, count=4)
    got = binning.histogram(np.array([0.5, 0.1, 2.0, 2.9, 2.5, -3.0, 10.0]))
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [3, 0, 3, 1])


@pytest.mark.parametrize("device", DEVICES)
def test_histogram_tensor(device: str) -> None:
    binning = Binning(start=0.0, width=1.0, count=4)
    got = binning.histogram(torch.tensor([0.5, 0.1, 2.0, 2.9, 2.5, -3.0, 10.0], device=device))
    assert isinstance(got, torch.Tensor)
    assert got.dtype == torch.int64
    assert got.device.type == torch.device(device).type
    assert got.tolist() == [3, 0, 3, 1]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_histogram_rejects_non_finite(bad: float) -> None:
    binning = Binning(count=10)
    with pytest.raises(ValueError, match="targets"):
        binning.histogram(np.array([1.0, bad, 2.0]))
    with pytest.raises(ValueError, match="targets"):
        binning.histogram(torch.tensor([1.0, bad, 2.0]))


@pytest.mark.parametrize("width", [0.0, -1.0])
def test_bad_width(width: float) -> None:
    with pytest.raises(ValueError, match="width"):
        Binning(width=width)


@pytest.mark.parametrize("count", [0, -3])
def test_bad_count(count: int) -> None:
    with pytest.raises(ValueError, match="count"):
        Binning(count=count)


def test_is_frozen() -> None:
    binning = Binning()
    with pytest.raises(dataclasses.FrozenInstanceError):
        binning.count = 3  # type: ignore[misc]
