"""Losses of ALGORITHMS.md section 3, checked against numbers and loops written out here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference_dir import ref_descending_rank_grad, ref_descending_ranks
from scipy.stats import rankdata

from dirsearch.imbalance.losses import (
    LOSS_NAMES,
    BalancedMSE,
    blackbox_rank,
    ranksim_loss,
    unique_label_subset,
    weighted_loss,
)

# errors e = pred - y = [0.5, -2, 2]
PREDS = torch.tensor([0.5, -1.0, 3.0])
TARGETS = torch.tensor([0.0, 1.0, 1.0])
ERRORS = [0.5, -2.0, 2.0]

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def focal_expected(base: str, beta: float, gamma: float, activation: str) -> float:
    """Focal-R by its textbook formula, one sample at a time."""
    total = 0.0
    for e in ERRORS:
        a = abs(e)
        squash = math.tanh(beta * a) if activation == "tanh" else 2 / (1 + math.exp(-beta * a)) - 1
        total += (e * e if base == "mse" else a) * squash**gamma
    return total / len(ERRORS)


def test_loss_names_are_the_documented_ones() -> None:
    assert LOSS_NAMES == ("mse", "l1", "huber", "focal_mse", "focal_l1")


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("mse", {}, (0.25 + 4 + 4) / 3),
        ("l1", {}, (0.5 + 2 + 2) / 3),
        # beta 1: 0.5*0.25/1 (inside), 2-0.5 and 2-0.5 (outside)
        ("huber", {}, (0.125 + 1.5 + 1.5) / 3),
        # beta 2.5: all inside, 0.5 e^2 / 2.5
        ("huber", {"beta": 2.5}, (0.05 + 0.8 + 0.8) / 3),
        # defaults beta 0.2, gamma 1, sigmoid:
        # 2*sigmoid(0.1)-1 = 0.0499584, 2*sigmoid(0.4)-1 = 0.197375
        ("focal_mse", {}, (0.25 * 0.04995837 + 2 * 4 * 0.19737532) / 3),
        ("focal_l1", {}, (0.5 * 0.04995837 + 2 * 2 * 0.19737532) / 3),
    ],
)
def test_point_losses_match_hand_values(name: str, params: dict, expected: float) -> None:
    got = weighted_loss(name, PREDS, TARGETS, **params)
    assert got.shape == ()
    assert got.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("base", ["mse", "l1"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize(("beta", "gamma"), [(0.2, 1.0), (0.7, 2.0), (1.5, 0.5), (0.3, 0.0)])
def test_focal_losses_follow_formula(base: str, activation: str, beta: float, gamma: float) -> None:
    got = weighted_loss(
        f"focal_{base}", PREDS, TARGETS, beta=beta, gamma=gamma, activation=activation
    )
    assert got.item() == pytest.approx(focal_expected(base, beta, gamma, activation), rel=1e-5)


def test_tanh_and_sigmoid_activations_differ() -> None:
    sig = weighted_loss("focal_l1", PREDS, TARGETS, activation="sigmoid")
    tanh = weighted_loss("focal_l1", PREDS, TARGETS, activation="tanh")
    assert tanh.item() > sig.item() * 1.5


def test_weights_average_over_samples_not_weight_sum() -> None:
    weights = torch.tensor([2.0, 0.0, 0.5])
    got = weighted_loss("mse", PREDS, TARGETS, weights)
    # (2*0.25 + 0*4 + 0.5*4) / 3; dividing by sum(w) = 2.5 would give 1.0
    assert got.item() == pytest.approx(2.5 / 3, rel=1e-6)
    column = weighted_loss("l1", PREDS, TARGETS, weights[:, None])
    assert column.item() == pytest.approx((2 * 0.5 + 0 + 0.5 * 2) / 3, rel=1e-6)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_column_and_vector_shapes_agree(name: str) -> None:
    flat = weighted_loss(name, PREDS, TARGETS)
    for preds, targets in [
        (PREDS[:, None], TARGETS),
        (PREDS, TARGETS[:, None]),
        (PREDS[:, None], TARGETS[:, None]),
    ]:
        got = weighted_loss(name, preds, targets)
        assert got.shape == ()
        assert got.item() == pytest.approx(flat.item(), rel=1e-7)


def test_unknown_loss_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown loss 'smooth'.*mse, l1, huber, focal_mse"):
        weighted_loss("smooth", PREDS, TARGETS)


@pytest.mark.parametrize(
    ("name", "params", "pattern"),
    [
        ("huber", {"alpha": 1.0}, r"unknown parameter 'alpha' for loss 'huber'; allowed: beta"),
        ("mse", {"beta": 1.0}, r"unknown parameter 'beta' for loss 'mse'; allowed: none"),
        ("focal_l1", {"delta": 1}, r"allowed: beta, gamma, activation"),
        ("huber", {"beta": 0.0}, r"huber beta must be a finite number > 0, got 0.0"),
        ("huber", {"beta": -1}, r"huber beta must be .* > 0"),
        ("huber", {"beta": float("nan")}, r"huber beta must be a finite number"),
        ("huber", {"beta": True}, r"huber beta must be a finite number"),
        ("focal_mse", {"beta": "1"}, r"focal_mse beta must be a finite number"),
        ("focal_mse", {"gamma": -0.5}, r"focal_mse gamma must be a finite number >= 0"),
        ("focal_l1", {"activation": "relu"}, r"activation must be one of sigmoid, tanh"),
    ],
)
def test_bad_parameters_are_named(name: str, params: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        weighted_loss(name, PREDS, TARGETS, **params)


def test_length_and_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"got preds 3 and targets 2"):
        weighted_loss("mse", PREDS, TARGETS[:2])
    with pytest.raises(ValueError, match=r"got weights 2 and preds 3"):
        weighted_loss("mse", PREDS, TARGETS, torch.ones(2))
    with pytest.raises(ValueError, match=r"preds must have shape \(N,\) or \(N, 1\), got \(3, 2\)"):
        weighted_loss("mse", torch.zeros(3, 2), TARGETS)
    with pytest.raises(ValueError, match=r"weights must have shape"):
        weighted_loss("mse", PREDS, TARGETS, torch.ones(1, 3))
    with pytest.raises(ValueError, match=r"at least one sample"):
        weighted_loss("mse", torch.zeros(0), torch.zeros(0))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("mse", {}),
        ("l1", {}),
        ("huber", {"beta": 1.0}),
        ("focal_mse", {"activation": "sigmoid", "gamma": 1.5}),
        ("focal_mse", {"activation": "tanh"}),
        ("focal_l1", {"activation": "sigmoid", "gamma": 0.5}),
        ("focal_l1", {"activation": "tanh", "beta": 0.8}),
    ],
)
def test_gradcheck_away_from_kinks(name: str, params: dict) -> None:
    # no |e| near 0 or near the huber beta, where l1 / huber are not smooth
    preds = torch.tensor([0.3, -1.7, 2.9, 4.2], dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([-0.4, 0.5, 1.0, 1.1], dtype=torch.float64)
    weights = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda p: weighted_loss(name, p, targets, weights, **params), (preds,)
    )


@pytest.mark.parametrize("name", ["focal_mse", "focal_l1"])
def test_focal_gradient_is_finite_at_a_perfect_prediction(name: str) -> None:
    preds = torch.tensor([1.0, 2.0], requires_grad=True)
    weighted_loss(name, preds, torch.tensor([1.0, 0.0]), gamma=0.5).backward()
    assert torch.isfinite(preds.grad).all()
    assert preds.grad[0].item() == 0.0
    assert preds.grad[1].item() > 0.0


# --- Balanced MSE ---------------------------------------------------------------------------

BMC_PREDS = [0.2, 1.1, -0.7, 2.0]
BMC_TARGETS = [0.0, 1.5, -1.0, 2.5]


def bmc_slow(preds: list[float], targets: list[float], sigma: float) -> tuple[float, float]:
    """Loss and d loss / d sigma (with 2 sigma^2 held constant), one row at a time."""
    n, var = len(preds), sigma * sigma
    loss = grad = 0.0
    for i in range(n):
        sq = [(preds[i] - t) ** 2 for t in targets]
        logits = [-d / (2 * var) for d in sq]
        top = max(logits)
        weights = [math.exp(x - top) for x in logits]
        total = sum(weights)
        loss += top + math.log(total) - logits[i]
        # d logit_ij / d sigma = sq_ij / sigma^3
        grad += sum(w / total * d for w, d in zip(weights, sq, strict=True)) / sigma**3
        grad -= sq[i] / sigma**3
    return loss / n * 2 * var, grad / n * 2 * var


def test_balanced_mse_matches_slow_rows_and_sigma_gets_gradient() -> None:
    module = BalancedMSE(init_noise_sigma=1.5)
    assert isinstance(module.noise_sigma, torch.nn.Parameter)
    assert [p is module.noise_sigma for p in module.parameters()] == [True]
    preds = torch.tensor(BMC_PREDS, requires_grad=True)
    loss = module(preds[:, None], torch.tensor(BMC_TARGETS))
    expected_loss, expected_grad = bmc_slow(BMC_PREDS, BMC_TARGETS, 1.5)
    assert loss.item() == pytest.approx(expected_loss, rel=1e-5)
    loss.backward()
    assert module.noise_sigma.grad is not None
    assert module.noise_sigma.grad.item() == pytest.approx(expected_grad, rel=1e-4)
    assert preds.grad.abs().sum().item() > 0


def test_balanced_mse_gradcheck_in_preds() -> None:
    module = BalancedMSE(init_noise_sigma=0.8).double()
    targets = torch.tensor(BMC_TARGETS, dtype=torch.float64)
    preds = torch.tensor(BMC_PREDS, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: module(p, targets), (preds,))


def test_balanced_mse_errors() -> None:
    with pytest.raises(ValueError, match=r"init_noise_sigma must be a finite number > 0"):
        BalancedMSE(init_noise_sigma=0.0)
    with pytest.raises(ValueError, match=r"got preds 4 and targets 3"):
        BalancedMSE()(torch.tensor(BMC_PREDS), torch.tensor(BMC_TARGETS[:3]))


# --- RankSim --------------------------------------------------------------------------------


def ordinal_ranks(row: list[float]) -> np.ndarray:
    """(rank + 1) / len with ties broken by position."""
    return rankdata(row, method="ordinal") / len(row)


def ranksim_slow(features: torch.Tensor, targets: torch.Tensor) -> float:
    feats = features.detach().double().numpy()
    labels = targets.double().numpy()
    n = len(labels)
    total = 0.0
    for i in range(n):
        sims = [
            float(feats[i] @ feats[j] / (np.linalg.norm(feats[i]) * np.linalg.norm(feats[j])))
            for j in range(n)
        ]
        label_sims = [-abs(labels[i] - labels[j]) for j in range(n)]
        total += float(np.mean((ordinal_ranks(sims) - ordinal_ranks(label_sims)) ** 2))
    return total


def test_ranksim_matches_slow_loop_when_labels_are_unique() -> None:
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    targets = torch.tensor([0.0, 1.0, 2.0, 4.0, 9.0, 5.0, 3.0])  # distance ties, e.g. row 1
    got = ranksim_loss(features, targets, interpolation_lambda=2.0)
    assert got.item() == pytest.approx(ranksim_slow(features, targets), rel=1e-12)
    assert got.item() > 0


def test_ranksim_is_zero_when_features_order_like_labels() -> None:
    angles = torch.tensor([0.0, 0.3, 0.9, 1.4])
    features = torch.stack([angles.cos(), angles.sin()], dim=1)
    assert ranksim_loss(features, angles * 10).item() == 0.0


def test_subset_is_whole_batch_when_labels_are_unique() -> None:
    targets = torch.tensor([[3.0], [1.0], [2.0], [0.5]])
    assert unique_label_subset(targets).tolist() == [0, 1, 2, 3]


def test_subset_takes_one_uniform_sample_per_label() -> None:
    targets = torch.tensor([7, 7, 3, 7, 3, 1])
    counts = np.zeros(6)
    for seed in range(300):
        keep = unique_label_subset(targets, torch.Generator().manual_seed(seed))
        assert sorted(targets[keep].tolist()) == [1, 3, 7]
        assert keep.tolist() == sorted(keep.tolist())
        counts[keep.numpy()] += 1
    assert counts[5] == 300
    assert counts[[0, 1, 3]].sum() == 300
    assert counts[[2, 4]].sum() == 300
    # expected 100 each for label 7 and 150 each for label 3 (sd about 8 and 9)
    assert all(60 < c < 140 for c in counts[[0, 1, 3]])
    assert all(110 < c < 190 for c in counts[[2, 4]])


def test_ranksim_with_repeated_labels_uses_the_seeded_subset() -> None:
    features = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    targets = torch.tensor([2.0, 5.0, 2.0, 1.0, 5.0, 5.0, 8.0, 1.0])
    for seed in range(4):
        keep = unique_label_subset(targets, torch.Generator().manual_seed(seed))
        got = ranksim_loss(features, targets, generator=torch.Generator().manual_seed(seed))
        assert got.item() == pytest.approx(ranksim_slow(features[keep], targets[keep]), rel=1e-12)


def test_blackbox_rank_forward_and_backward_by_hand() -> None:
    scores = torch.tensor([[0.3, -1.0, 2.0], [5.0, 5.0, 1.0]], requires_grad=True)
    ranks = blackbox_rank(scores, interpolation_lambda=2.0)
    # row 0 ascending: -1.0, 0.3, 2.0; row 1: 1.0, then the tied 5.0s in column order
    torch.testing.assert_close(ranks, torch.tensor([[2 / 3, 1 / 3, 1.0], [2 / 3, 1.0, 1 / 3]]))
    ranks.backward(torch.tensor([[1.0, 0.0, -3.0], [0.0, 0.0, 0.0]]))
    # row 0 moved against the gradient: [0.3-2, -1.0, 2.0+6] -> ranks [1/3, 2/3, 1];
    # grad = (rank - rank') / 2 = ([2/3, 1/3, 1] - [1/3, 2/3, 1]) / 2
    torch.testing.assert_close(scores.grad, torch.tensor([[1 / 6, -1 / 6, 0.0], [0.0, 0.0, 0.0]]))


def test_blackbox_rank_gradient_moves_scores_toward_the_wanted_swap() -> None:
    """ALGORITHMS.md section 3's hand case: the loss wants score 0 ranked above score 1."""
    scores = torch.tensor([0.0, 1.0], requires_grad=True)
    blackbox_rank(scores, interpolation_lambda=2.0).backward(torch.tensor([-1.0, 1.0]))
    torch.testing.assert_close(scores.grad, torch.tensor([-0.25, 0.25]))


