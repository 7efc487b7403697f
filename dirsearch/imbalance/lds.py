"""LDS: the kernel-smoothed label density and the per-sample loss weights derived from it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import convolve1d

from dirsearch.imbalance.bins import Binning, as_numpy, check_finite
from dirsearch.imbalance.kernels import check_kernel, kernel_window
from dirsearch.imbalance.vocabulary import REWEIGHTS

INVERSE_CLIP = (5.0, 1000.0)
"""The inverse scheme clips counts into this range, so one-sample bins cannot dominate the loss."""


@dataclass(frozen=True)
class LabelDensity:
    """Per-bin label densities: what the data has and what the loss re-weights by."""

    empirical: np.ndarray
    """Training samples per bin (float64)."""
    effective: np.ndarray
    """The re-weighting scheme's transform of ``empirical``, kernel-smoothed when LDS is on."""


def _training_targets(train_targets: np.ndarray | torch.Tensor) -> np.ndarray:
    targets = as_numpy("train_targets", train_targets)
    if targets.size == 0:
        raise ValueError("train_targets is empty; LDS needs at least one training target")
    check_finite("train_targets", targets)
    return targets


def _check_scheme(reweight: str, lds: bool) -> None:
    if reweight not in REWEIGHTS:
        raise ValueError(f"reweight must be one of {', '.join(REWEIGHTS)}; got {reweight!r}")
    if lds and reweight == "none":
        raise ValueError(
            "lds=True needs reweight 'inverse' or 'sqrt_inv'; reweight='none' has no density "
            "to smooth (set lds=False or choose a re-weighting scheme)"
        )


def label_density(
    train_targets: np.ndarray | torch.Tensor,
    binning: Binning,
    *,
    reweight: str = "sqrt_inv",
    lds: bool = True,
    kernel: str = "gaussian",
    ks: int = 5,
    sigma: float = 2.0,
) -> LabelDensity:
    """Empirical and effective label density over ``binning`` (ALGORITHMS.md section 1).

    With ``inverse`` the smoothing runs on float counts; the reference code smooths an integer
    array and so truncates the smoothed counts (a deliberate difference).
    """
    _check_scheme(reweight, lds)
    check_kernel(kernel, ks, sigma)
    counts = binning.histogram(_training_targets(train_targets)).astype(np.float64)
    if reweight == "sqrt_inv":
        transformed = np.sqrt(counts)
    elif reweight == "inverse":
        transformed = np.clip(counts, *INVERSE_CLIP)
    else:
        transformed = counts
    if lds:
        window = kernel_window(kernel, ks, sigma)
        transformed = convolve1d(transformed, window, mode="constant", cval=0.0)
    return LabelDensity(empirical=counts, effective=transformed)


def bin_weights(
    train_targets: np.ndarray | torch.Tensor,
    binning: Binning,
    *,
    reweight: str = "sqrt_inv",
    lds: bool = True,
    kernel: str = "gaussian",
    ks: int = 5,
    sigma: float = 2.0,
) -> np.ndarray:
    """The loss weight of a training sample in each bin (float64, one per bin).

    A weight depends only on its sample's bin, so a trainer can keep this small table on the
    device and look weights up by the batch's bins. Scaled so the training samples' weights
    average 1; bins whose effective density is 0 hold no training sample and get weight 0.
    """
    density = label_density(
        train_targets, binning, reweight=reweight, lds=lds, kernel=kernel, ks=ks, sigma=sigma
    )
    if reweight == "none":
        return np.ones(binning.count, dtype=np.float64)
    inverse = np.divide(
        1.0, density.effective, out=np.zeros_like(density.effective), where=density.effective > 0
    )
    total = float(np.dot(density.empirical, inverse))
    return inverse * (density.empirical.sum() / total)


def lds_weights(
    train_targets: np.ndarray | torch.Tensor,
    binning: Binning,
    *,
    reweight: str = "sqrt_inv",
    lds: bool = True,
    kernel: str = "gaussian",
    ks: int = 5,
    sigma: float = 2.0,
) -> np.ndarray:
    """One float32 loss weight per training sample, ``1 / effective density``, mean 1."""
    table = bin_weights(
        train_targets, binning, reweight=reweight, lds=lds, kernel=kernel, ks=ks, sigma=sigma
    )
    return table[binning.index(as_numpy("train_targets", train_targets))].astype(np.float32)
