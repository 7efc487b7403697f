"""Regression losses for imbalanced targets: weighted point losses, Balanced MSE and RankSim.

Everything here is plain, device-agnostic torch. Shape checks read shapes only, never values, so
none of them forces a GPU synchronisation; only RankSim's subset selection has a data-dependent
size (one sample per distinct label) and therefore synchronises once per call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dirsearch.imbalance.vocabulary import LOSS_DEFAULTS, LOSS_NAMES

__all__ = [
    "LOSS_NAMES",
    "BalancedMSE",
    "blackbox_rank",
    "ranksim_loss",
    "unique_label_subset",
    "weighted_loss",
]

_FOCAL_ACTIVATIONS = ("sigmoid", "tanh")


def _real(name: str, value: object, *, minimum: float, inclusive: bool) -> float:
    """A finite real bound-checked scalar; bools are refused because `True` is not a scale."""
    valid = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if valid:
        valid = value >= minimum if inclusive else value > minimum
    if not valid:
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _flatten(name: str, tensor: Tensor) -> Tensor:
    """(N,) or (N, 1) -> (N,): models emit a column, datasets a vector; both mean the same."""
    if tensor.ndim == 1 or (tensor.ndim == 2 and tensor.shape[1] == 1):
        return tensor.reshape(-1)
    raise ValueError(f"{name} must have shape (N,) or (N, 1), got {tuple(tensor.shape)}")


def _flatten_pair(preds: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Flatten both and check they pair up; broadcasting (N,1) against (N,) would silently build
    an N x N loss, which is the bug this guards against."""
    flat_preds, flat_targets = _flatten("preds", preds), _flatten("targets", targets)
    _check_pair("preds", flat_preds.shape[0], "targets", flat_targets.shape[0])
    return flat_preds, flat_targets


def _check_pair(first: str, first_length: int, second: str, second_length: int) -> None:
    """Two per-sample inputs must pair up one to one and hold at least one sample."""
    if first_length != second_length:
        raise ValueError(
            f"{first} and {second} must have the same length, got {first} {first_length} "
            f"and {second} {second_length}"
        )
    if first_length == 0:
        raise ValueError(f"{first} and {second} must hold at least one sample, got 0")


# --- point losses ---------------------------------------------------------------------------


def _mse(error: Tensor) -> Tensor:
    return error.square()


def _l1(error: Tensor) -> Tensor:
    return error.abs()


def _huber(error: Tensor, *, beta: float) -> Tensor:
    abs_error = error.abs()
    return torch.where(abs_error < beta, 0.5 * error.square() / beta, abs_error - 0.5 * beta)


def _focal_factor(error: Tensor, *, beta: float, gamma: float, activation: str) -> Tensor:
    """Focal-R modulation in [0, 1): small errors count less.

    `2 sigmoid(x) - 1` is computed as the identical `tanh(x / 2)`, which keeps precision for
    tiny x. The clamp keeps the gradient finite (and zero) at e == 0 when gamma < 1, where
    `x ** (gamma - 1)` would be infinite and turn a perfect prediction into a NaN gradient.
    """
    scaled = beta * error.abs()
    squashed = torch.tanh(scaled) if activation == "tanh" else torch.tanh(0.5 * scaled)
    return squashed.clamp_min(torch.finfo(squashed.dtype).tiny) ** gamma


def _focal_mse(error: Tensor, *, beta: float, gamma: float, activation: str) -> Tensor:
    return _mse(error) * _focal_factor(error, beta=beta, gamma=gamma, activation=activation)


def _focal_l1(error: Tensor, *, beta: float, gamma: float, activation: str) -> Tensor:
    return _l1(error) * _focal_factor(error, beta=beta, gamma=gamma, activation=activation)


