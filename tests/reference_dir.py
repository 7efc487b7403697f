"""Slow, straightforward references for the DIR numerical core (ALGORITHMS.md sections 0-3, 5).

Written independently of `dirsearch.imbalance`, the obvious way: Python loops over bins, labels,
samples and kernel taps. Tests compare the vectorised implementation against these on random
inputs; `bench/fds_bench.py` times `LoopFDS` because its structure (a Python loop over the unique
labels of a batch, mask indexing, torch.mean / torch.var and calibration per label) is the one the
DIR paper's public code uses, which is what the vectorised FDS must beat.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

BIN_TOLERANCE = 1e-6  # the bin-width tolerance dirsearch adds before flooring


def ref_bin_index(y: float, start: float, width: float, count: int) -> int:
    """Bin of one target: floor((y - start) / width + tolerance), clipped into [0, count)."""
    raw = math.floor((float(y) - start) / width + BIN_TOLERANCE)
    return min(max(raw, 0), count - 1)


def _scipy_reflect(j: int, n: int) -> int:
    """Index into a length-n signal extended half-sample symmetrically (d c b a | a b c d | ...)."""
    period = j % (2 * n)
    return period if period < n else 2 * n - 1 - period


def ref_gaussian_window(ks: int, sigma: float) -> list[float]:
    """Unit impulse of length ks, gaussian-filtered with 'reflect' borders, peak-normalised."""
    impulse = [0.0] * ks
    impulse[ks // 2] = 1.0
    radius = int(4.0 * sigma + 0.5)
    taps = [math.exp(-0.5 * (k / sigma) ** 2) for k in range(-radius, radius + 1)]
    norm = sum(taps)
    filtered = []
    for i in range(ks):
        acc = 0.0
        for offset, tap in zip(range(-radius, radius + 1), taps, strict=True):
            acc += tap / norm * impulse[_scipy_reflect(i + offset, ks)]
        filtered.append(acc)
    peak = max(filtered)
    return [value / peak for value in filtered]


def ref_triang_window(ks: int) -> list[float]:
    """Triangle that is 1 at the centre and falls by 1/(h+1) per bin (scipy triang, odd ks)."""
    half = (ks - 1) // 2
    return [1.0 - abs(x) / (half + 1) for x in range(-half, half + 1)]


def ref_laplace_window(ks: int, sigma: float) -> list[float]:
    """exp(-|x|/sigma) / (2 sigma) over x = -h..h, peak-normalised (the 1/(2 sigma) cancels)."""
    half = (ks - 1) // 2
    raw = [math.exp(-abs(x) / sigma) / (2.0 * sigma) for x in range(-half, half + 1)]
    peak = max(raw)
    return [value / peak for value in raw]


def ref_window(kernel: str, ks: int, sigma: float) -> list[float]:
    """Peak-normalised LDS window by kernel name."""
    if kernel == "gaussian":
        return ref_gaussian_window(ks, sigma)
    if kernel == "triang":
        return ref_triang_window(ks)
    if kernel == "laplace":
        return ref_laplace_window(ks, sigma)
    raise ValueError(f"unknown kernel {kernel!r}")


def ref_label_density(
    train_targets: Sequence[float],
    start: float,
    width: float,
    count: int,
    *,
    reweight: str,
    lds: bool,
    kernel: str = "gaussian",
    ks: int = 5,
    sigma: float = 2.0,
) -> tuple[list[float], list[float]]:
    """(empirical counts, effective density v~) per bin, one bin and one tap at a time."""
    counts = [0.0] * count
    for y in train_targets:
        counts[ref_bin_index(y, start, width, count)] += 1.0
    if reweight == "none":
        values = list(counts)
    elif reweight == "sqrt_inv":
        values = [math.sqrt(n) for n in counts]
    elif reweight == "inverse":
        values = [min(max(n, 5.0), 1000.0) for n in counts]
    else:
        raise ValueError(f"unknown reweight {reweight!r}")
    if not lds:
        return counts, values
    window = ref_window(kernel, ks, sigma)
    half = (ks - 1) // 2
    smoothed = []
    for b in range(count):
        acc = 0.0
        for k, tap in enumerate(window):
            source = b + k - half
            if 0 <= source < count:  # zero padding outside the histogram
                acc += tap * values[source]
        smoothed.append(acc)
    return counts, smoothed


def ref_lds_weights(
    train_targets: Sequence[float],
    start: float,
    width: float,
    count: int,
    **density_kwargs: object,
) -> list[float]:
    """w_i = 1 / v~_{b(i)}, rescaled so the mean weight is 1; all ones for reweight none."""
    if density_kwargs.get("reweight") == "none":
        return [1.0] * len(train_targets)
    _, effective = ref_label_density(train_targets, start, width, count, **density_kwargs)
    raw = [1.0 / effective[ref_bin_index(y, start, width, count)] for y in train_targets]
    total = sum(raw)
    return [w * len(raw) / total for w in raw]


def _region_stats(errors: list[float]) -> dict[str, float]:
    if not errors:
        return {"mae": math.nan, "mse": math.nan, "gm": math.nan, "n": 0}
    absolute = [abs(e) for e in errors]
    if min(absolute) == 0.0:
        gm = 0.0
    else:
        gm = math.exp(sum(math.log(a) for a in absolute) / len(absolute))
    return {
        "mae": sum(absolute) / len(absolute),
        "mse": sum(e * e for e in errors) / len(errors),
        "gm": gm,
        "n": len(errors),
    }


def ref_shot_metrics(
    preds: Sequence[float],
    targets: Sequence[float],
    train_targets: Sequence[float],
    start: float,
    width: float,
    count: int,
    *,
    many: int = 100,
    few: int = 20,
) -> dict[str, dict[str, float]]:
    """DIR shot-region metrics, one test sample at a time."""
    train_counts = [0] * count
    for y in train_targets:
        train_counts[ref_bin_index(y, start, width, count)] += 1
    regions: dict[str, list[float]] = {"all": [], "many": [], "medium": [], "few": []}
    for pred, y in zip(preds, targets, strict=True):
        n = train_counts[ref_bin_index(y, start, width, count)]
        region = "many" if n > many else "few" if n < few else "medium"
        error = float(pred) - float(y)
        regions["all"].append(error)
        regions[region].append(error)
    return {name: _region_stats(errors) for name, errors in regions.items()}


def ref_descending_ranks(scores: Sequence[float]) -> list[float]:
    """Normalised DESCENDING ranks, as the blackbox and RankSim papers rank: the largest score
    gets 1/n, the smallest 1; equal scores keep their order of position."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    ranks = [0.0] * len(scores)
    for position, i in enumerate(order):
        ranks[i] = (position + 1) / len(scores)
    return ranks


