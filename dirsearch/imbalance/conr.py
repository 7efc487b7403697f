"""ConR, the contrastive regulariser for deep imbalanced regression (ALGORITHMS.md section 3).

Why it exists: under label imbalance the encoder tends to map rare targets into the feature
neighbourhood of common ones, and a regressor on top then predicts the common value. ConR
(Keramati et al., ICLR 2024) adds `beta * L_ConR` to the regression loss: features of samples
with nearby labels are pulled together, and samples whose labels are far apart but whose
predictions are close (the pairs the model confuses) are pushed apart, harder the farther apart
their labels are and the rarer the anchor (its LDS / re-weighting weight).

Where this differs from the published code (BorealisAI/ConR, agedb-dir/loss.py), on purpose:
- the temperature is the one passed in; the published function replaces it with 0.07;
- the softmax denominator holds only the positives and the weighted negatives of the anchor, as
  in the paper's equation; the published function sums `exp(similarity * is_positive)` over every
  column, which adds `exp(0) = 1` for each non-positive column (the anchor itself included);
- an anchor without any positive contributes 0 (see `conr_loss`); the published function divides
  0 by 0 there and returns NaN for the whole batch;
- everything is computed in log-sum-exp form, in float32 or wider, whatever autocast says.

No Python loop over anchors; the masks read labels and predictions only on the device, so the
function never synchronises with a GPU.
"""

from __future__ import annotations

import contextlib
import math
from numbers import Real

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["conr_loss"]


