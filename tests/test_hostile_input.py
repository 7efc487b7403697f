"""Hostile or broken input is refused fast: exit 2 within seconds, a few short lines naming the
file, key or row, never a traceback, a hang or megabytes of echoed value.

YAML (aliases, nesting, duplicate keys, encoding, size), numbers (finite, within sane limits),
grids (sized before they are listed), sweep names (``--name``) and CSV image paths (inside
``data.root``).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from sweep_helpers import TINY_SWEEP, cli, write_space
from trial_helpers import merged

from dirsearch.cli.main import main
from dirsearch.data.csv_images import load_csv_images
from dirsearch.errors import ConfigError, DataError
from dirsearch.sweep.folder import new_folder
from dirsearch.sweep.spec_reader import load_sweep_spec

MAX_LINE = 300
"""Longest error line accepted: a message quotes what it found, cut short."""


def validate(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, list[str]]:
    """``dirsearch validate PATH`` in-process: (exit code, stderr lines); never a traceback."""
    code = main(["validate", "--no-environment", str(path)])
    return code, capsys.readouterr().err.splitlines()


def assert_refused(code: int, lines: list[str], *fragments: str, most: int = 1) -> None:
    assert code == 2, lines
    assert 1 <= len(lines) <= most, lines
    assert all(line.startswith("dirsearch: error: ") for line in lines), lines
    assert all(len(line) <= MAX_LINE for line in lines), [len(line) for line in lines]
    for fragment in fragments:
        assert any(fragment in line for line in lines), (fragment, lines)


def space_text(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    """TINY_SWEEP's file with ``text`` appended (a YAML fragment written by hand)."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(TINY_SWEEP, sort_keys=False) + text)
    return path


