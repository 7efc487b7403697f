"""FDS: feature distribution smoothing (ALGORITHMS.md section 2), all bins at once.

The reference implementation loops over the labels of every batch in Python. Here the per-bin
statistics are gathered with index operations, and the calibration (a per-bin scale and shift) is
recomputed once per statistics update instead of on every batch, so ``smooth`` is a
handful of tensor operations whatever the number of bins, and never waits on the host.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from dirsearch.imbalance.bins import Binning, as_numpy, check_finite
from dirsearch.imbalance.kernels import check_kernel, sum_normalised_window

VARIANCE_RATIO_CLIP = (0.1, 10.0)
"""Bounds of ``smoothed var / running var``: keeps re-colouring from exploding rare bins."""
DEGENERATE_VARIANCE_SUM = 1e-10
"""A bin whose variances sum below this has no usable spread: its features pass unchanged."""


CPU_CHUNK_ROWS = 1024
"""Rows per step of the deviation pass on CPU, where fresh epoch-sized temporaries cost more in
page faults than the arithmetic; CUDA's caching allocator makes one step the fastest there."""


def bin_moments(
    features: torch.Tensor, bins: torch.Tensor, num_bins: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-bin count (B,), mean (B, d) and sum of squared deviations (B, d) of one batch.

    Two passes (means first, then squared deviations from them) keep float32 exact enough to
    match a per-label ``torch.var``; every bin is handled by the same few index operations.
    """
    count = torch.bincount(bins, minlength=num_bins).to(features.dtype)
    sums = features.new_zeros(num_bins, features.shape[1]).index_add_(0, bins, features)
    mean = sums / count.clamp(min=1).unsqueeze(1)
    sq_dev = torch.zeros_like(mean)
    rows_per_step = CPU_CHUNK_ROWS if features.device.type == "cpu" else features.shape[0]
    scratch = features.new_empty(min(rows_per_step, features.shape[0]), features.shape[1])
    for rows, row_bins in zip(
        features.split(rows_per_step), bins.split(rows_per_step), strict=True
    ):
        deviation = scratch[: rows.shape[0]]
        torch.index_select(mean, 0, row_bins, out=deviation)
        torch.sub(rows, deviation, out=deviation)
        sq_dev.index_add_(0, row_bins, deviation.square_())
    return count, mean, sq_dev


class FeatureMoments:
    """Per-bin sample count, mean and sum of squared deviations, accumulated batch by batch.

    Batches are merged with the pairwise (Chan et al.) update in float64, so the statistics of
    a whole epoch can be collected during the training pass or an extra pass without keeping
    the features, and without the cancellation of a sum-of-squares formula.
    """

    def __init__(self, num_bins: int, feature_dim: int, device: torch.device | str) -> None:
        self.count = torch.zeros(num_bins, dtype=torch.float64, device=device)
        self.mean = torch.zeros(num_bins, feature_dim, dtype=torch.float64, device=device)
        self.sq_dev = torch.zeros(num_bins, feature_dim, dtype=torch.float64, device=device)

    @torch.no_grad()
    def add(self, features: torch.Tensor, bins: torch.Tensor) -> None:
        """Merge a batch of ``features`` (N, d) whose bins are ``bins`` (N,) into the totals."""
        batch_count, batch_mean, batch_sq_dev = bin_moments(
            features.detach().to(torch.float32), bins, self.count.shape[0]
        )
        batch_count = batch_count.to(torch.float64).unsqueeze(1)
        seen = self.count.unsqueeze(1)
        share = batch_count / (seen + batch_count).clamp(min=1)
        delta = batch_mean.to(torch.float64) - self.mean
        self.mean += delta * share
        self.sq_dev += batch_sq_dev.to(torch.float64) + delta.square() * seen * share
        self.count += batch_count.squeeze(1)

    def variance(self) -> torch.Tensor:
        """Unbiased variance per bin; biased (zero) for a bin holding one sample."""
        return self.sq_dev / (self.count - 1).clamp(min=1).unsqueeze(1)


class FDS(nn.Module):
    """Re-calibrates features towards kernel-smoothed per-bin statistics during training.

    ``update`` (end of an epoch) refreshes the running and smoothed statistics from the epoch's
    features; ``smooth`` (each training batch from ``start_smooth`` on) whitens each feature
    with its bin's running statistics and re-colours it with the smoothed ones. Both use one
    snapshot taken at the end of the previous update (the reference code lets the whitening
    statistics follow newer running statistics while the smoothed ones lag: we do not).
    """

    def __init__(
        self,
        feature_dim: int,
        binning: Binning,
        *,
        kernel: str = "gaussian",
        ks: int = 5,
        sigma: float = 2.0,
        momentum: float | None = 0.9,
        start_update: int = 0,
        start_smooth: int = 1,
    ) -> None:
        super().__init__()
        check_kernel(kernel, ks, sigma)
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 1:
            raise ValueError(f"feature_dim must be an integer >= 1; got {feature_dim!r}")
        if binning.count <= (ks - 1) // 2:
            raise ValueError(
                f"FDS needs more bins than half the kernel size to reflect-pad: binning count "
                f"{binning.count} <= (ks-1)/2 = {(ks - 1) // 2}; use a smaller ks or more bins"
            )
        if momentum is not None and not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1) or None; got {momentum!r}")
        for name, epoch in (("start_update", start_update), ("start_smooth", start_smooth)):
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                raise ValueError(f"{name} must be an integer epoch >= 0; got {epoch!r}")
        self.feature_dim = feature_dim
        self.binning = binning
        self.momentum = momentum
        self.start_update = start_update
        self.start_smooth = start_smooth
        bins = binning.count
        window = torch.tensor(sum_normalised_window(kernel, ks, sigma), dtype=torch.float32)
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("running_mean", torch.zeros(bins, feature_dim))
        self.register_buffer("running_var", torch.ones(bins, feature_dim))
        self.register_buffer("smoothed_mean", torch.zeros(bins, feature_dim))
        self.register_buffer("smoothed_var", torch.ones(bins, feature_dim))
        self.register_buffer("num_samples", torch.zeros(bins, dtype=torch.float64))
        # z' = (z - mu) * s + mu~ = z * s + (mu~ - mu * s): the per-bin scale s and shift only
        # change with the statistics, so a batch costs two gathers and one fused multiply-add.
        # Derived from the statistics, so rebuilt after loading instead of being saved.
        self.register_buffer("scale", torch.ones(bins, feature_dim), persistent=False)
        self.register_buffer("shift", torch.zeros(bins, feature_dim), persistent=False)
        self._refresh_calibration()
        self.register_load_state_dict_post_hook(lambda module, _keys: module._refresh_calibration())

    def new_moments(self) -> FeatureMoments:
        """An empty per-bin accumulator on this module's device, to pass to ``update_from``."""
        return FeatureMoments(self.binning.count, self.feature_dim, self.running_mean.device)

    def bins_of(self, targets: torch.Tensor) -> torch.Tensor:
        """Bin index of each target (edge bins pool the targets outside the binning)."""
        return self.binning.index(targets.reshape(-1))

    def _check_features(self, features: torch.Tensor, targets: torch.Tensor) -> None:
        if features.dim() != 2 or features.shape[1] != self.feature_dim:
            raise ValueError(
                f"FDS feature_dim is {self.feature_dim}; got features of shape "
                f"{tuple(features.shape)} (expected (N, {self.feature_dim}))"
            )
        if targets.numel() != features.shape[0]:
            raise ValueError(
                f"FDS got {features.shape[0]} feature rows but {targets.numel()} targets"
            )

    def smooth(self, features: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        """Calibrated features in training from ``start_smooth`` on; ``features`` otherwise."""
        if not self.training or epoch < self.start_smooth:
            return features
        self._check_features(features, targets)
        bins = self.bins_of(targets)
        calibrated = self.shift.index_select(0, bins)
        calibrated.addcmul_(features, self.scale.index_select(0, bins))
        return calibrated.to(features.dtype)

    @torch.no_grad()
    def update(self, features: torch.Tensor, targets: torch.Tensor, epoch: int) -> None:
        """End-of-epoch update from the whole epoch's ``features`` and ``targets`` at once."""
        if epoch < self.start_update:
            return
        self._check_features(features, targets)
        check_finite("targets", as_numpy("targets", targets))
        moments = self.new_moments()
        moments.add(features, self.bins_of(targets))
        self.update_from(moments, epoch)

    @torch.no_grad()
    def update_from(self, moments: FeatureMoments, epoch: int) -> None:
        """End-of-epoch update from moments collected batch by batch (see ``new_moments``)."""
        if epoch < self.start_update:
            return
        present = moments.count > 0
        self.num_samples += moments.count
        if epoch == self.start_update:
            factor = torch.zeros_like(moments.count)
        elif self.momentum is None:
            factor = 1.0 - moments.count / self.num_samples.clamp(min=1)
        else:
            factor = torch.full_like(moments.count, self.momentum)
        factor = factor.unsqueeze(1)
        for running, batch in (
            (self.running_mean, moments.mean),
            (self.running_var, moments.variance()),
        ):
            blended = (1.0 - factor) * batch + factor * running.to(torch.float64)
            running.copy_(torch.where(present.unsqueeze(1), blended, running.to(torch.float64)))
        self.smoothed_mean.copy_(self._smooth_over_bins(self.running_mean))
        self.smoothed_var.copy_(self._smooth_over_bins(self.running_var))
        self._refresh_calibration()

    def _smooth_over_bins(self, statistics: torch.Tensor) -> torch.Tensor:
        """Convolve (bins, d) statistics along the bin axis, reflect-padded at both ends."""
        half = (self.window.numel() - 1) // 2
        per_dimension = statistics.t().unsqueeze(1)  # (d, 1, bins): one channel per dimension
        padded = functional.pad(per_dimension, (half, half), mode="reflect")
        smoothed = functional.conv1d(padded, self.window.view(1, 1, -1))
        return smoothed.squeeze(1).t()

    @torch.no_grad()
    def _refresh_calibration(self) -> None:
        """Fold the statistics into the per-bin scale and shift used by ``smooth``.

        Dimensions whose running variance is 0, and bins whose variances sum to ~0, get scale 1
        and shift 0: their features pass unchanged. The shift is formed in float64 so the
        folded form stays within float32 rounding of ``(z - mu) * s + mu~``.
        """
        running_var = self.running_var.to(torch.float64)
        ratio = (self.smoothed_var.to(torch.float64) / running_var).clamp(*VARIANCE_RATIO_CLIP)
        calibrate = running_var != 0
        calibrate &= running_var.sum(1, keepdim=True) >= DEGENERATE_VARIANCE_SUM
        scale = torch.where(calibrate, ratio.sqrt(), torch.ones_like(ratio))
        shift = self.smoothed_mean.to(torch.float64) - self.running_mean.to(torch.float64) * scale
        self.scale.copy_(scale)
        self.shift.copy_(torch.where(calibrate, shift, torch.zeros_like(shift)))
