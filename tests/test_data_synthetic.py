"""The synthetic default data: determinism, AgeDB-DIR histogram, balanced eval, disk round trip."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from dirsearch.data.csv_images import load_csv_images
from dirsearch.data.csv_table import read_table
from dirsearch.data.synthetic import make_synthetic, write_synthetic
from dirsearch.data.tabular import load_tabular

COUNTS = Path(__file__).parents[1] / "dirsearch" / "data" / "agedb_dir_split_counts.csv"


def _train_counts() -> dict[int, int]:
    with COUNTS.open() as handle:
        return {int(row["age"]): int(row["train"]) for row in csv.DictReader(handle)}


def _histogram(targets: np.ndarray) -> dict[int, int]:
    return dict(Counter(int(t) for t in targets))


def test_training_histogram_is_agedb_dir_at_scale_one() -> None:
    bundle = make_synthetic("tabular", seed=0)
    expected = {age: n for age, n in _train_counts().items() if n > 0}
    assert _histogram(bundle.train.targets) == expected
    assert len(bundle.train.targets) == 12208
    assert bundle.train.dataset.targets.dtype == torch.float32


def test_training_histogram_is_scaled_and_rounded() -> None:
    bundle = make_synthetic("image", seed=0, scale=0.05)
    expected = {a: round(n * 0.05) for a, n in _train_counts().items() if round(n * 0.05) > 0}
    assert _histogram(bundle.train.targets) == expected
    histogram = _histogram(bundle.train.targets)
    # By hand from the AgeDB-DIR counts 325, 224, 152 and 2 (ages 30, 25, 23, 98):
    assert (histogram[30], histogram[25], histogram[23]) == (16, 11, 8)
    assert 98 not in histogram


def test_val_and_test_are_balanced_over_all_ages_including_empty_training_ages() -> None:
    bundle = make_synthetic("tabular", seed=3, scale=0.1, eval_per_age=4)
    empty_in_train = [age for age, n in _train_counts().items() if round(n * 0.1) == 0]
    assert 0 in empty_in_train and 101 in empty_in_train
    for split in (bundle.val, bundle.test):
        assert _histogram(split.targets) == {age: 4 for age in range(102)}
        np.testing.assert_array_equal(split.targets, np.round(split.targets))
    assert not np.array_equal(bundle.val.targets, bundle.test.targets)  # shuffled independently


def test_images_are_uint8_and_encode_the_age() -> None:
    bundle = make_synthetic("image", seed=1, scale=0.2, image_size=24)
    assert bundle.input_shape == (3, 24, 24)
    assert bundle.transform.crop_padding == 2  # round(16 * 24 / 224)
    images = bundle.test.dataset.inputs
    assert images.dtype == torch.uint8 and images.shape == (1020, 3, 24, 24)
    # The bar is the only bright part (foreground >= 0.55, background <= 0.45, little noise):
    # its area grows with the age, up to observation noise.
    bright = (images.float().mean(dim=1) > 127.5).flatten(1).sum(1).float()
    ages = bundle.test.dataset.targets
    assert torch.corrcoef(torch.stack([bright, ages]))[0, 1] > 0.8


def test_same_seed_same_tensors_different_seed_different() -> None:
    for kind in ("image", "tabular"):
        first = make_synthetic(kind, seed=5, scale=0.02)
        again = make_synthetic(kind, seed=5, scale=0.02)
        other = make_synthetic(kind, seed=6, scale=0.02)
        for name in ("train", "val", "test"):
            a, b, c = (getattr(x, name).dataset for x in (first, again, other))
            assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
            assert not torch.equal(a.inputs, c.inputs)


def test_eval_splits_do_not_depend_on_the_training_scale() -> None:
    small = make_synthetic("image", seed=2, scale=0.02)
    large = make_synthetic("image", seed=2, scale=0.05)
    assert torch.equal(small.test.dataset.inputs, large.test.dataset.inputs)
    assert len(small.train.dataset) < len(large.train.dataset)


def test_tabular_has_informative_and_nuisance_features() -> None:
    bundle = make_synthetic("tabular", seed=0, scale=0.5)
    features = bundle.train.dataset.inputs
    assert bundle.input_shape == (8,) and features.dtype == torch.float32
    ages = bundle.train.dataset.targets
    correlations = [
        abs(float(torch.corrcoef(torch.stack([features[:, j], ages]))[0, 1])) for j in range(8)
    ]
    assert correlations[0] > 0.9  # a noisy linear function of the age
    assert max(correlations[4:]) < 0.05  # pure noise
    assert torch.equal(bundle.transform.eval(features), features)


def test_write_synthetic_images_read_back_identically(tmp_path: Path) -> None:
    bundle = make_synthetic("image", seed=4, scale=0.02, image_size=16)
    path = write_synthetic(tmp_path / "synth", seed=4, scale=0.02, image_size=16)
    assert read_table(path).header == ("path", "age", "split")
    loaded = load_csv_images(path, path.parent, image_size=16)
    for name in ("train", "val", "test"):
        expected = getattr(bundle, name).dataset
        size = len(expected)
        inputs, targets = getattr(loaded, name).dataset.__getitems__(list(range(size)))
        assert torch.equal(inputs, expected.inputs)
        assert torch.equal(targets, expected.targets)


def test_write_synthetic_tabular_is_exact_and_loads_with_the_tabular_loader(
    tmp_path: Path,
) -> None:
    bundle = make_synthetic("tabular", seed=4, scale=0.05)
    path = write_synthetic(tmp_path, kind="tabular", seed=4, scale=0.05)
    table = read_table(path)
    assert table.header == ("x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "age", "split")
    train_rows = [row for row in table.rows if row[-1] == "train"]
    written = torch.tensor([[float(cell) for cell in row[:8]] for row in train_rows])
    assert torch.equal(written, bundle.train.dataset.inputs)
    loaded = load_tabular(path, target="age")
    assert loaded.input_shape == (8,)
    for name in ("train", "val", "test"):
        assert torch.equal(
            getattr(loaded, name).dataset.targets, getattr(bundle, name).dataset.targets
        )


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="kind must be one of image, tabular"):
        make_synthetic("audio")
    with pytest.raises(ValueError, match="scale must be > 0"):
        make_synthetic("tabular", scale=0)
    with pytest.raises(ValueError, match="no training sample"):
        make_synthetic("tabular", scale=1e-4)
    with pytest.raises(ValueError, match="eval_per_age"):
        make_synthetic("tabular", eval_per_age=0)
