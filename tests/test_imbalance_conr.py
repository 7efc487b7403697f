"""ConR (ALGORITHMS.md section 3): a hand-worked batch, the slow reference, gradients, dtypes."""

from __future__ import annotations

import math

import pytest
import torch
from reference_dir import ref_conr_loss

from dirsearch.imbalance.conr import conr_loss

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

# --- the hand-worked batch ------------------------------------------------------------------
# Four unit vectors in 2-D, labels and predictions chosen exactly representable in binary so the
# window boundaries (|dy| = 1 and |dp| = 1, both inclusive) are hit exactly.
#   z0 = (1, 0)   z1 = (0.6, 0.8)   z2 = (0.8, 0.6)   z3 = (0, 1)
#   dot products: z0.z1 = 0.6, z0.z2 = 0.8, z0.z3 = 0, z1.z2 = 0.96, z1.z3 = 0.8, z2.z3 = 0.6
#   y = [0, 0.5, 1, 2]        p = [0.25, 0, 0.5, 1.25]
# Label gaps |y_i - y_j|: (0,1) 0.5, (0,2) 1, (0,3) 2, (1,2) 0.5, (1,3) 1.5, (2,3) 1.
# Window w = 1, so positives (gap <= 1, j != i):
#   P0 = {1, 2}, P1 = {0, 2}, P2 = {0, 1, 3}, P3 = {2}.
# Far pairs (gap > 1) are (0,3) and (1,3); their prediction gaps: |p0 - p3| = 1 (<= 1, a negative)
# and |p1 - p3| = 1.25 (> 1, not a negative). So N0 = {3}, N3 = {0}, N1 = N2 = {} and
# anchors 1 and 2 contribute 0 (anchor 1 has TWO positives, so its 0 comes from the empty-N rule,
# not from a lone positive cancelling itself).
# With t = 0.2: s01 = 3, s02 = 4, s03 = 0, s32 = 3, s30 = 0; with e = 0.01 the pushing weight
# of the pair (0,3) is W = omega * exp(0.01 * 2) = omega * exp(0.02).
#   D0 = e^3 + e^4 + W03 e^0 = 20.0855 + 54.5982 + 1.0202 = 75.7039
#   l0 = -(1/2)[(3 - log D0) + (4 - log D0)] = log D0 - 3.5 = 4.326830 - 3.5 = 0.826830
#   D3 = e^3 + W30 e^0 = 21.105738,  l3 = log D3 - 3 = 0.049545
#   L  = (l0 + 0 + 0 + l3) / 4 = 0.876374 / 4 = 0.219094
Z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]], dtype=torch.float64)
Y = torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=torch.float64)
P = torch.tensor([0.25, 0.0, 0.5, 1.25], dtype=torch.float64)
HAND_VALUE = 0.219093620696165


def hand_expected(
    temperature: float = 0.2,
    push: float = 0.01,
    omega: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0),
    extra_terms: bool = False,
) -> float:
    """The hand batch at window 1 by the formulas above. `extra_terms` adds the published
    code's exp(0) = 1 per column outside P_i: columns {0, 3} for anchor 0, {0, 1, 3} for 3."""
    s01, s02, s03, s32, s30 = (d / temperature for d in (0.6, 0.8, 0.0, 0.6, 0.0))
    d0 = math.exp(s01) + math.exp(s02) + omega[0] * math.exp(push * 2) * math.exp(s03)
    d3 = math.exp(s32) + omega[3] * math.exp(push * 2) * math.exp(s30)
    if extra_terms:
        d0, d3 = d0 + 2, d3 + 3
    l0 = math.log(d0) - (s01 + s02) / 2
    l3 = math.log(d3) - s32
    return (omega[0] * l0 + omega[3] * l3) / 4


def test_hand_case_value() -> None:
    assert hand_expected() == pytest.approx(HAND_VALUE, abs=1e-12)
    loss = conr_loss(Z, Y, P)
    assert loss.shape == ()
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(HAND_VALUE, abs=1e-12)
    # float32 inputs, column-shaped labels/preds: the same number in float32.
    loss32 = conr_loss(Z.float(), Y.float()[:, None], P.float()[:, None])
    assert loss32.dtype == torch.float32
    assert loss32.item() == pytest.approx(HAND_VALUE, abs=1e-6)


