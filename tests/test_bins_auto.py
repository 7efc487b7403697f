"""``data.bins: auto``: bins that spread float targets over about 100 readable bins, width-1 bins
over integer ages, resolved once when a space file or trial config is read (so every trial of a
sweep uses the same bins), shown by validate and refused in one line when they cannot be made."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sweep_helpers import TINY_SWEEP, write_space
from trial_helpers import merged

from dirsearch.cli.main import main
from dirsearch.config.files import load_trial_config
from dirsearch.errors import ConfigError
from dirsearch.imbalance.bin_rule import auto_binning, readable_width
from dirsearch.imbalance.bins import Binning
from dirsearch.sweep.spec_reader import load_sweep_spec
from dirsearch.sweep.summary import summary

MAX_SHARE = 0.10
"""No auto bin may hold more than this share of the targets (the default width-1 bins put every
target in [0, 1] into one or two bins)."""
READABLE = {step * 10.0**k for step in (1, 2, 2.5, 5) for k in range(-4, 5)}


def skewed(low: float, high: float, n: int = 2000, seed: int = 0) -> np.ndarray:
    """Targets crowded at the low end with a long tail, the shape DIR is for."""
    rng = np.random.default_rng(seed)
    return low + (high - low) * rng.beta(1.2, 5.0, n)


def largest_share(binning: Binning, targets: np.ndarray) -> float:
    return float(binning.histogram(targets).max() / len(targets))


@pytest.mark.parametrize(("low", "high"), [(0.0, 1.0), (200.0, 3000.0)])
def test_float_targets_are_spread_over_readable_bins(low: float, high: float) -> None:
    targets = skewed(low, high)
    binning = auto_binning(targets)
    assert largest_share(binning, targets) <= MAX_SHARE
    assert largest_share(Binning(0, 1, 102), targets) > 0.5  # what the default bins do
    assert 40 <= binning.count <= 101
    assert binning.width in READABLE
    assert binning.start <= targets.min() and targets.max() < binning.edges[-1]
    # The first edge is a multiple of the width, so the DIR split's floor(t / width) agrees.
    assert binning.start / binning.width == pytest.approx(round(binning.start / binning.width))


def test_integer_ages_get_width_one_bins_over_their_range() -> None:
    ages = np.repeat(np.arange(101), np.arange(101) % 7 + 1) + 1.0  # ages 1..101
    assert auto_binning(ages) == Binning(1.0, 1.0, 101)
    assert auto_binning(np.array([0.0, 5.0, 101.0])) == Binning(0.0, 1.0, 102)


def test_wide_integer_targets_get_integer_readable_widths() -> None:
    visits = np.arange(0, 5000, 3, dtype=float)
    binning = auto_binning(visits)
    assert binning.width == 50 and binning.count == 100


def test_given_keys_are_kept_and_only_the_rest_derived() -> None:
    targets = skewed(0.0, 1.0)
    forty = auto_binning(targets, count=40)
    assert forty.count == 40 and forty.start == targets.min()
    assert forty.edges[-1] == pytest.approx(targets.max())
    fixed_width = auto_binning(targets, width=0.05)
    assert fixed_width.width == 0.05 and fixed_width.start == 0.0
    assert targets.max() < fixed_width.edges[-1]


def test_readable_width() -> None:
    assert [readable_width(x) for x in (0.0099, 0.011, 0.021, 0.03, 28.0)] == [
        0.01,
        0.02,
        0.025,
        0.05,
        50.0,
    ]
    assert readable_width(2.3, integer=True) == 5.0
    assert readable_width(0.3, integer=True) == 1.0


def test_a_constant_target_has_no_range_to_bin() -> None:
    with pytest.raises(ValueError, match=re.escape("every target equals 0.5")):
        auto_binning(np.full(10, 0.5))


def table(folder: Path, targets: np.ndarray, name: str = "data.csv") -> Path:
    """A tabular CSV: two features, the target y and DIR-ish splits."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    splits = ["train", "train", "train", "val", "test"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x0", "x1", "y", "split"])
        for index, target in enumerate(targets):
            writer.writerow([index % 3, index % 5, repr(float(target)), splits[index % 5]])
    return path


def tabular_space(csv_name: str, bins: Any) -> dict[str, Any]:
    return merged(
        TINY_SWEEP, {"data": {"name": "tabular", "csv": csv_name, "target": "y", "bins": bins}}
    )


