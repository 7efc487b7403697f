"""Kernel windows (ALGORITHMS.md section 1.1) against hand values and first principles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from reference_dir import ref_gaussian_window, ref_laplace_window, ref_triang_window

from dirsearch.imbalance import KERNELS, kernel_window


def test_kernel_names() -> None:
    assert KERNELS == ("gaussian", "triang", "laplace")


def test_gaussian_ks3_by_hand() -> None:
    # Impulse [0, 1, 0], sigma 0.5: radius int(2.5) = 2, taps g(k) = exp(-2 k^2).
    # Half-sample reflection: 0 1 0 | 0 1 0 | 0 1 0, so out[0] sees the impulse at offsets +1
    # and -2: (g(1) + g(2)) / sum; out[1] sees it at offset 0 only (the copies are 3 away).
    got = kernel_window("gaussian", 3, 0.5)
    edge = math.exp(-2.0) + math.exp(-8.0)
    np.testing.assert_allclose(got, [edge, 1.0, edge], rtol=0, atol=1e-12)


def test_gaussian_ks5_sigma2_paper_default() -> None:
    # Radius 8 > ks: the reflected copies of the impulse contribute, which is why the window is
    # much flatter than exp(-x^2/8) ([0.607, 0.882, 1, ...]).
    expected = [0.8582852377730948, 0.945827649085357, 1.0, 0.945827649085357, 0.8582852377730948]
    np.testing.assert_allclose(kernel_window("gaussian", 5, 2.0), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(expected, ref_gaussian_window(5, 2.0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("ks", [1, 3, 5, 7, 9, 15])
@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.0, 3.0, 8.0])
def test_gaussian_matches_first_principles(ks: int, sigma: float) -> None:
    got = kernel_window("gaussian", ks, sigma)
    assert got.dtype == np.float64
    assert got.shape == (ks,)
    np.testing.assert_allclose(got, ref_gaussian_window(ks, sigma), rtol=0, atol=1e-12)


def test_triang_by_hand() -> None:
    np.testing.assert_allclose(kernel_window("triang", 1, 1.0), [1.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(kernel_window("triang", 3, 1.0), [0.5, 1.0, 0.5], atol=1e-15)
    np.testing.assert_allclose(
        kernel_window("triang", 5, 2.0), [1 / 3, 2 / 3, 1.0, 2 / 3, 1 / 3], rtol=0, atol=1e-15
    )
    np.testing.assert_allclose(
        kernel_window("triang", 7, 2.0), [0.25, 0.5, 0.75, 1.0, 0.75, 0.5, 0.25], atol=1e-15
    )


@pytest.mark.parametrize("ks", [3, 9, 21])
def test_triang_ignores_sigma_and_matches_reference(ks: int) -> None:
    np.testing.assert_allclose(kernel_window("triang", ks, 0.7), ref_triang_window(ks), atol=1e-15)
    np.testing.assert_array_equal(kernel_window("triang", ks, 0.7), kernel_window("triang", ks, 5))


def test_laplace_by_hand() -> None:
    got = kernel_window("laplace", 5, 2.0)
    e1, e05 = math.exp(-1.0), math.exp(-0.5)
    np.testing.assert_allclose(got, [e1, e05, 1.0, e05, e1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(
        kernel_window("laplace", 3, 0.25), [math.exp(-4), 1.0, math.exp(-4)], rtol=0, atol=1e-15
    )


@pytest.mark.parametrize("ks", [1, 5, 11])
@pytest.mark.parametrize("sigma", [0.5, 2.0, 10.0])
def test_laplace_matches_reference(ks: int, sigma: float) -> None:
    got = kernel_window("laplace", ks, sigma)
    np.testing.assert_allclose(got, ref_laplace_window(ks, sigma), rtol=0, atol=1e-15)


@pytest.mark.parametrize("kernel", KERNELS)
def test_windows_are_symmetric_and_peak_one(kernel: str) -> None:
    window = kernel_window(kernel, 9, 1.5)
    assert window.max() == 1.0
    assert window[4] == 1.0
    np.testing.assert_array_equal(window, window[::-1])
    assert np.all(window > 0)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("ks", [0, -1, -3, 2, 4])
def test_bad_ks(kernel: str, ks: int) -> None:
    with pytest.raises(ValueError, match="ks"):
        kernel_window(kernel, ks, 2.0)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("sigma", [0.0, -1.0])
def test_bad_sigma(kernel: str, sigma: float) -> None:
    with pytest.raises(ValueError, match="sigma"):
        kernel_window(kernel, 5, sigma)


@pytest.mark.parametrize("kernel", ["gauss", "box", ""])
def test_unknown_kernel(kernel: str) -> None:
    with pytest.raises(ValueError, match="kernel"):
        kernel_window(kernel, 5, 2.0)