def ref_descending_rank_grad(
    scores: Sequence[float], grad_ranks: Sequence[float], lam: float
) -> list[float]:
    """The published blackbox backward for descending ranks, one row: re-rank the scores moved
    by lambda times the incoming gradient and return -(rank - rank') / lambda."""
    moved = [s + lam * g for s, g in zip(scores, grad_ranks, strict=True)]
    ranks, moved_ranks = ref_descending_ranks(scores), ref_descending_ranks(moved)
    return [-(r - m) / lam for r, m in zip(ranks, moved_ranks, strict=True)]


def _calibrate(
    rows: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor,
    smoothed_mean: torch.Tensor,
    smoothed_var: torch.Tensor,
) -> torch.Tensor:
    """Whiten with the running stats, re-colour with the smoothed ones (one bin's rows)."""
    if torch.sum(var) < 1e-10:
        return rows
    valid = var != 0
    if not bool(valid.all()):
        factor = torch.clamp(smoothed_var[valid] / var[valid], 0.1, 10.0)
        out = rows.clone()
        out[:, valid] = (rows[:, valid] - mean[valid]) * torch.sqrt(factor) + smoothed_mean[valid]
        return out
    factor = torch.clamp(smoothed_var / var, 0.1, 10.0)
    return (rows - mean) * torch.sqrt(factor) + smoothed_mean


def ref_calibration_scale(running_var: torch.Tensor, smoothed_var: torch.Tensor) -> torch.Tensor:
    """Per-bin, per-dim multiplier of z in FDS smoothing (= d z' / d z), bin by bin."""
    scale = torch.ones_like(running_var)
    for b in range(running_var.shape[0]):
        var, target = running_var[b], smoothed_var[b]
        if float(var.sum()) < 1e-10:
            continue
        for j in range(var.shape[0]):
            if float(var[j]) != 0.0:
                scale[b, j] = math.sqrt(min(max(float(target[j] / var[j]), 0.1), 10.0))
    return scale