def validate_subprocess(path: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """``dirsearch validate`` as its own process, so a hang is a failed test, not a stuck run."""
    started = time.monotonic()
    done = subprocess.run(
        cli("validate", "--no-environment", str(path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, time.monotonic() - started


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    """Nine levels of nine aliases stand for 9^9 values; echoed in an error it was megabytes."""
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        below = ", ".join([f"*a{level - 1}"] * 9)
        levels.append(f"a{level}: &a{level} [{below}]")
    path = tmp_path / "bomb.yaml"
    bombs = "".join(f"  {line}\n" for line in levels)
    path.write_text(f"experiment: bomb\nbombs:\n{bombs}train:\n  lr: *a8\n")
    done, seconds = validate_subprocess(path)
    lines = done.stderr.splitlines()
    assert_refused(done.returncode, lines, f"{path}: line 4", "alias *a0 is not supported")
    assert seconds < 30


def test_a_long_value_is_cut_short_in_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = space_text(tmp_path, "")
    mapping = yaml.safe_load(path.read_text())
    mapping["train"]["lr"] = list(range(5000))
    path.write_text(yaml.safe_dump(mapping))
    code, lines = validate(capsys, path)
    assert_refused(code, lines, "train.lr: must be a number, got [0, 1, 2", "characters)")


def test_ten_thousand_nested_brackets_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = space_text(tmp_path, "deep: " + "[" * 10_000 + "]" * 10_000 + "\n")
    code, lines = validate(capsys, path)
    assert_refused(code, lines, "not valid YAML (nested more than 50 levels deep)")


def test_a_duplicate_key_is_refused_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text("experiment: twice\ntrain:\n  lr: 0.1\n  epochs: 2\n  lr: 0.2\n")
    code, lines = validate(capsys, path)
    assert_refused(code, lines, f"{path}: line 5 not valid YAML (key 'lr' is given twice)")


def test_a_non_utf8_byte_names_its_offset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"experiment: caf\xe9\n")
    code, lines = validate(capsys, path)
    assert_refused(code, lines, f"{path}: not UTF-8 text (byte 0xe9 at offset 15)")


def test_a_control_character_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nul.yaml"
    path.write_bytes(b"experiment: a\x00b\n")
    code, lines = validate(capsys, path)
    assert_refused(code, lines, "character #x0000 at offset 13 is not allowed")


def test_a_file_too_large_for_a_config_is_not_parsed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = space_text(tmp_path, "filler: [" + ", ".join(["1"] * 40_000) + "]\n")
    started = time.monotonic()
    code, lines = validate(capsys, path)
    assert_refused(code, lines, "is too large for a config file (at most 65,536)")
    assert time.monotonic() - started < 5


def test_an_integer_too_long_for_python_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = space_text(tmp_path, "")
    path.write_text(path.read_text().replace("epochs: 4", "epochs: 1" + "0" * 5000))
    code, lines = validate(capsys, path)
    assert_refused(code, lines, "not valid YAML (Exceeds the limit")


@pytest.mark.parametrize(
    ("dotted", "text", "problem"),
    [
        ("train.lr", ".inf", "train.lr: must be a finite number, got inf"),
        ("train.lr", "1e309", "train.lr: must be a finite number, got '1e309'"),
        ("train.lr", "-.inf", "train.lr: must be a finite number, got -inf"),
        ("train.lr", "2.0e+6", "train.lr: must be at most 1,000,000"),
        ("data.bins.start", ".nan", "data.bins.start: must be a finite number, got nan"),
        ("data.bins.width", "1" + "0" * 400, "data.bins.width: must be a finite number, got 1000"),
        ("data.bins.count", "1" + "0" * 400, "data.bins.count: must be at most 100,000, got 1000"),
        ("train.epochs", str(10**20), "train.epochs: must be at most 100,000, got 1000000000"),
        ("data.image_size", "100000", "data.image_size: must be at most 4,096, got 100000"),
        ("train.batch_size", str(10**9), "train.batch_size: must be at most 1,048,576"),
        ("data.scale", "1.0e+9", "data.scale: must be at most 100 (1.2 million samples)"),
        ("model.dropout", "-0.5", "model.dropout: must be at least 0, got -0.5"),
        ("seed", str(2**60), "seed: must be at most 9,007,199,254,740,992 (seeds stay exact"),
        ("imbalance.lds.ks", "999999", "imbalance.lds.ks: must be at most 1,001, got 999999"),
    ],
)
def test_numbers_are_finite_and_within_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dotted: str, text: str, problem: str
) -> None:
    *sections, key = dotted.split(".")
    indent = "".join(f"{'  ' * depth}{name}:\n" for depth, name in enumerate(sections))
    path = tmp_path / "number.yaml"
    path.write_text(f"experiment: number\n{indent}{'  ' * len(sections)}{key}: {text}\n")
    code, lines = validate(capsys, path)
    assert_refused(code, lines, problem)


@pytest.mark.parametrize(
    ("search", "problem"),
    [
        ({"num_samples": 10**20}, "search.num_samples: must be at most 100,000"),
        ({"repeats": 10**6}, "search.repeats: must be at most 100"),
        ({"resources": {"cpu": float("inf")}}, "search.resources.cpu: must be a finite number"),
        ({"searcher": {"name": "optuna", "seed": -1}}, "search.searcher.seed: must be 0 to"),
    ],
)
def test_search_settings_are_within_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], search: dict[str, Any], problem: str
) -> None:
    path = write_space(tmp_path, merged(TINY_SWEEP, {"search": search}))
    code, lines = validate(capsys, path)
    assert_refused(code, lines, problem)


def test_a_uniform_dimension_to_infinity_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = {"space": {"train.lr": {"loguniform": [1.0e-3, float("inf")]}}}
    code, lines = validate(capsys, write_space(tmp_path, merged(TINY_SWEEP, space)))
    assert_refused(code, lines, "space.train.lr.loguniform: low and high must be finite numbers")


MISSING_DATA = merged(TINY_SWEEP, {"data": {"name": "csv_images", "csv": "missing.csv"}})
"""A sweep refused for its missing data once its command line passed: a check of the command
line that is missed ends there, not in a sweep."""


def test_num_samples_on_the_command_line_is_within_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_space(tmp_path, MISSING_DATA)
    arguments = ["run", str(path), "--storage", str(tmp_path / "runs")]
    code = main([*arguments, "--num-samples", str(10**20)])
    lines = capsys.readouterr().err.splitlines()
    assert_refused(code, lines, "--num-samples: must be at most 100,000")
    assert not (tmp_path / "runs").exists()


