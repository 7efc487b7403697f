"""The DIR evaluation protocol: errors overall and per many / medium / few-shot region."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dirsearch.imbalance.bins import Binning, as_numpy, check_finite


@dataclass(frozen=True)
class PerBinErrors:
    """Per bin: training samples, test samples and test MAE (nan where no test sample)."""

    train_count: np.ndarray
    test_count: np.ndarray
    mae: np.ndarray


def _errors_and_train_counts(
    preds: np.ndarray | torch.Tensor,
    targets: np.ndarray | torch.Tensor,
    train_targets: np.ndarray | torch.Tensor,
    binning: Binning,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prediction errors, test bins, training histogram) after checking the inputs."""
    predictions = as_numpy("preds", preds)
    labels = as_numpy("targets", targets)
    if predictions.size != labels.size:
        raise ValueError(
            f"preds and targets must have the same length; got {predictions.size} and {labels.size}"
        )
    check_finite("targets", labels)
    training = as_numpy("train_targets", train_targets)
    check_finite("train_targets", training)
    train_counts = binning.histogram(training)
    return predictions - labels, binning.index(labels), train_counts


def _geometric_mean(absolute_errors: np.ndarray) -> float:
    """Geometric mean of |e|; exactly 0 when any error is 0 (log(0) would warn)."""
    if (absolute_errors == 0).any():
        return 0.0
    return float(np.exp(np.mean(np.log(absolute_errors))))


def _region_statistics(errors: np.ndarray) -> dict[str, float]:
    if errors.size == 0:
        return {"mae": float("nan"), "mse": float("nan"), "gm": float("nan"), "n": 0}
    absolute = np.abs(errors)
    return {
        "mae": float(absolute.mean()),
        "mse": float(np.mean(errors**2)),
        "gm": _geometric_mean(absolute),
        "n": int(errors.size),
    }


def shot_metrics(
    preds: np.ndarray | torch.Tensor,
    targets: np.ndarray | torch.Tensor,
    train_targets: np.ndarray | torch.Tensor,
    binning: Binning,
    *,
    many: int = 100,
    few: int = 20,
) -> dict[str, dict[str, float]]:
    """MAE, MSE and GM overall and per shot region (ALGORITHMS.md section 5).

    A test target is many-shot when its bin holds more than ``many`` training samples,
    few-shot when fewer than ``few`` (bins without training samples included), medium
    otherwise. An empty region reports nan with ``n = 0``, never 0.
    """
    if few > many:
        raise ValueError(f"few ({few}) must not exceed many ({many})")
    errors, test_bins, train_counts = _errors_and_train_counts(
        preds, targets, train_targets, binning
    )
    shots = train_counts[test_bins]
    regions = {
        "all": np.ones(errors.size, dtype=bool),
        "many": shots > many,
        "medium": (shots >= few) & (shots <= many),
        "few": shots < few,
    }
    return {name: _region_statistics(errors[mask]) for name, mask in regions.items()}


def per_bin_errors(
    preds: np.ndarray | torch.Tensor,
    targets: np.ndarray | torch.Tensor,
    train_targets: np.ndarray | torch.Tensor,
    binning: Binning,
) -> PerBinErrors:
    """Training count, test count and test MAE of every bin (for error-vs-density plots)."""
    errors, test_bins, train_counts = _errors_and_train_counts(
        preds, targets, train_targets, binning
    )
    test_counts = np.bincount(test_bins, minlength=binning.count).astype(np.int64)
    error_sums = np.bincount(test_bins, weights=np.abs(errors), minlength=binning.count)
    mae = np.divide(
        error_sums,
        test_counts,
        out=np.full(binning.count, np.nan),
        where=test_counts > 0,
    )
    return PerBinErrors(train_count=train_counts, test_count=test_counts, mae=mae)


def flatten_metrics(metrics: dict[str, dict[str, float]], prefix: str) -> dict[str, float]:
    """``{"few": {"mae": x}}`` -> ``{"<prefix>/few/mae": x}``: the names trackers log."""
    return {
        f"{prefix}/{region}/{name}": value
        for region, values in metrics.items()
        for name, value in values.items()
    }


def nested_metrics(flat: dict[str, float], prefix: str) -> dict[str, dict[str, float]]:
    """``{"test/few/mae": x}`` -> ``{"few": {"mae": x}}``: the inverse of ``flatten_metrics``
    (keys without ``prefix`` are left out)."""
    nested: dict[str, dict[str, float]] = {}
    for key, value in flat.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == prefix:
            nested.setdefault(parts[1], {})[parts[2]] = value
    return nested