class LoopFDS:
    """FDS statistics and calibration with a Python loop over the labels present in a batch."""

    def __init__(
        self,
        feature_dim: int,
        count: int,
        *,
        start: float = 0.0,
        width: float = 1.0,
        kernel: str = "gaussian",
        ks: int = 5,
        sigma: float = 2.0,
        momentum: float | None = 0.9,
        start_update: int = 0,
        start_smooth: int = 1,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ) -> None:
        self.count, self.start, self.width = count, start, width
        self.momentum, self.start_update, self.start_smooth = momentum, start_update, start_smooth
        window = ref_window(kernel, ks, sigma)
        self.window = [tap / sum(window) for tap in window]  # FDS: normalised to sum 1
        self.half = (ks - 1) // 2
        self.training = True
        shape = (count, feature_dim)
        self.running_mean = torch.zeros(shape, dtype=dtype, device=device)
        self.running_var = torch.ones(shape, dtype=dtype, device=device)
        self.smoothed_mean = torch.zeros(shape, dtype=dtype, device=device)
        self.smoothed_var = torch.ones(shape, dtype=dtype, device=device)
        self.num_samples = torch.zeros(count, dtype=torch.int64, device=device)

    def train(self, mode: bool = True) -> LoopFDS:
        self.training = mode
        return self

    def labels(self, targets: torch.Tensor) -> torch.Tensor:
        """Integer bin label per sample; out-of-range targets pool into the edge bins."""
        scaled = (targets.detach().to(torch.float64) - self.start) / self.width + BIN_TOLERANCE
        return torch.floor(scaled).clamp(0, self.count - 1).long()

    def _smooth_bins(self, stats: torch.Tensor) -> torch.Tensor:
        """Reflect-pad (torch 'reflect': edge not repeated) along bins, then sum the taps."""
        last = self.count - 1
        padded_index = []
        for j in range(-self.half, self.count + self.half):
            padded_index.append(-j if j < 0 else 2 * last - j if j > last else j)
        padded = stats[torch.tensor(padded_index, device=stats.device)]
        out = torch.zeros_like(stats)
        for k, tap in enumerate(self.window):
            out += tap * padded[k : k + self.count]
        return out

    @torch.no_grad()
    def update(self, features: torch.Tensor, targets: torch.Tensor, epoch: int) -> None:
        if epoch < self.start_update:
            return
        features = features.detach().to(self.running_mean.dtype)
        labels = self.labels(targets)
        for label in torch.unique(labels):
            rows = features[labels == label]
            n = rows.shape[0]
            mean = torch.mean(rows, 0)
            var = torch.var(rows, 0, correction=1 if n > 1 else 0)
            b = int(label)
            self.num_samples[b] += n
            if epoch == self.start_update:
                factor = 0.0
            elif self.momentum is None:
                factor = 1.0 - n / float(self.num_samples[b])
            else:
                factor = self.momentum
            self.running_mean[b] = (1 - factor) * mean + factor * self.running_mean[b]
            self.running_var[b] = (1 - factor) * var + factor * self.running_var[b]
        self.smoothed_mean = self._smooth_bins(self.running_mean)
        self.smoothed_var = self._smooth_bins(self.running_var)

    def smooth(self, features: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        if not self.training or epoch < self.start_smooth:
            return features
        labels = self.labels(targets)
        out = features.clone()
        stats = [
            s.to(features.dtype)
            for s in (self.running_mean, self.running_var, self.smoothed_mean, self.smoothed_var)
        ]
        for label in torch.unique(labels):
            mask = labels == label
            b = int(label)
            out[mask] = _calibrate(out[mask], *(s[b] for s in stats))
        return out


def ref_conr_loss(
    features: torch.Tensor,
    labels: torch.Tensor,
    preds: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    window: float = 1.0,
    temperature: float = 0.2,
    push: float = 0.01,
    overwrite_temperature: bool = False,
    extra_denominator_terms: bool = False,
) -> torch.Tensor:
    """ConR loss (ALGORITHMS.md section 3), one anchor and one pair at a time, naive exp form.

    A transcription of the maths of `ConR` in BorealisAI/ConR agedb-dir/loss.py, with its two
    quirks behind switches (both True: the published function; both False: the spec's equation):
    - `overwrite_temperature`: the published function sets t = 0.07 whatever is passed;
    - `extra_denominator_terms`: it sums `exp(s_ij * [j in P_i])` over EVERY column j, so each
      column outside P_i (the anchor itself included) adds exp(0) = 1 to the denominator.
    Rows of `features` are L2-normalised first, as the published function does. The published
    function's `weights` is an (M, 1) column: it scales the pushing weight row-wise and each
    anchor's loss before the mean over all M anchors. Anchors with no negatives give 0 (the
    published `no_neg_flag`). Anchors with no positives give 0 here too; the published code
    computes 0/0 = NaN there, which two-view batches never reach (not reproduced).
    Gradients flow to `features` only (labels, preds and weights are read as Python floats).
    """
    if overwrite_temperature:
        temperature = 0.07
    rows = features.shape[0]
    z = [features[i] / torch.sqrt(torch.sum(features[i] * features[i])) for i in range(rows)]
    y = [float(v) for v in labels.reshape(-1)]
    p = [float(v) for v in preds.reshape(-1)]
    omega = [1.0] * rows if weights is None else [float(v) for v in weights.reshape(-1)]
    total = features.new_zeros(())
    for i in range(rows):
        positives = [j for j in range(rows) if j != i and abs(y[i] - y[j]) <= window]
        negatives = [
            j for j in range(rows) if abs(y[i] - y[j]) > window and abs(p[i] - p[j]) <= window
        ]
        if not negatives or not positives:
            continue
        sim = {j: torch.sum(z[i] * z[j]) / temperature for j in positives + negatives}
        denominator = features.new_zeros(())
        for k in positives:
            denominator = denominator + torch.exp(sim[k])
        for q in negatives:
            pushing = omega[i] * math.exp(push * abs(y[i] - y[q]))
            denominator = denominator + pushing * torch.exp(sim[q])
        if extra_denominator_terms:
            denominator = denominator + float(rows - len(positives))
        anchor = features.new_zeros(())
        for j in positives:
            anchor = anchor - torch.log(torch.exp(sim[j]) / denominator)
        total = total + omega[i] * anchor / len(positives)
    return total / rows
