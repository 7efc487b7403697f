"""Tiny trial configs and comparison helpers shared by the trainer and CLI tests.

The data is the synthetic AgeDB-DIR replica at 5% scale (603 training samples, 1,020 balanced
validation and test samples each) as feature vectors for an MLP or as 16x16 images for the small
CNN, trained for a few epochs with batch 64. Shot thresholds are lowered (many > 10, few < 3) so
that every region holds samples at this size.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dirsearch.config.files import trial_config_from_dict
from dirsearch.config.trial import TrialConfig
from dirsearch.imbalance import flatten_metrics

TRAIN_SAMPLES = 603
"""Training samples of the synthetic data at scale 0.05 (AgeDB-DIR's histogram x 0.05, rounded)."""
EVAL_SAMPLES = 1020
"""Validation (and test) samples: 10 per age 0..101."""
BATCH = 64

TABULAR: dict[str, Any] = {
    "data": {"name": "synthetic", "kind": "tabular", "scale": 0.05},
    "model": {"arch": "mlp", "mlp_hidden": [32, 32]},
    "train": {"epochs": 2, "batch_size": BATCH, "device": "cpu"},
    "imbalance": {"shots": {"many": 10, "few": 3}},
}
IMAGES: dict[str, Any] = {
    "data": {"kind": "image", "image_size": 16},
    "model": {"arch": "small_cnn"},
}
FDS_LDS: dict[str, Any] = {
    "imbalance": {
        "reweight": "sqrt_inv",
        "lds": {"enabled": True},
        "fds": {"enabled": True, "start_update": 0, "start_smooth": 1},
    }
}


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, nested mappings key by key."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def make_config(*overrides: dict[str, Any]) -> TrialConfig:
    """The tiny tabular trial with ``overrides`` applied in order."""
    mapping = TABULAR
    for override in overrides:
        mapping = merged(mapping, override)
    return trial_config_from_dict(mapping, "test config", Path.cwd())


def stable(history: list[dict[str, float]]) -> list[dict[str, Any]]:
    """Metrics without the timing ones, NaN as None, so runs compare with ``==`` exactly."""
    return [
        {
            key: None if isinstance(value, float) and math.isnan(value) else value
            for key, value in metrics.items()
            if not key.startswith("time/") and key != "train/samples_per_s"
        }
        for metrics in history
    ]


def nested_stable(metrics: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    return stable([flatten_metrics(metrics, "m")])
