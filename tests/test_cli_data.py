"""``dirsearch data split|prepare|synth`` through the real command-line entry point."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from dirsearch.cli.main import main
from dirsearch.data.prepare import AGEDB_CAP, IMDB_WIKI_CAP
from dirsearch.data.tabular import load_tabular


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def labelled_csv(tmp_path: Path) -> Path:
    path = tmp_path / "labels.csv"
    rows = "".join(f"img{i}.png,{20 + i % 2}\n" for i in range(12))
    path.write_text("file,age\n" + rows)
    return path


def test_split_writes_csv_and_prints_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "split.csv"
    code, stdout, stderr = run(
        capsys, "data", "split", labelled_csv(tmp_path), "--target", "age", "--out", out
    )
    assert (code, stderr) == (0, "")
    # Ages 20 and 21 have 6 rows each: (2, 2, 2) per age.
    assert stdout == f"wrote {out}: 12 rows (train 4, val 4, test 4)\n"
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["file"] for row in rows] == [f"img{i}.png" for i in range(12)]
    assert sorted(row["split"] for row in rows) == ["test"] * 4 + ["train"] * 4 + ["val"] * 4


def test_split_options_reach_the_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "split.csv"
    code, stdout, _ = run(
        capsys,
        "data",
        "split",
        labelled_csv(tmp_path),
        "--target",
        "age",
        "--out",
        out,
        "--cap",
        "1",
        "--bin-width",
        "2",
        "--seed",
        "5",
    )
    # One bin (ages 20 and 21 at width 2) of 12 rows, cap 1.
    assert (code, stdout) == (0, f"wrote {out}: 12 rows (train 10, val 1, test 1)\n")


def test_prepare_agedb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "AgeDB"
    raw.mkdir()
    for i in range(7):
        (raw / f"{i}_Some_Body_{30 + i // 4}_m.jpg").touch()
    out = tmp_path / "agedb.csv"
    code, stdout, _ = run(capsys, "data", "prepare", "agedb", "--raw", raw, "--out", out)
    # Age 30: 4 images (2, 1, 1); age 31: 3 images (1, 1, 1).
    assert (code, stdout) == (0, f"wrote {out}: 7 rows (train 3, val 2, test 2)\n")
    assert out.read_text().splitlines()[0] == "path,age,split"


def test_synth_tabular_loads_as_a_tabular_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "synth"
    code, stdout, _ = run(
        capsys, "data", "synth", "--out", out_dir, "--kind", "tabular", "--scale", "0.05"
    )
    written = out_dir / "synthetic.csv"
    assert code == 0
    assert stdout.startswith(f"wrote {written}: ")
    bundle = load_tabular(written, target="age")
    train, val, test = (len(split.targets) for split in (bundle.train, bundle.val, bundle.test))
    summary = f"{train + val + test} rows (train {train}, val {val}, test {test})"
    assert stdout == f"wrote {written}: {summary}\n"


def test_synth_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "synth"
    code, stdout, _ = run(
        capsys, "data", "synth", "--out", out_dir, "--scale", "0.02", "--image-size", "8"
    )
    assert code == 0
    with (out_dir / "synthetic.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert stdout.startswith(f"wrote {out_dir / 'synthetic.csv'}: {len(rows)} rows (train ")
    assert all((out_dir / row["path"]).is_file() for row in rows[:5])


@pytest.mark.parametrize(
    ("table", "target", "message"),
    [
        (None, "age", "labels.csv: CSV file not found"),
        ("file,age\na.png,3\n", "years", "no column 'years'; available columns: file, age"),
        ("file,age\na.png,3\nb.png,?\n", "age", "row 3, column 'age': '?' is not a number"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_output(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    table: str | None,
    target: str,
    message: str,
) -> None:
    source = tmp_path / "labels.csv"
    if table is not None:
        source.write_text(table)
    out = tmp_path / "out" / "split.csv"
    code, stdout, stderr = run(capsys, "data", "split", source, "--target", target, "--out", out)
    assert (code, stdout) == (2, "")
    assert stderr.startswith("dirsearch: error: ") and stderr.count("\n") == 1
    assert message in stderr
    assert not out.parent.exists()


def test_prepare_missing_raw_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.csv"
    code, _, stderr = run(
        capsys, "data", "prepare", "imdb-wiki", "--raw", tmp_path / "raw", "--out", out
    )
    assert code == 2
    assert stderr == f"dirsearch: error: {tmp_path / 'raw'}: raw data folder not found\n"
    assert not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "split", "in.csv", "--target", "age", "--out", "o.csv", "--cap", "-1"],
        ["data", "split", "in.csv", "--target", "age", "--out", "o.csv", "--bin-width", "0"],
        ["data", "split", "in.csv", "--out", "o.csv"],
        ["data", "prepare", "utkface", "--raw", "r", "--out", "o.csv"],
        ["data", "synth", "--out", "d", "--kind", "audio"],
        ["data"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: dirsearch data" in capsys.readouterr().err


def test_console_entry_point_in_a_subprocess(tmp_path: Path) -> None:
    source = tmp_path / "labels.csv"
    source.write_text("file,age\na.png,3\nb.png,3\nc.png,three\n")
    out = tmp_path / "split.csv"
    command = [sys.executable, "-m", "dirsearch", "data", "split", str(source)]
    result = subprocess.run(
        [*command, "--target", "age", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"dirsearch: error: {source}: row 4, column 'age': 'three' is not a number\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv"]


def test_prepare_help_states_the_caps_prepare_uses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["data", "prepare", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"face_score >= 1, val/test capped at {IMDB_WIKI_CAP} per age" in help_text
    assert f"ID_Name_AGE_GENDER.jpg, val/test capped at {AGEDB_CAP} per age" in help_text


def test_parsing_imports_no_heavy_modules() -> None:
    # Usage errors and --help must not wait for torch/scipy to import.
    code = (
        "import argparse, sys; from dirsearch.cli.data_verbs import add_data_commands; "
        "parser = argparse.ArgumentParser(); add_data_commands(parser.add_subparsers()); "
        "parser.parse_args(['data', 'split', 'a.csv', '--target', 't', '--out', 'b.csv']); "
        "print(sorted({'torch', 'scipy', 'numpy'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout == "[]\n"


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == "dirsearch 0.1.0"
