"""``--set key.path=value`` on validate, run and train: the value is YAML, set on top of the file
and checked exactly like the file's own values; every problem is one line naming the option."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sweep_helpers import TINY_SWEEP, write_space

from dirsearch.cli.main import main
from dirsearch.errors import ConfigError
from dirsearch.sweep.set_options import load_trial_config_with_sets
from dirsearch.sweep.spec_reader import load_sweep_spec

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "search_spaces" / "demo.yaml"
AGEDB = ROOT / "search_spaces" / "agedb.yaml"


def error_lines(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    """The stderr lines of a command that must exit 2."""
    assert main(list(argv)) == 2
    return capsys.readouterr().err.splitlines()


def test_set_values_reach_the_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    spec = load_sweep_spec(
        DEMO,
        [
            "train.epochs=4",
            "train.loss={name: focal_l1, beta: 0.3}",
            "search.num_samples=3",
            "search.scheduler={name: fifo}",
            "experiment=quick",
            "data.bins=auto",
        ],
    )
    assert spec.epochs == 4 and spec.experiment == "quick"
    assert spec.fixed["train"]["loss"]["beta"] == 0.3
    assert (spec.search.num_samples, spec.search.scheduler.name) == (3, "fifo")
    assert spec.fixed["data"]["bins"] == {"start": 0.0, "width": 1.0, "count": 102}
    assert main(["validate", str(DEMO), "--no-environment", "--set", "train.lr=0.01"]) == 0
    out = capsys.readouterr().out
    assert "  train.lr: 0.01\n" in out and "train.lr: loguniform" not in out


def test_a_set_path_is_fixed_for_every_trial() -> None:
    spec = load_sweep_spec(DEMO, ["imbalance.reweight=sqrt_inv", "imbalance.lds.enabled=true"])
    searched = [dimension.path for dimension in spec.dimensions]
    assert "imbalance.reweight" not in searched and "imbalance.lds.enabled" not in searched
    assert "imbalance.lds.sigma" in searched  # its condition now reads the fixed value
    assert all("imbalance.reweight" not in point for point in spec.points)
    assert spec.fixed["imbalance"]["reweight"] == "sqrt_inv"


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (
            "train.lrr=0.1",
            "--set train.lrr=0.1: unknown key (did you mean 'lr'?); allowed: epochs, batch_size,",
        ),
        ("train.lr=-1", "--set train.lr=-1: must be > 0, got -1.0"),
        ("imbalance.lds.ks=4", "--set imbalance.lds.ks=4: must be a positive odd integer, got 4"),
        ("train.epochs=ten", "--set train.epochs=ten: must be an integer, got 'ten'"),
        (
            "train.loss={name: focal_l1, bta: 1}",
            "--set train.loss={name: focal_l1, bta: 1}: train.loss.bta: unknown key (did you "
            "mean 'beta'?)",
        ),
        ("search.num_samples=0", "--set search.num_samples=0: must be >= 1, got 0"),
        ("search.sheduler.name=fifo", "--set search.sheduler.name=fifo: unknown key (did you "),
        ("experiment=my sweep", "--set experiment=my sweep: must be a name of letters"),
        ("trian.lr=0.1", "--set trian.lr=0.1: unknown key (did you mean 'train'?)"),
        ("space.train.lr=1", "--set space.train.lr=1: dimensions cannot be set"),
        ("train.lr.x=1", "--set train.lr.x=1: train.lr is a value, not a section"),
        ("train.lr=[1,", "--set train.lr=[1,: the value is not valid YAML ("),
        ("train.lr", "--set train.lr: expected KEY.PATH=VALUE, e.g. --set train.lr=0.01"),
        ("data.bins=automatic", "--set data.bins=automatic: must be a mapping, got 'automatic'"),
    ],
)
def test_each_bad_option_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], option: str, expected: str
) -> None:
    lines = error_lines(capsys, "validate", str(DEMO), "--no-environment", "--set", option)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"dirsearch: error: {expected}"), lines[0]


def test_a_path_inside_a_searched_field_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    (line,) = error_lines(
        capsys, "validate", str(AGEDB), "--no-environment", "--set", "train.loss.beta=0.3"
    )
    assert line == (
        "dirsearch: error: --set train.loss.beta=0.3: train.loss is searched (space:); set "
        "train.loss itself to fix it"
    )


def test_several_bad_options_are_all_reported(capsys: pytest.CaptureFixture[str]) -> None:
    lines = error_lines(
        capsys, "validate", str(DEMO), "--set", "train.lrr=1", "--set", "foo=2", "--set", "x"
    )
    assert [line.split(": ")[2] for line in lines] == ["--set x"]  # unparsable ones first
    lines = error_lines(capsys, "validate", str(DEMO), "--set", "train.lrr=1", "--set", "foo=2")
    assert [line.split(": ")[2] for line in lines] == ["--set train.lrr=1", "--set foo=2"]


def test_run_refuses_a_bad_option_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = write_space(tmp_path, TINY_SWEEP)
    storage = tmp_path / "runs"
    (line,) = error_lines(
        capsys, "run", str(space), "--storage", str(storage), "--set", "train.lr=0"
    )
    assert line == "dirsearch: error: --set train.lr=0: must be > 0, got 0.0"
    assert not storage.exists()


def test_train_takes_trial_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = write_space(tmp_path, TINY_SWEEP)
    config = load_trial_config_with_sets(space, ["train.epochs=2", "imbalance.reweight=inverse"])
    assert (config.train.epochs, config.imbalance.reweight) == (2, "inverse")
    out = tmp_path / "out"
    (line,) = error_lines(capsys, "train", str(space), "--out", str(out), "--set", "train.lrr=1")
    assert line.startswith("dirsearch: error: --set train.lrr=1: unknown key (did you mean 'lr'?)")
    (line,) = error_lines(
        capsys, "train", str(space), "--out", str(out), "--set", "search.num_samples=2"
    )
    assert line.startswith("dirsearch: error: --set search.num_samples=2: train reads the trial")
    assert not out.exists()
    with pytest.raises(
        ConfigError, match=re.escape("--set imbalance.lds.enabled=true: LDS smooths")
    ):
        load_trial_config_with_sets(space, ["imbalance.lds.enabled=true"])
