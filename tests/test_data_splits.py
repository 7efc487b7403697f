"""Balanced DIR splits (ALGORITHMS.md section 6) and the atomic CSV writing they rely on."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from dirsearch.data import splits as splits_module
from dirsearch.data.csv_table import write_table
from dirsearch.data.splits import assign_splits, split_counts, split_csv
from dirsearch.errors import DataError

AGEDB_COUNTS = Path(splits_module.__file__).with_name("agedb_dir_split_counts.csv")


def _per_bin_counts(bins: np.ndarray, splits: np.ndarray) -> dict[int, tuple[int, int, int]]:
    return {
        int(b): tuple(int(np.sum((bins == b) & (splits == s))) for s in ("train", "val", "test"))
        for b in np.unique(bins)
    }


def _read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


@pytest.mark.parametrize(
    ("n", "cap", "expected"),
    [
        (0, 30, (0, 0, 0)),
        (1, 30, (1, 0, 0)),
        (2, 30, (2, 0, 0)),
        (3, 30, (1, 1, 1)),
        (5, 30, (3, 1, 1)),
        (20, 30, (8, 6, 6)),
        (90, 30, (30, 30, 30)),
        (91, 30, (31, 30, 30)),
        (1000, 30, (940, 30, 30)),
        (1000, 150, (700, 150, 150)),
        (10, 0, (10, 0, 0)),
    ],
)
def test_split_counts_hand_computed(n: int, cap: int, expected: tuple[int, int, int]) -> None:
    assert split_counts(n, cap) == expected


def test_split_counts_rejects_negative() -> None:
    with pytest.raises(ValueError, match="cap"):
        split_counts(5, -1)


def test_rule_reproduces_published_agedb_dir_counts_exactly() -> None:
    with AGEDB_COUNTS.open(newline="") as handle:
        published = {
            int(row["age"]): (int(row["train"]), int(row["val"]), int(row["test"]))
            for row in csv.DictReader(handle)
        }
    totals = {age: sum(counts) for age, counts in published.items()}
    ages = np.repeat(np.array(list(totals)), list(totals.values())).astype(np.float64)
    splits = assign_splits(ages, cap=30, seed=0)
    got = _per_bin_counts(ages.astype(np.int64), splits)
    expected = {age: counts for age, counts in published.items() if totals[age] > 0}
    assert got == expected
    assert [int(np.sum(splits == s)) for s in ("train", "val", "test")] == [12208, 2140, 2140]


def test_seeded_shuffle_is_deterministic_and_depends_on_seed() -> None:
    targets = np.repeat([10.0, 11.5, 40.0], [60, 9, 200])
    first = assign_splits(targets, seed=3)
    assert np.array_equal(first, assign_splits(targets, seed=3))
    assert not np.array_equal(first, assign_splits(targets, seed=4))
    # Counts never depend on the seed.
    bins = np.floor(targets).astype(int)
    assert _per_bin_counts(bins, first) == _per_bin_counts(bins, assign_splits(targets, seed=4))
    assert _per_bin_counts(bins, first) == {10: (20, 20, 20), 11: (3, 3, 3), 40: (140, 30, 30)}


def test_no_targets_no_splits() -> None:
    assert assign_splits(np.array([])).tolist() == []


def test_a_bins_choice_does_not_depend_on_other_bins() -> None:
    age_20 = np.full(40, 20.0)
    alone = assign_splits(age_20, seed=1)
    with_others = assign_splits(np.concatenate([np.full(25, 70.0), age_20, [3.0]]), seed=1)
    assert np.array_equal(with_others[25:65], alone)


def test_bin_width_with_edge_tolerance_and_negative_targets() -> None:
    # Width 0.1: 0.3 belongs to bin 3 (0.3 / 0.1 is 2.9999999999999996 in floating point).
    targets = np.array([0.3, 0.31, 0.39, 0.29, -0.05, -0.01, -0.1])
    splits = assign_splits(targets, bin_width=0.1)
    bins = np.array([3, 3, 3, 2, -1, -1, -1])
    assert _per_bin_counts(bins, splits) == {-1: (1, 1, 1), 2: (1, 0, 0), 3: (1, 1, 1)}


@pytest.mark.parametrize(
    ("targets", "kwargs", "message"),
    [
        (np.array([1.0, np.nan]), {}, "finite"),
        (np.ones((2, 2)), {}, "one-dimensional"),
        (np.ones(3), {"bin_width": 0.0}, "bin_width"),
        (np.ones(3), {"bin_width": float("inf")}, "bin_width"),
        (np.ones(3), {"seed": -1}, "seed"),
        (np.ones(3), {"cap": -1}, "cap"),
    ],
)
def test_assign_splits_rejects_bad_arguments(
    targets: np.ndarray, kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        assign_splits(targets, **kwargs)


def test_split_csv_keeps_columns_and_appends_split(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("name,age,note\n" + "".join(f"p{i},{30 + i % 2},x{i}\n" for i in range(8)))
    out = tmp_path / "sub" / "out.csv"
    counts = split_csv(source, out, target="age", cap=30, seed=0)
    rows = _read_csv(out)
    assert rows[0] == ["name", "age", "note", "split"]
    assert [row[:3] for row in rows[1:]] == [row for row in _read_csv(source)[1:]]
    # Ages 30 and 31 have 4 rows each: (2, 1, 1) per age.
    assert counts == {"train": 4, "val": 2, "test": 2}
    splits = np.array([row[3] for row in rows[1:]])
    ages = np.array([int(row[1]) for row in rows[1:]])
    assert _per_bin_counts(ages, splits) == {30: (2, 1, 1), 31: (2, 1, 1)}
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.csv"]


def test_split_csv_overwrites_existing_split_column_in_place(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("split,age\n" + "old,5\n" * 3)
    assert split_csv(path, path, target="age") == {"train": 1, "val": 1, "test": 1}
    rows = _read_csv(path)
    assert rows[0] == ["split", "age"]
    assert sorted(row[0] for row in rows[1:]) == ["test", "train", "val"]


def test_split_csv_errors_leave_existing_output_untouched(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("age,x\n1,2\nold,3\n")
    out = tmp_path / "out.csv"
    out.write_text("previous\n")
    with pytest.raises(DataError, match=r"in\.csv: row 3, column 'age': 'old' is not a number"):
        split_csv(source, out, target="age")
    with pytest.raises(DataError, match="no column 'years'; available columns: age, x"):
        split_csv(source, out, target="years")
    with pytest.raises(DataError, match="CSV file not found"):
        split_csv(tmp_path / "missing.csv", out, target="age")
    with pytest.raises(DataError, match="target cannot be the 'split' column"):
        split_csv(source, out, target="split")
    (tmp_path / "header_only.csv").write_text("age\n")
    with pytest.raises(DataError, match="no data rows"):
        split_csv(tmp_path / "header_only.csv", out, target="age")
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["header_only.csv", "in.csv", "out.csv"]


def test_write_table_removes_temporary_file_when_rows_fail(tmp_path: Path) -> None:
    def rows() -> object:
        yield ["a", 1]
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError, match="generator failed"):
        write_table(tmp_path / "out.csv", ["name", "value"], rows())
    assert list(tmp_path.iterdir()) == []


def test_write_table_reports_unwritable_target(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(DataError, match="taken: cannot write the CSV"):
        write_table(tmp_path / "taken", ["a"], [[1]])
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