@pytest.mark.parametrize("n", [2, 3, 5, 16, 64])
def test_blackbox_rank_matches_the_published_descending_rule(n: int) -> None:
    """Our ascending ranks are `(n + 1) / n - descending`, so a loss's gradient w.r.t. them is
    minus its gradient w.r.t. the descending ranks; the score gradient must be the same."""
    gen = torch.Generator().manual_seed(n)
    for lam in (0.5, 2.0, 10.0):
        scores = torch.randn(6, n, generator=gen, dtype=torch.float64, requires_grad=True)
        grad_ranks = torch.randn(6, n, generator=gen, dtype=torch.float64)
        ranks = blackbox_rank(scores, interpolation_lambda=lam)
        ranks.backward(grad_ranks)
        rows = scores.detach().tolist()
        descending = torch.tensor([ref_descending_ranks(row) for row in rows], dtype=torch.float64)
        torch.testing.assert_close(ranks.detach(), (n + 1) / n - descending)
        expected = torch.tensor(
            [
                ref_descending_rank_grad(row, [-g for g in grad_row], lam)
                for row, grad_row in zip(rows, grad_ranks.tolist(), strict=True)
            ],
            dtype=torch.float64,
        )
        assert expected.abs().sum() > 0
        cosine = F.cosine_similarity(scores.grad.flatten(), expected.flatten(), dim=0)
        assert cosine.item() == pytest.approx(1.0, abs=1e-9)
        torch.testing.assert_close(scores.grad, expected, rtol=1e-6, atol=1e-12)