def test_hand_case_anchors_without_negatives_contribute_zero() -> None:
    # omega_i only touches anchor i's own row; zeroing anchors 1 and 2 changes nothing because
    # their N is empty, while zeroing anchor 0 removes exactly its l0 / 4.
    assert conr_loss(Z, Y, P, torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)).item() == (
        pytest.approx(HAND_VALUE, abs=1e-12)
    )
    l0 = math.log(math.exp(3) + math.exp(4) + math.exp(0.02)) - 3.5
    only_three = conr_loss(Z, Y, P, torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    assert only_three.item() == pytest.approx(HAND_VALUE - l0 / 4, abs=1e-12)


def test_hand_case_weights() -> None:
    # omega = [2, 1, 1, 0.5]: the pushing weights become W03 = 2 e^0.02 and W30 = 0.5 e^0.02, and
    # the anchors are scaled: L = (2 * l0' + 0.5 * l3') / 4, where
    # l0' = log(e^3 + e^4 + 2 e^0.02) - 3.5 and l3' = log(e^3 + 0.5 e^0.02) - 3.
    omega = (2.0, 1.0, 1.0, 0.5)
    l0 = math.log(math.exp(3) + math.exp(4) + 2 * math.exp(0.02)) - 3.5
    l3 = math.log(math.exp(3) + 0.5 * math.exp(0.02)) - 3
    assert hand_expected(omega=omega) == pytest.approx((2 * l0 + 0.5 * l3) / 4, abs=1e-12)
    weights = torch.tensor(omega, dtype=torch.float64)
    assert conr_loss(Z, Y, P, weights).item() == pytest.approx((2 * l0 + 0.5 * l3) / 4, abs=1e-12)
    assert conr_loss(Z, Y, P, weights[:, None]).item() == pytest.approx(
        hand_expected(omega=omega), abs=1e-12
    )
    # all-ones weights are the same as no weights
    assert conr_loss(Z, Y, P, torch.ones(4, dtype=torch.float64)).item() == pytest.approx(
        HAND_VALUE, abs=1e-12
    )


def test_hand_case_temperature() -> None:
    # t = 0.5: s01 = 1.2, s02 = 1.6, s32 = 1.2, s03 = s30 = 0.
    #   l0 = log(e^1.2 + e^1.6 + e^0.02) - 1.4 = 0.968364, l3 = log(e^1.2 + e^0.02) - 1.2 = 0.279657
    expected = (
        math.log(math.exp(1.2) + math.exp(1.6) + math.exp(0.02))
        - 1.4
        + math.log(math.exp(1.2) + math.exp(0.02))
        - 1.2
    ) / 4
    assert hand_expected(temperature=0.5) == pytest.approx(expected, abs=1e-12)
    value = conr_loss(Z, Y, P, temperature=0.5).item()
    assert value == pytest.approx(expected, abs=1e-12)
    assert value > HAND_VALUE  # a hotter softmax separates positives from the negative less


def test_hand_case_push() -> None:
    # e = 0: W = 1, l0 = log(e^3 + e^4 + 1) - 3.5, l3 = log(e^3 + 1) - 3.
    flat = (math.log(math.exp(3) + math.exp(4) + 1) - 3.5 + math.log(math.exp(3) + 1) - 3) / 4
    assert conr_loss(Z, Y, P, push=0.0).item() == pytest.approx(flat, abs=1e-12)
    # e = 1: W = e^2 (label gap 2), l0 = log(e^3 + e^4 + e^2) - 3.5, l3 = log(e^3 + e^2) - 3.
    hard_l0 = math.log(math.exp(3) + math.exp(4) + math.exp(2)) - 3.5
    hard_l3 = math.log(math.exp(3) + math.exp(2)) - 3
    hard = (hard_l0 + hard_l3) / 4
    assert conr_loss(Z, Y, P, push=1.0).item() == pytest.approx(hard, abs=1e-12)
    assert flat < HAND_VALUE < hard  # pushing harder the farther the labels raises the loss


def test_hand_case_window() -> None:
    # w = 0.5 applies to labels AND predictions. Positives (gap <= 0.5): P0 = {1}, P1 = {0, 2},
    # P2 = {1}, P3 = {}. Far pairs with prediction gap <= 0.5: only (0,2), |p0 - p2| = 0.25
    # (|p0 - p3| = 1, |p1 - p3| = 1.25, |p2 - p3| = 0.75 are too far). So N0 = {2}, N2 = {0};
    # anchor 3 has neither, anchor 1 no negatives. Label gap of (0,2) is 1: W = e^0.01.
    #   l0 = -log(e^s01 / (e^s01 + W e^s02)) = log(e^3 + e^0.01 e^4) - 3 = 1.319414
    #   l2 = log(e^s21 + W e^s20) - s21 = log(e^4.8 + e^0.01 e^4) - 4.8 = 0.373541
    l0 = math.log(math.exp(3) + math.exp(0.01) * math.exp(4)) - 3
    l2 = math.log(math.exp(4.8) + math.exp(0.01) * math.exp(4)) - 4.8
    assert conr_loss(Z, Y, P, window=0.5).item() == pytest.approx((l0 + l2) / 4, abs=1e-12)
    # w = 2: every pair is a positive (largest label gap 2), so there are no negatives: L = 0.
    assert conr_loss(Z, Y, P, window=2.0).item() == 0.0


def test_tiny_temperature_is_stable() -> None:
    # t = 1e-3: similarities reach 800, exp overflows even float64 (> 709). In log space:
    # l0 = logsumexp(600, 800, 0.02) - 700 = 100 + log(1 + e^-200 + ...) = 100 (to 1e-12),
    # l3 = logsumexp(600, 0.02) - 600 = log(1 + e^(0.02 - 600)) = 0, so L = 100 / 4 = 25.
    for dtype, rel in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        loss = conr_loss(Z.to(dtype), Y, P, temperature=1e-3)
        assert math.isfinite(loss.item())
        assert loss.item() == pytest.approx(25.0, rel=rel)


# --- anchors without positives ----------------------------------------------------------------


def test_anchor_without_positives_contributes_zero_with_finite_gradient() -> None:
    # y = [0, 0, 5], p = [0, 0, 0.5], w = 1: anchor 2 has no positive but negatives {0, 1}; it
    # contributes 0 by the documented choice. Anchors 0 and 1: P = {other}, N = {2}, label gap 5.
    # z0 = (1, 0), z1 = (0.6, 0.8), z2 = (0, 1), t = 0.2: s01 = 3, s02 = 0, s12 = 4.
    #   l0 = log(e^3 + e^0.05 e^0) - 3,  l1 = log(e^3 + e^0.05 e^4) - 3,  L = (l0 + l1) / 3.
    feats = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)
    feats.requires_grad_(True)
    labels = torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64)
    preds = torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64)
    l0 = math.log(math.exp(3) + math.exp(0.05)) - 3
    l1 = math.log(math.exp(3) + math.exp(0.05) * math.exp(4)) - 3
    loss = conr_loss(feats, labels, preds)
    assert loss.item() == pytest.approx((l0 + l1) / 3, abs=1e-12)
    assert loss.item() == pytest.approx(ref_conr_loss(feats, labels, preds).item(), abs=1e-12)
    loss.backward()
    assert feats.grad is not None and torch.isfinite(feats.grad).all()

    # one row: no positives, no negatives: exactly 0 with a zero, finite gradient
    lone = torch.tensor([[0.3, -0.4]], requires_grad=True)
    value = conr_loss(lone, torch.zeros(1), torch.zeros(1))
    value.backward()
    assert value.item() == 0.0
    assert lone.grad is not None and torch.equal(lone.grad, torch.zeros_like(lone))