_POINT_LOSSES: dict[str, Callable[..., Tensor]] = {
    "mse": _mse,
    "l1": _l1,
    "huber": _huber,
    "focal_mse": _focal_mse,
    "focal_l1": _focal_l1,
}
# name -> (per-sample loss of the error, default parameters); the names are the vocabulary's.
_LOSSES: dict[str, tuple[Callable[..., Tensor], dict[str, object]]] = {
    name: (_POINT_LOSSES[name], defaults) for name, defaults in LOSS_DEFAULTS.items()
}


def _resolve_params(name: str, params: dict[str, object]) -> dict[str, object]:
    """Defaults overlaid with the caller's values, each validated (names the loss and key)."""
    defaults = _LOSSES[name][1]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        allowed = ", ".join(defaults) or "none"
        raise ValueError(f"unknown parameter {unknown[0]!r} for loss {name!r}; allowed: {allowed}")
    resolved = {**defaults, **params}
    checked: dict[str, object] = {}
    for key, value in resolved.items():
        if key == "activation":
            if value not in _FOCAL_ACTIVATIONS:
                allowed = ", ".join(_FOCAL_ACTIVATIONS)
                raise ValueError(f"{name} activation must be one of {allowed}, got {value!r}")
            checked[key] = value
        else:  # beta is a scale (> 0); gamma an exponent (>= 0, 0 means no modulation)
            checked[key] = _real(f"{name} {key}", value, minimum=0.0, inclusive=key == "gamma")
    return checked


def weighted_loss(
    name: str,
    preds: Tensor,
    targets: Tensor,
    weights: Tensor | None = None,
    **params: object,
) -> Tensor:
    """Scalar `mean_i(w_i * l_i)` of the point loss `name` (one of LOSS_NAMES).

    The mean is over samples, not divided by `sum(w)`: LDS weights are already rescaled to mean 1
    over the training set, so a batch's loss keeps its natural scale and rare samples really
    count more (ALGORITHMS.md section 1.5). Params: huber `beta` (1.0); focal_mse / focal_l1
    `beta` (0.2), `gamma` (1.0), `activation` ("sigmoid" or "tanh").
    """
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; allowed: {', '.join(LOSS_NAMES)}")
    resolved = _resolve_params(name, params)
    flat_preds, flat_targets = _flatten_pair(preds, targets)
    losses = _LOSSES[name][0](flat_preds - flat_targets, **resolved)
    if weights is None:
        return losses.mean()
    flat_weights = _flatten("weights", weights)
    if flat_weights.shape[0] != losses.shape[0]:
        raise ValueError(
            f"weights must have the same length as preds, got weights {flat_weights.shape[0]} "
            f"and preds {losses.shape[0]}"
        )
    return (flat_weights * losses).mean()


# --- Balanced MSE ---------------------------------------------------------------------------


class BalancedMSE(nn.Module):
    """Balanced MSE in its batch Monte-Carlo form (Ren et al., CVPR 2022).

    Each prediction must pick out its own target among all targets of the batch under a Gaussian
    likelihood, which divides out the (batch-estimated) label prior instead of re-weighting
    samples. `noise_sigma` is learnt; it is a separate parameter so the trainer can give it its
    own optimiser group (the paper uses lr 0.01 for it). The loss is rescaled by the detached
    `2 sigma^2` so its magnitude stays comparable to MSE while sigma moves.
    """

    def __init__(self, init_noise_sigma: float = 1.0) -> None:
        super().__init__()
        sigma = _real("init_noise_sigma", init_noise_sigma, minimum=0.0, inclusive=False)
        self.noise_sigma = nn.Parameter(torch.tensor(sigma))

    def forward(self, preds: Tensor, targets: Tensor) -> Tensor:
        flat_preds, flat_targets = _flatten_pair(preds, targets)
        noise_var = self.noise_sigma.square()
        logits = -(flat_preds[:, None] - flat_targets[None, :]).square() / (2 * noise_var)
        own_target = torch.arange(flat_preds.shape[0], device=flat_preds.device)
        return F.cross_entropy(logits, own_target) * (2 * noise_var).detach()


# --- RankSim --------------------------------------------------------------------------------


