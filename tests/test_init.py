"""``dirsearch init``: the file it writes for a table or an image folder validates (with the
data's bins, shots, split and budget), the split it makes is the DIR rule's and never overwrites
the input, and every refusal is one line with exit code 2 and nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from init_helpers import lab_table, without_split, write_csv

from dirsearch.cli.main import main
from dirsearch.data.csv_table import count_per_split, parse_numbers, parse_splits, read_table
from dirsearch.data.splits import assign_splits
from dirsearch.imbalance.bin_rule import auto_binning
from dirsearch.imbalance.shot_rule import keep_regions, shot_thresholds
from dirsearch.sweep.spec_reader import load_sweep_spec
from dirsearch.sweep.starter import HELD_OUT_SHARE, held_out_cap

COUNTS = Path(__file__).resolve().parents[1] / "dirsearch" / "data" / "agedb_dir_split_counts.csv"


def init(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main(["init", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_table_without_split_gets_dir_splits_bins_and_shots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = lab_table(tmp_path / "data" / "lab.csv")
    before = data.read_text()
    out = tmp_path / "lab.yaml"
    code, stdout, stderr = init(capsys, data, "--target", "score", "--out", out)
    assert (code, stderr) == (0, "")
    assert data.read_text() == before  # never written over
    split = tmp_path / "data" / "lab_split.csv"
    table = read_table(split)
    targets = parse_numbers(table, "score")
    binning = auto_binning(targets)
    spec = load_sweep_spec(out)
    assert spec.fixed["data"]["csv"] == str(split)
    assert spec.fixed["data"]["features"] == ["x0", "x1"]  # the id column is left out
    bins = spec.fixed["data"]["bins"]
    assert (bins["start"], bins["width"], bins["count"]) == (
        binning.start,
        binning.width,
        binning.count,
    )
    assert binning.width < 0.02  # spread over [0, 1], not one width-1 bin
    # The DIR split rule with the chosen cap and the bins' width, as `dirsearch data split`.
    splits = parse_splits(table, "split")
    cap = held_out_cap(binning.histogram(targets))
    expected = assign_splits(targets, cap=cap, bin_width=binning.width, seed=0)
    assert list(splits) == list(expected)
    counts = count_per_split(splits)
    assert counts["val"] == counts["test"] > 0
    assert counts["val"] + counts["test"] <= HELD_OUT_SHARE * len(targets)
    many, few = shot_thresholds(binning.histogram(targets[splits == "train"]))
    assert spec.fixed["imbalance"]["shots"] == {"many": many, "few": few}
    assert spec.fixed["model"]["arch"] == "mlp"
    assert {d.path for d in spec.dimensions} >= {"imbalance.reweight", "imbalance.lds.sigma"}
    assert f"wrote {split}: balanced DIR splits" in stdout
    assert "M many-shot" in stdout and "f few-shot" in stdout
    assert stdout.rstrip().splitlines()[-1].startswith(f"next: dirsearch run {out}")


def test_an_image_folder_with_its_split_keeps_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "pictures"
    rows = []
    for index in range(150):
        (images / f"{index}.png").parent.mkdir(parents=True, exist_ok=True)
        (images / f"{index}.png").write_bytes(b"")  # only existence is checked here
        rows.append([f"{index}.png", 20 + index % 30, ["train", "train", "val", "test"][index % 4]])
    data = write_csv(tmp_path / "labels" / "faces.csv", ["path", "age", "split"], rows)
    out = tmp_path / "faces.yaml"
    code, stdout, stderr = init(capsys, data, "--target", "age", "--images", images, "--out", out)
    assert (code, stderr) == (0, "")
    assert not (tmp_path / "labels" / "faces_split.csv").exists()
    spec = load_sweep_spec(out)
    assert spec.fixed["data"]["name"] == "csv_images"
    assert spec.fixed["data"]["root"] == str(images)
    assert spec.fixed["data"]["bins"] == {"start": 20.0, "width": 1.0, "count": 30}
    assert spec.fixed["model"]["arch"] == "small_cnn" and spec.fixed["data"]["image_size"] == 32
    counts = count_per_split(parse_splits(read_table(data), "split"))
    shown = ", ".join(f"{name} {count}" for name, count in counts.items())
    assert f"splits from its split column: {shown}" in stdout


def test_the_rules_give_back_agedb_dirs_own_numbers() -> None:
    table = np.loadtxt(COUNTS, delimiter=",", skiprows=1, dtype=np.int64)  # age, train, val, test
    assert held_out_cap(table[:, 1:].sum(axis=1)) == 30
    assert shot_thresholds(table[:, 1]) == (100, 20)


def test_a_flat_histogram_still_has_few_and_many_shot_bins_to_validate() -> None:
    flat = np.array([14, 15, 30, 32, 31, 16, 14])
    assert shot_thresholds(flat) == (9, 2)  # no bin below 2: val/few/mae would be undefined
    assert keep_regions(9, 2, flat) == (15, 15)
    assert keep_regions(100, 20, np.array([0, 5, 300, 40])) == (100, 20)  # already fine


def numbers(tmp_path: Path, targets: list[object], name: str = "data.csv") -> Path:
    rows = [[index % 7, target] for index, target in enumerate(targets)]
    return write_csv(tmp_path / name, ["x", "y"], rows)


REFUSALS = {
    "missing target": (
        lambda tmp: numbers(tmp, list(range(200))),
        ["--target", "severity"],
        "no column 'severity'; available columns: x, y",
    ),
    "non-numeric target": (
        lambda tmp: numbers(tmp, [*range(150), "mild", *range(50)]),
        ["--target", "y"],
        "row 152, column 'y': 'mild' is not a number",
    ),
    "too few rows": (
        lambda tmp: numbers(tmp, list(range(40))),
        ["--target", "y"],
        "40 rows is too few; init needs at least 100",
    ),
    "constant target": (
        lambda tmp: numbers(tmp, [7.5] * 300),
        ["--target", "y"],
        "column 'y' is 7.5 in every row; a constant target leaves nothing to learn",
    ),
    "images without paths": (
        lambda tmp: numbers(tmp, list(range(200))),
        ["--target", "y", "--images", "."],
        "--images needs a 'path' column",
    ),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_each_refusal_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    make, arguments, message = REFUSALS[name]
    data = make(tmp_path)
    out = tmp_path / "out.yaml"
    code, stdout, stderr = init(capsys, data, *arguments, "--out", out)
    assert (code, stdout) == (2, "")
    (line,) = stderr.splitlines()
    assert line.startswith("dirsearch: error: ") and message in line, line
    assert sorted(path.name for path in tmp_path.iterdir()) == [data.name]


def test_an_existing_output_is_refused_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = lab_table(tmp_path / "lab.csv")
    out = tmp_path / "lab.yaml"
    out.write_text("# mine\n")
    code, _, stderr = init(capsys, data, "--target", "score", "--out", out)
    assert code == 2
    assert (
        stderr == f"dirsearch: error: {out}: --out already exists; pass --force to overwrite it\n"
    )
    assert out.read_text() == "# mine\n" and not (tmp_path / "lab_split.csv").exists()
    assert init(capsys, data, "--target", "score", "--out", out, "--force")[0] == 0
    other = tmp_path / "other.yaml"
    code, _, stderr = init(capsys, data, "--target", "score", "--out", other)
    assert code == 2  # the split CSV of the first run is not overwritten either
    assert stderr.endswith(
        "lab_split.csv: the split CSV already exists; pass --force to overwrite it\n"
    )
    assert not other.exists()


def test_a_missing_image_is_refused_with_its_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [[f"{i}.png", i % 40] for i in range(120)]
    data = write_csv(tmp_path / "faces.csv", ["path", "age"], rows)
    for i in range(119):
        (tmp_path / f"{i}.png").write_bytes(b"")
    code, _, stderr = init(capsys, data, "--target", "age", "--out", tmp_path / "f.yaml")
    assert code == 2
    assert stderr == (
        f"dirsearch: error: {data}: row 121, column 'path': image file {tmp_path / '119.png'} "
        f"not found\n"
    )


def test_too_few_rows_per_bin_for_a_split_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = numbers(tmp_path, list(range(100)))  # 100 width-1 bins of one row each
    code, _, stderr = init(capsys, data, "--target", "y", "--out", tmp_path / "f.yaml")
    assert code == 2
    assert "leave the val split empty (a bin needs 3 rows to lend one to val and test)" in stderr


def test_a_split_column_from_the_synthetic_writer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dirsearch.data.synthetic import write_synthetic

    written = write_synthetic(tmp_path / "synth", kind="tabular", scale=0.05)
    bare = without_split(written, tmp_path / "synth" / "bare.csv")
    for data, made in ((written, False), (bare, True)):
        out = tmp_path / f"{data.stem}.yaml"
        code, stdout, _ = init(capsys, data, "--target", "age", "--out", out)
        assert code == 0
        spec = load_sweep_spec(out)
        assert spec.fixed["data"]["bins"]["width"] == 1.0  # integer ages: width-1 bins
        assert ("balanced DIR splits" in stdout) == made