def test_a_space_file_resolves_auto_bins_once_for_every_trial(tmp_path: Path) -> None:
    targets = skewed(200.0, 3000.0)
    data = table(tmp_path, targets)
    spec = load_sweep_spec(write_space(tmp_path, tabular_space("data.csv", "auto")))
    bins = spec.fixed["data"]["bins"]
    expected = auto_binning(targets)
    assert bins == {"start": expected.start, "width": expected.width, "count": expected.count}
    assert spec.bins_from == "auto"
    assert spec.to_dict()["fixed"]["data"]["bins"] == bins  # sweep.json records them
    data.unlink()  # a trial never reads the targets again: it gets the recorded bins
    config = spec.trial_config({"train.lr": 0.003})
    assert (config.data.bins.start, config.data.bins.width) == (expected.start, expected.width)
    assert (
        f"bins: {expected.count} of width 25 over [200, {expected.edges[-1]:g}) "
        f"(data.bins: auto, derived from the targets)" in summary(spec)
    )


def test_the_mapping_forms(tmp_path: Path) -> None:
    targets = skewed(0.0, 1.0)
    table(tmp_path, targets)
    forty = load_sweep_spec(
        write_space(tmp_path, tabular_space("data.csv", {"width": "auto", "count": 40}))
    )
    assert forty.fixed["data"]["bins"]["count"] == 40
    assert forty.bins_from == "{width: auto, count: 40}"
    width = load_sweep_spec(write_space(tmp_path, tabular_space("data.csv", {"width": "auto"})))
    assert width.fixed["data"]["bins"]["width"] == auto_binning(targets).width
    plain = load_sweep_spec(write_space(tmp_path, tabular_space("data.csv", {"count": 40})))
    assert plain.fixed["data"]["bins"] == {"start": 0.0, "width": 1.0, "count": 40}
    assert plain.bins_from == ""


def test_the_synthetic_data_gets_its_ages(tmp_path: Path) -> None:
    spec = load_sweep_spec(write_space(tmp_path, merged(TINY_SWEEP, {"data": {"bins": "auto"}})))
    assert spec.fixed["data"]["bins"] == {"start": 0.0, "width": 1.0, "count": 102}
    # A width written as YAML 1.1 reads 5e-1 (text), as the loader takes it: kept, not dropped.
    half = merged(TINY_SWEEP, {"data": {"bins": {"width": "5e-1", "count": "auto"}}})
    spec = load_sweep_spec(write_space(tmp_path, half))
    assert spec.fixed["data"]["bins"] == {"start": 0.0, "width": 0.5, "count": 203}


def test_a_trial_config_resolves_auto_bins(tmp_path: Path) -> None:
    table(tmp_path, skewed(0.0, 1.0))
    path = write_space(tmp_path, {"data": {"name": "tabular", "csv": "data.csv", "target": "y"}})
    path.write_text(path.read_text().replace("target: y", "target: y\n  bins: auto"))
    bins = load_trial_config(path).data.bins
    assert bins.width in READABLE and bins.width < 0.05
    assert load_trial_config(path).to_dict()["data"]["bins"]["count"] == bins.count


@pytest.mark.parametrize(
    ("csv_name", "targets", "message"),
    [
        ("missing.csv", None, "missing.csv: CSV file not found"),
        ("data.csv", np.full(50, 3.5), "every target equals 3.5"),
    ],
)
def test_bins_that_cannot_be_derived_are_one_line_naming_data_bins(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    csv_name: str,
    targets: np.ndarray | None,
    message: str,
) -> None:
    if targets is not None:
        table(tmp_path, targets)
    space = write_space(tmp_path, tabular_space(csv_name, "auto"))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_sweep_spec(space)
    assert main(["validate", str(space)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"dirsearch: error: {space}: data.bins: auto derives the bins")
    assert message in line and "give explicit bins {start, width, count}" in line


def test_bad_given_keys_are_reported_by_the_loader(tmp_path: Path) -> None:
    table(tmp_path, skewed(0.0, 1.0))
    space = write_space(tmp_path, tabular_space("data.csv", {"width": "auto", "cont": 3}))
    with pytest.raises(
        ConfigError, match=re.escape("data.bins.cont: unknown key (did you mean 'count'")
    ):
        load_sweep_spec(space)