def grid_of(dimensions: int, choices: int) -> dict[str, Any]:
    """A grid over ``dimensions`` choice dimensions of ``choices`` values each (the bins' start:
    any number is a valid one)."""
    paths = [
        "data.bins.start",
        "data.bins.width",
        "train.lr",
        "train.weight_decay",
        "train.momentum",
        "imbalance.lds.sigma",
        "imbalance.fds.sigma",
        "imbalance.ranksim.gamma",
    ][:dimensions]
    space = {path: {"choice": [0.05 * (k + 1) for k in range(choices)]} for path in paths}
    return {**TINY_SWEEP, "search": {"searcher": {"name": "grid"}}, "space": space}


def test_a_grid_of_ten_to_the_eight_points_is_refused_without_listing_them(
    tmp_path: Path,
) -> None:
    done, seconds = validate_subprocess(write_space(tmp_path, grid_of(8, 10)))
    assert_refused(
        done.returncode,
        done.stderr.splitlines(),
        "space: the grid has 100,000,000 points (10 x 10 x 10 x 10 x 10 x 10 x 10 x 10 choices); "
        "at most 10,000 are allowed",
    )
    assert seconds < 30


def test_a_grid_within_the_limit_is_listed(tmp_path: Path) -> None:
    spec = load_sweep_spec(write_space(tmp_path, grid_of(2, 10)))
    assert len(spec.points) == 100 == spec.total_trials


def test_a_choice_of_thousands_of_values_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = {"train.lr": {"choice": [1.0e-3] * 5000}}
    code, lines = validate(capsys, write_space(tmp_path, {**TINY_SWEEP, "space": space}))
    assert_refused(code, lines, "space.train.lr.choice: 5,000 values; at most 1,000", most=2)


@pytest.mark.parametrize("name", ["../../escape", "/tmp/elsewhere", "a/b", "..", "x\n"])
def test_a_sweep_name_cannot_leave_the_storage_folder(tmp_path: Path, name: str) -> None:
    spec = load_sweep_spec(write_space(tmp_path, TINY_SWEEP))
    with pytest.raises(ConfigError, match=r"^--name: must be a name of letters, digits"):
        new_folder(spec, str(tmp_path / "runs"), name)
    assert new_folder(spec, str(tmp_path / "runs"), "ok-1.2_3") == f"{tmp_path}/runs/ok-1.2_3"


def test_run_with_an_escaping_name_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = tmp_path / "inside" / "runs"
    path = write_space(tmp_path, MISSING_DATA)
    code = main(["run", str(path), "--storage", str(storage), "--name", "../../escape"])
    lines = capsys.readouterr().err.splitlines()
    assert_refused(code, lines, "--name: must be a name of letters, digits", "'../../escape'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]


def test_an_experiment_name_with_a_newline_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = validate(capsys, write_space(tmp_path, {**TINY_SWEEP, "experiment": "a\n"}))
    assert_refused(code, lines, "experiment: must be a name of letters")


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    """An image root with one image per split, and a secret image next to (outside) it."""
    root = tmp_path / "images"
    root.mkdir()
    pixels = np.zeros((4, 4, 3), dtype=np.uint8)
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(pixels).save(root / name)
    Image.fromarray(pixels).save(tmp_path / "secret.png")
    return root, tmp_path / "secret.png"


@pytest.mark.parametrize("escape", ["../secret.png", "ABSOLUTE", "sub/../../secret.png"])
def test_a_csv_path_outside_the_image_root_is_refused_with_its_row(
    images: tuple[Path, Path], escape: str
) -> None:
    root, secret = images
    escape = str(secret) if escape == "ABSOLUTE" else escape
    csv = root / "split.csv"
    rows = ["path,age,split", "a.png,1,train", "b.png,2,val", f"{escape},3,test", "c.png,4,test"]
    csv.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as error:
        load_csv_images(csv, root, image_size=4)
    message = str(error.value)
    assert message.startswith(f"{csv}: row 4, column 'path': '{escape}' is outside the image")
    assert "\n" not in message


def test_csv_paths_inside_the_image_root_load(images: tuple[Path, Path]) -> None:
    root, _ = images
    (root / "sub").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(root / "sub" / "d.png")
    csv = root / "split.csv"
    rows = ["path,age,split", "a.png,1,train", "./b.png,2,val", "sub/../c.png,3,test"]
    csv.write_text("\n".join([*rows, "sub/d.png,4,test"]) + "\n")
    bundle = load_csv_images(csv, root, image_size=4)
    assert len(bundle.test.targets) == 2