def _scalar(name: str, value: object, *, strictly_positive: bool) -> float:
    """A finite real knob; bools are refused (`True` is not a window)."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value > 0 if strictly_positive else value >= 0
    if not ok:
        bound = "> 0" if strictly_positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _per_sample(name: str, tensor: object, count: int, device: torch.device) -> Tensor:
    """(M,) or (M, 1) tensor on the features' device, flattened to (M,)."""
    if not isinstance(tensor, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if not (tensor.ndim == 1 or (tensor.ndim == 2 and tensor.shape[1] == 1)):
        raise ValueError(f"{name} must have shape (M,) or (M, 1), got {tuple(tensor.shape)}")
    if tensor.shape[0] != count:
        raise ValueError(
            f"{name} must hold one value per row of features ({count}), got {tensor.shape[0]}"
        )
    if tensor.device != device:
        raise ValueError(f"{name} is on {tensor.device} but features are on {device}")
    return tensor.reshape(-1)


def conr_loss(
    features: Tensor,
    labels: Tensor,
    preds: Tensor,
    weights: Tensor | None = None,
    *,
    window: float = 1.0,
    temperature: float = 0.2,
    push: float = 0.01,
) -> Tensor:
    """`L_ConR` of one ConR batch, a 0-dim tensor; the caller adds `beta * L_ConR` (beta 4).

    Arguments (M = 2N rows: two augmented views of each of N samples):
    - `features` (M, d): encoder outputs `z`. Rows are L2-normalised here (a no-op for rows that
      already are), so raw encoder outputs may be passed. Gradients flow back into them.
    - `labels` (M,) or (M, 1): targets `y`.
    - `preds` (M,) or (M, 1): predictions `p`; detached here, they only select negatives.
    - `weights` (M,) or (M, 1), optional: non-negative sample weights `omega` (LDS /
      re-weighting); all ones when None. Used as given (not detached).
    - `window` = the spec's `w` (> 0): label window of positives, and prediction window of
      negatives.
    - `temperature` = the spec's `t` (> 0).
    - `push` = the spec's `e` (>= 0): pushing weight `W_ij = omega_i * exp(push * |y_i - y_j|)`.

    For anchor i, with `s_ij = z_i . z_j / temperature`:
    positives `P_i = {j != i : |y_i - y_j| <= window}`, negatives
    `N_i = {j : |y_i - y_j| > window and |p_i - p_j| <= window}`, and
    `l_i = -(1/|P_i|) sum_{j in P_i} log(exp(s_ij) / D_i)` with
    `D_i = sum_{k in P_i} exp(s_ik) + sum_{q in N_i} W_iq exp(s_iq)`;
    `l_i = 0` when `N_i` is empty. Result: `mean_i(omega_i * l_i)` over all M anchors.

    An anchor with negatives but no positives also gives `l_i = 0` (and a zero, finite
    gradient). Its term is an average over an empty set of positives, so there is nothing to pull
    towards; inventing a push-only term would be a loss the spec does not define, and the
    published code returns NaN there. With two views per sample it cannot happen (each anchor's
    other view has the same label), so the guard only matters for batches built otherwise. Such
    anchors still count in the mean's denominator M, like anchors without negatives.

    Computed in float32 (float64 inputs stay float64) with autocast disabled, so a bf16
    autocast region does not round the similarities.
    """
    if not isinstance(features, Tensor):
        raise ValueError(f"features must be a torch.Tensor, got {type(features).__name__}")
    if features.ndim != 2 or features.shape[0] == 0 or features.shape[1] == 0:
        raise ValueError(
            f"features must have shape (M, d) with M, d >= 1, got {tuple(features.shape)}"
        )
    if not features.is_floating_point():
        raise ValueError(f"features must be a floating-point tensor, got {features.dtype}")
    count, device = features.shape[0], features.device
    flat_labels = _per_sample("labels", labels, count, device)
    flat_preds = _per_sample("preds", preds, count, device)
    flat_weights = None if weights is None else _per_sample("weights", weights, count, device)
    window = _scalar("window", window, strictly_positive=True)
    temperature = _scalar("temperature", temperature, strictly_positive=True)
    push = _scalar("push", push, strictly_positive=False)

    dtype = torch.promote_types(features.dtype, torch.float32)
    no_autocast = (
        torch.autocast(device_type=device.type, enabled=False)
        if torch.amp.is_autocast_available(device.type)
        else contextlib.nullcontext()
    )
    with no_autocast:
        z = F.normalize(features.to(dtype), dim=1)
        y = flat_labels.detach().to(dtype)
        p = flat_preds.detach().to(dtype)

        label_gap = (y[:, None] - y[None, :]).abs()
        pred_gap = (p[:, None] - p[None, :]).abs()
        near = label_gap <= window
        self_pair = torch.eye(count, dtype=torch.bool, device=device)
        positive = near & ~self_pair
        negative = ~near & (pred_gap <= window)  # the diagonal is near, so never negative
        n_positive = positive.sum(dim=1)
        active = (n_positive > 0) & negative.any(dim=1)

        sim = z @ z.T / temperature
        log_push = push * label_gap  # log W_ij, before the anchor's own weight
        if flat_weights is not None:
            omega = flat_weights.to(dtype)
            log_push = log_push + omega.log()[:, None]  # omega_i = 0 -> -inf: no pushing
        # log D_i by log-sum-exp over the anchor's positives and (log-weighted) negatives.
        # Inactive rows would be all -inf (or have no positives to average); they get zero
        # logits instead so every intermediate and gradient stays finite, then are zeroed.
        neg_inf = torch.full_like(sim, -math.inf)
        logits = torch.where(positive, sim, torch.where(negative, sim + log_push, neg_inf))
        logits = torch.where(active[:, None], logits, torch.zeros_like(sim))
        log_denominator = torch.logsumexp(logits, dim=1)

        per_positive = torch.where(positive, log_denominator[:, None] - sim, torch.zeros_like(sim))
        anchor_loss = per_positive.sum(dim=1) / n_positive.clamp_min(1).to(dtype)
        anchor_loss = torch.where(active, anchor_loss, torch.zeros_like(anchor_loss))
        if flat_weights is not None:
            anchor_loss = omega * anchor_loss
        return anchor_loss.mean()
