"""DIR evaluation protocol: shot-region MAE / MSE / GM and per-bin errors (ALGORITHMS.md 5)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from reference_dir import ref_shot_metrics

from dirsearch.imbalance import Binning, flatten_metrics, per_bin_errors, shot_metrics

BINNING5 = Binning(start=0.0, width=1.0, count=5)
# Training counts [150, 100, 20, 19, 0]: many, medium (100 is not > 100), medium (20 is not < 20),
# few, few (no training sample at all).
TRAIN5 = np.concatenate([np.full(150, 0.5), np.full(100, 1.5), np.full(20, 2.5), np.full(19, 3.5)])
# (target, error) pairs; pred = target + error, all exact in binary floating point.
CASES5 = [
    (0.5, 1.0),  # many
    (-1.0, -4.0),  # below the range -> bin 0 -> many
    (1.5, 2.0),  # medium
    (2.25, -8.0),  # medium
    (3.5, 0.5),  # few
    (4.5, -2.0),  # few (empty training bin)
    (7.0, 1.0),  # above the range -> bin 4 -> few
]
TARGETS5 = np.array([t for t, _ in CASES5])
PREDS5 = np.array([t + e for t, e in CASES5])


def _check_region(got: dict[str, float], mae: float, mse: float, gm: float, n: int) -> None:
    assert got["n"] == n
    assert got["mae"] == pytest.approx(mae, rel=1e-12)
    assert got["mse"] == pytest.approx(mse, rel=1e-12)
    assert got["gm"] == pytest.approx(gm, rel=1e-12)


def test_shot_metrics_by_hand() -> None:
    got = shot_metrics(PREDS5, TARGETS5, TRAIN5, BINNING5)
    assert set(got) == {"all", "many", "medium", "few"}
    _check_region(got["many"], mae=2.5, mse=8.5, gm=2.0, n=2)
    _check_region(got["medium"], mae=5.0, mse=34.0, gm=4.0, n=2)
    _check_region(got["few"], mae=3.5 / 3, mse=5.25 / 3, gm=1.0, n=3)
    _check_region(got["all"], mae=18.5 / 7, mse=90.25 / 7, gm=64.0 ** (1 / 7), n=7)
    for region in got.values():
        assert isinstance(region["n"], int)
        assert all(isinstance(region[k], float) for k in ("mae", "mse", "gm"))


def test_custom_thresholds_and_empty_region_is_nan() -> None:
    # many > 19 -> bins 0, 1, 2 are many; few < 19 -> only bin 4; bin 3 (19) would be medium,
    # and the test set below has no target there.
    keep = [0, 2, 3, 5]
    got = shot_metrics(PREDS5[keep], TARGETS5[keep], TRAIN5, BINNING5, many=19, few=19)
    _check_region(got["many"], mae=11 / 3, mse=69 / 3, gm=16.0 ** (1 / 3), n=3)
    _check_region(got["few"], mae=2.0, mse=4.0, gm=2.0, n=1)
    assert got["medium"]["n"] == 0
    assert all(math.isnan(got["medium"][k]) for k in ("mae", "mse", "gm"))


def test_geometric_mean_with_a_zero_error_is_zero_without_warnings() -> None:
    targets = np.array([0.5, 0.5, 3.5])
    preds = np.array([0.5, 3.5, 4.5])  # errors 0, 3, 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = shot_metrics(preds, targets, TRAIN5, BINNING5)
    _check_region(got["many"], mae=1.5, mse=4.5, gm=0.0, n=2)
    _check_region(got["few"], mae=1.0, mse=1.0, gm=1.0, n=1)
    assert got["all"]["gm"] == 0.0


def test_torch_inputs_match_numpy() -> None:
    got = shot_metrics(
        torch.tensor(PREDS5, dtype=torch.float64),
        torch.tensor(TARGETS5, dtype=torch.float64),
        torch.tensor(TRAIN5, dtype=torch.float64),
        BINNING5,
    )
    assert got == shot_metrics(PREDS5, TARGETS5, TRAIN5, BINNING5)


def test_shot_metrics_match_slow_loop_on_random_data() -> None:
    rng = np.random.default_rng(5)
    train = rng.gamma(3.0, 6.0, 4000)
    targets = rng.uniform(0.0, 70.0, 600)
    preds = targets + rng.normal(0.0, 4.0, 600)
    binning = Binning(start=0.0, width=1.0, count=60)
    got = shot_metrics(preds, targets, train, binning, many=80, few=15)
    expected = ref_shot_metrics(preds, targets, train, 0.0, 1.0, 60, many=80, few=15)
    for region, stats in expected.items():
        assert got[region]["n"] == stats["n"] > 0
        for key in ("mae", "mse", "gm"):
            assert got[region][key] == pytest.approx(stats[key], rel=1e-10)


def test_per_bin_errors_by_hand() -> None:
    got = per_bin_errors(PREDS5, TARGETS5, TRAIN5, BINNING5)
    assert got.train_count.dtype == np.int64
    assert got.test_count.dtype == np.int64
    assert got.mae.dtype == np.float64
    np.testing.assert_array_equal(got.train_count, [150, 100, 20, 19, 0])
    np.testing.assert_array_equal(got.test_count, [2, 1, 1, 1, 2])
    np.testing.assert_allclose(got.mae, [2.5, 2.0, 8.0, 0.5, 1.5], rtol=1e-12)


def test_per_bin_errors_nan_where_no_test_sample() -> None:
    got = per_bin_errors(np.array([1.0, 2.0]), np.array([0.5, 0.5]), TRAIN5, BINNING5)
    np.testing.assert_array_equal(got.test_count, [2, 0, 0, 0, 0])
    assert got.mae[0] == pytest.approx(1.0)
    assert np.isnan(got.mae[1:]).all()
    got_torch = per_bin_errors(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.5]), TRAIN5, BINNING5)
    np.testing.assert_array_equal(got_torch.mae, got.mae)


def test_flatten_metrics_names() -> None:
    flat = flatten_metrics(shot_metrics(PREDS5, TARGETS5, TRAIN5, BINNING5), "val")
    assert flat["val/few/mae"] == pytest.approx(3.5 / 3)
    assert flat["val/all/n"] == 7
    assert len(flat) == 16


@pytest.mark.parametrize("func", [shot_metrics, per_bin_errors])
def test_bad_inputs(func) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"preds|targets"):
        func(PREDS5[:-1], TARGETS5, TRAIN5, BINNING5)
    bad = TARGETS5.copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match="targets"):
        func(PREDS5, bad, TRAIN5, BINNING5)
    bad[2] = np.inf
    with pytest.raises(ValueError, match="targets"):
        func(PREDS5, torch.tensor(bad), TRAIN5, BINNING5)
    bad_train = TRAIN5.copy()
    bad_train[0] = -np.inf
    with pytest.raises(ValueError, match="train_targets"):
        func(PREDS5, TARGETS5, bad_train, BINNING5)