def test_ranksim_gradient_is_the_blackbox_formula_through_cosine() -> None:
    lam = 2.0
    features = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    features.requires_grad_(True)
    targets = torch.tensor([0.0, 3.0, 1.0, 7.0, 4.0])
    ranksim_loss(features, targets, interpolation_lambda=lam).backward()

    unit = features / features.norm(dim=1, keepdim=True)
    sims = unit @ unit.T
    rows = sims.detach().numpy()
    n = len(targets)
    feat_rank = np.stack([ordinal_ranks(list(r)) for r in rows])
    label_rank = np.stack([ordinal_ranks([-abs(a - b) for b in targets.tolist()]) for a in targets])
    grad_rank = 2 * (feat_rank - label_rank) / n  # d sum_i mean_j (.)^2 / d feature rank
    moved = np.stack([ordinal_ranks(list(r)) for r in rows - lam * grad_rank])
    grad_sims = (feat_rank - moved) / (lam + 1e-8)
    assert np.abs(grad_sims).sum() > 0
    (expected,) = torch.autograd.grad(sims, features, torch.from_numpy(grad_sims))
    torch.testing.assert_close(features.grad, expected, rtol=1e-10, atol=1e-12)


def test_ranksim_errors() -> None:
    with pytest.raises(ValueError, match=r"features must have shape \(N, D\), got \(4,\)"):
        ranksim_loss(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match=r"got features 4 and targets 3"):
        ranksim_loss(torch.zeros(4, 2), torch.arange(3.0))
    with pytest.raises(ValueError, match=r"interpolation_lambda must be a finite number > 0"):
        ranksim_loss(torch.randn(4, 2), torch.arange(4.0), interpolation_lambda=0)
    with pytest.raises(ValueError, match=r"at least one sample"):
        ranksim_loss(torch.zeros(0, 2), torch.zeros(0))


