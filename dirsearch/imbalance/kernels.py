"""Symmetric smoothing windows for LDS (peak 1) and FDS (sum 1)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal.windows import triang

from dirsearch.imbalance.vocabulary import KERNELS


def check_kernel(kernel: str, ks: int, sigma: float) -> None:
    """Raise a ValueError naming the bad parameter and what is allowed."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
    if isinstance(ks, bool) or not isinstance(ks, int | np.integer) or ks < 1 or ks % 2 == 0:
        raise ValueError(f"ks (kernel size) must be a positive odd integer; got {ks!r}")
    if not (isinstance(sigma, int | float | np.floating) and np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a number > 0; got {sigma!r}")


def kernel_window(kernel: str, ks: int, sigma: float) -> np.ndarray:
    """The ``ks``-point window of ``kernel``, divided by its maximum (LDS convention).

    gaussian: a unit impulse filtered by scipy's gaussian_filter1d (reflect, truncate 4), which
    is what the DIR paper's window is; triang ignores sigma; laplace is exp(-|x|/sigma).
    """
    check_kernel(kernel, ks, sigma)
    half = (ks - 1) // 2
    if kernel == "gaussian":
        impulse = np.zeros(ks, dtype=np.float64)
        impulse[half] = 1.0
        window = gaussian_filter1d(impulse, sigma=float(sigma))
    elif kernel == "triang":
        window = triang(ks).astype(np.float64)
    else:
        offsets = np.arange(-half, half + 1, dtype=np.float64)
        window = np.exp(-np.abs(offsets) / sigma) / (2.0 * sigma)
    return window / window.max()


def sum_normalised_window(kernel: str, ks: int, sigma: float) -> np.ndarray:
    """The same window scaled to sum 1 (FDS convention: smoothing keeps the statistics' scale)."""
    window = kernel_window(kernel, ks, sigma)
    return window / window.sum()