# --- the slow reference, quirks off: the spec's equation ------------------------------------


def two_view_batch(
    seed: int, samples: int, dim: int, spread: float, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """2N rows: random (un-normalised) features; labels on a 0.5 grid, shared by both views;
    predictions = labels + noise (different per view) so some far pairs are predicted close;
    weights in [0.2, 3]."""
    gen = torch.Generator().manual_seed(seed)
    labels = (torch.randint(0, int(2 * spread) + 1, (samples,), generator=gen) / 2.0).repeat(2)
    feats = torch.randn(2 * samples, dim, generator=gen, dtype=dtype)
    preds = labels + 1.5 * torch.randn(2 * samples, generator=gen)
    weights = 0.2 + 2.8 * torch.rand(2 * samples, generator=gen)
    return feats, labels.to(dtype), preds.to(dtype), weights.to(dtype)


CASES = [
    # seed, samples, dim, label spread, window, temperature, push, weighted
    (1, 3, 4, 4.0, 1.0, 0.2, 0.01, False),
    (1, 6, 8, 6.0, 1.0, 0.2, 0.01, True),
    (2, 8, 5, 10.0, 0.5, 0.07, 0.1, True),
    (3, 10, 16, 8.0, 2.0, 1.0, 0.0, False),
    (4, 5, 3, 3.0, 1.5, 0.5, 0.3, True),
    (5, 12, 6, 20.0, 1.0, 0.1, 0.05, True),
]


@pytest.mark.parametrize(
    ("seed", "samples", "dim", "spread", "window", "t", "push", "weighted"), CASES
)
def test_matches_reference_spec_equation(
    seed: int,
    samples: int,
    dim: int,
    spread: float,
    window: float,
    t: float,
    push: float,
    weighted: bool,
) -> None:
    feats, labels, preds, weights = two_view_batch(seed, samples, dim, spread)
    w = weights if weighted else None
    knobs = {"window": window, "temperature": t, "push": push}

    mine = feats.clone().requires_grad_(True)
    value = conr_loss(mine, labels, preds, w, **knobs)
    theirs = feats.clone().requires_grad_(True)
    expected = ref_conr_loss(theirs, labels, preds, w, **knobs)
    assert expected.item() > 0  # the batch really has anchors with negatives
    value.backward()
    expected.backward()

    torch.testing.assert_close(value, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-8, atol=1e-12)


def test_matches_reference_with_anchors_lacking_positives() -> None:
    # One view per sample, labels spread wide: many anchors have negatives but no positives.
    gen = torch.Generator().manual_seed(7)
    labels = torch.randint(0, 30, (16,), generator=gen).double()
    preds = torch.full((16,), 3.0, dtype=torch.float64) + 0.5 * torch.rand(16, generator=gen)
    feats = torch.randn(16, 4, generator=gen, dtype=torch.float64)
    gaps = (labels[:, None] - labels[None, :]).abs()
    no_positive = ((gaps <= 1.0).sum(1) == 1).sum().item()
    assert no_positive >= 3
    mine = feats.clone().requires_grad_(True)
    theirs = feats.clone().requires_grad_(True)
    value, expected = conr_loss(mine, labels, preds), ref_conr_loss(theirs, labels, preds)
    value.backward()
    expected.backward()
    assert expected.item() > 0
    torch.testing.assert_close(value, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-8, atol=1e-12)


# --- the slow reference, quirks on: the published function ----------------------------------


def test_reference_quirk_switches_on_the_hand_case() -> None:
    # Published behaviour by hand: t forced to 0.07 (whatever is passed) and +1 per column
    # outside P_i in the denominator; anchors 1 and 2 still have no negatives, so stay 0.
    published = hand_expected(temperature=0.07, extra_terms=True)
    for passed_t in (0.2, 0.5, 3.0):
        both = ref_conr_loss(
            Z, Y, P, temperature=passed_t, overwrite_temperature=True, extra_denominator_terms=True
        )
        assert both.item() == pytest.approx(published, rel=1e-12)
        # each switch alone does just its own part
        only_t = ref_conr_loss(Z, Y, P, temperature=passed_t, overwrite_temperature=True)
        assert only_t.item() == pytest.approx(hand_expected(temperature=0.07), rel=1e-12)
        only_extra = ref_conr_loss(Z, Y, P, temperature=passed_t, extra_denominator_terms=True)
        expected_extra = hand_expected(temperature=passed_t, extra_terms=True)
        assert only_extra.item() == pytest.approx(expected_extra, rel=1e-12)
        off = ref_conr_loss(Z, Y, P, temperature=passed_t)
        assert off.item() == pytest.approx(hand_expected(temperature=passed_t), rel=1e-12)
    # the product follows the spec, not the published code: it differs from the quirky one
    # at the default t and even at t = 0.07 (the extra denominator terms remain)
    assert conr_loss(Z, Y, P).item() != pytest.approx(published, rel=1e-3)
    at_007 = conr_loss(Z, Y, P, temperature=0.07).item()
    assert at_007 == pytest.approx(hand_expected(temperature=0.07), rel=1e-12)
    assert abs(at_007 - published) > 1e-4  # e^(s/0.07) dwarfs the +2 and +3, but not fully
    product_05 = conr_loss(Z, Y, P, temperature=0.5).item()
    assert product_05 == pytest.approx(hand_expected(temperature=0.5), rel=1e-12)
    only_extra_05 = ref_conr_loss(Z, Y, P, temperature=0.5, extra_denominator_terms=True).item()
    assert only_extra_05 - product_05 > 0.1
    # weights enter the published function the same way (pushing weight, anchor scale)
    omega = torch.tensor([2.0, 1.0, 1.0, 0.5], dtype=torch.float64)
    quirky = ref_conr_loss(
        Z, Y, P, omega, overwrite_temperature=True, extra_denominator_terms=True
    ).item()
    assert quirky == pytest.approx(
        hand_expected(temperature=0.07, omega=(2.0, 1.0, 1.0, 0.5), extra_terms=True), rel=1e-12
    )


def test_reference_temperature_switch_on_random_batches() -> None:
    feats, labels, preds, weights = two_view_batch(11, 8, 6, 8.0)
    for passed_t in (0.2, 1.0):
        forced = ref_conr_loss(
            feats, labels, preds, weights, temperature=passed_t, overwrite_temperature=True
        )
        torch.testing.assert_close(
            forced,
            conr_loss(feats, labels, preds, weights, temperature=0.07),
            rtol=1e-10,
            atol=1e-12,
        )
    quirky = ref_conr_loss(
        feats, labels, preds, weights, overwrite_temperature=True, extra_denominator_terms=True
    )
    assert abs(quirky.item() - conr_loss(feats, labels, preds, weights).item()) > 1e-3


# --- gradients and inputs ---------------------------------------------------------------------


def test_gradient_reaches_features_not_preds() -> None:
    feats, labels, preds, weights = two_view_batch(21, 6, 5, 6.0)
    feats.requires_grad_(True)
    preds.requires_grad_(True)
    loss = conr_loss(feats, labels, preds, weights)
    assert loss.requires_grad
    feat_grad, pred_grad = torch.autograd.grad(loss, (feats, preds), allow_unused=True)
    assert pred_grad is None
    assert feat_grad is not None and feat_grad.abs().sum() > 0
    # the analytic gradient agrees with finite differences (features only)
    assert torch.autograd.gradcheck(
        lambda f: conr_loss(f, labels, preds.detach(), weights, temperature=0.3), (feats,)
    )


def test_invalid_inputs_name_the_argument() -> None:
    z, y, p = Z.float(), Y.float(), P.float()
    bad_calls = [
        ({"features": z[0]}, "features"),
        ({"features": torch.zeros(0, 2)}, "features"),
        ({"features": torch.ones(4, 2, dtype=torch.long)}, "features"),
        ({"labels": y[:3]}, "labels"),
        ({"labels": y[:, None].repeat(1, 2)}, "labels"),
        ({"preds": p[:2]}, "preds"),
        ({"preds": [0.0, 1.0, 2.0, 3.0]}, "preds"),
        ({"weights": torch.ones(5)}, "weights"),
        ({"window": 0.0}, "window"),
        ({"window": math.inf}, "window"),
        ({"window": True}, "window"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -0.2}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"push": -0.01}, "push"),
        ({"push": math.inf}, "push"),
    ]
    for change, name in bad_calls:
        args = {"features": z, "labels": y, "preds": p, "weights": None, **change}
        knobs = {k: args.pop(k) for k in ("window", "temperature", "push") if k in args}
        with pytest.raises(ValueError, match=name):
            conr_loss(args["features"], args["labels"], args["preds"], args["weights"], **knobs)
    assert conr_loss(z, y, p, push=0.0).item() > 0  # push 0 is allowed