# --- CUDA -----------------------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_point_losses_on_cuda_match_cpu(name: str) -> None:
    weights = torch.tensor([2.0, 0.0, 0.5])
    preds = PREDS.cuda().requires_grad_(True)
    got = weighted_loss(name, preds, TARGETS.cuda(), weights.cuda())
    got.backward()
    assert got.device.type == "cuda"
    assert got.item() == pytest.approx(weighted_loss(name, PREDS, TARGETS, weights).item())
    assert preds.grad.device.type == "cuda"


@needs_cuda
def test_balanced_mse_and_ranksim_on_cuda() -> None:
    module = BalancedMSE(1.5).cuda()
    loss = module(torch.tensor(BMC_PREDS, device="cuda"), torch.tensor(BMC_TARGETS, device="cuda"))
    loss.backward()
    assert loss.item() == pytest.approx(bmc_slow(BMC_PREDS, BMC_TARGETS, 1.5)[0], rel=1e-5)
    assert module.noise_sigma.grad.device.type == "cuda"

    features = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    targets = torch.tensor([2.0, 5.0, 2.0, 1.0, 5.0, 5.0, 8.0, 1.0])
    cpu = ranksim_loss(features, targets, generator=torch.Generator().manual_seed(5))
    on_gpu = features.cuda().requires_grad_(True)
    # a CPU generator drives the same subset for CUDA inputs
    gpu = ranksim_loss(on_gpu, targets.cuda(), generator=torch.Generator().manual_seed(5))
    gpu.backward()
    assert gpu.item() == pytest.approx(cpu.item(), rel=1e-12)
    assert on_gpu.grad.device.type == "cuda"