def _normalised_rank(scores: Tensor, dtype: torch.dtype) -> Tensor:
    """Row-wise `(rank + 1) / len`, rank = 0-based ascending position; ties broken by column
    (stable sort) so CPU and GPU agree."""
    ranks = scores.argsort(dim=-1, stable=True).argsort(dim=-1)
    return (ranks + 1).to(dtype) / scores.shape[-1]


class _BlackboxRank(torch.autograd.Function):
    """Ranking made differentiable by the blackbox combinatorial-solver trick (Vlastelica et
    al., 2020): the backward pass re-ranks the scores nudged by the incoming gradient and returns
    the rank difference, a gradient of a piecewise-linear interpolation of the step function.

    The published rule, ``-(rank(s) - rank(s + lambda * g)) / lambda``, is for DESCENDING ranks
    (largest score first). Ours are ascending, i.e. ``c - descending``, which flips the sign of
    both the incoming gradient and the rank difference: ``(rank(s) - rank(s - lambda * g)) /
    lambda``. Using the descending rule on ascending ranks keeps the loss but breaks the gradient
    (scores [0, 1], g [-1, 1], lambda 2 give [0, 0] instead of [-0.25, 0.25])."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, scores: Tensor, lam: float) -> Tensor:
        ranks = _normalised_rank(scores, scores.dtype)
        ctx.save_for_backward(scores, ranks)
        ctx.interpolation_lambda = lam
        return ranks

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_output: Tensor
    ) -> tuple[Tensor, None]:
        scores, ranks = ctx.saved_tensors
        lam = ctx.interpolation_lambda
        perturbed = _normalised_rank(scores - lam * grad_output, ranks.dtype)
        return (ranks - perturbed) / (lam + 1e-8), None


def blackbox_rank(scores: Tensor, interpolation_lambda: float = 2.0) -> Tensor:
    """Normalised ranks of every row of `scores` (last dimension), differentiable."""
    lam = _real("interpolation_lambda", interpolation_lambda, minimum=0.0, inclusive=False)
    return _BlackboxRank.apply(scores, lam)


def unique_label_subset(targets: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Ascending indices of one uniformly random sample per distinct target value.

    RankSim wants each label once, else duplicated labels tie in the label ranking. Each sample
    draws a distinct random priority (a permutation, so there are no ties) and the maximum within
    its label group wins. The generator may live on another device than the targets.
    """
    flat = _flatten("targets", targets)
    labels, group = torch.unique(flat, return_inverse=True)
    device = flat.device if generator is None else generator.device
    priority = torch.randperm(flat.shape[0], generator=generator, device=device).to(flat.device)
    winner = priority.new_full((labels.shape[0],), -1)
    winner = winner.scatter_reduce(0, group, priority, reduce="amax")
    return torch.nonzero(priority == winner[group]).squeeze(1)


def ranksim_loss(
    features: Tensor,
    targets: Tensor,
    *,
    interpolation_lambda: float = 2.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """RankSim regulariser (Gong et al., ICML 2022), unscaled: the trainer multiplies by gamma.

    On a subset with one random sample per distinct label, every row i of the cosine-similarity
    matrix of the features should rank the other samples like `-|y_i - y_j|` ranks them:
    `sum_i mean_j (feature_rank_ij - label_rank_ij)^2`. All rows are ranked at once.
    """
    if features.ndim != 2:
        raise ValueError(f"features must have shape (N, D), got {tuple(features.shape)}")
    flat = _flatten("targets", targets)
    _check_pair("features", features.shape[0], "targets", flat.shape[0])
    keep = unique_label_subset(flat, generator)
    unit = F.normalize(features[keep], dim=1)
    labels = flat[keep]
    feature_rank = blackbox_rank(unit @ unit.T, interpolation_lambda)
    label_rank = _normalised_rank(-(labels[:, None] - labels[None, :]).abs(), feature_rank.dtype)
    return (feature_rank - label_rank).square().mean(dim=1).sum()