# --- devices and dtypes -----------------------------------------------------------------------


def test_bf16_autocast_stays_float32() -> None:
    feats, labels, preds, weights = two_view_batch(31, 16, 32, 10.0, dtype=torch.float32)
    expected = conr_loss(feats, labels, preds, weights)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = conr_loss(feats, labels, preds, weights)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, expected, rtol=1e-6, atol=1e-7)
    # bf16 inputs (as an autocast encoder would emit) are cast up: float32 result, close to
    # the float32 value of the same (bf16-rounded) features
    rounded = feats.bfloat16()
    low = conr_loss(rounded, labels, preds, weights)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, conr_loss(rounded.float(), labels, preds, weights))
    assert low.item() == pytest.approx(expected.item(), rel=2e-2)


@needs_cuda
def test_cuda_matches_cpu() -> None:
    feats, labels, preds, weights = two_view_batch(41, 32, 16, 12.0, dtype=torch.float32)
    cpu_feats = feats.clone().requires_grad_(True)
    gpu_feats = feats.cuda().requires_grad_(True)
    cpu = conr_loss(cpu_feats, labels, preds, weights)
    gpu = conr_loss(gpu_feats, labels.cuda(), preds.cuda(), weights.cuda())
    assert gpu.device.type == "cuda" and gpu.shape == ()
    cpu.backward()
    gpu.backward()
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gpu_feats.grad.cpu(), cpu_feats.grad, rtol=1e-4, atol=1e-6)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        mixed = conr_loss(gpu_feats, labels.cuda(), preds.cuda(), weights.cuda())
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed.cpu(), cpu, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="labels"):
        conr_loss(gpu_feats, labels, preds.cuda())
