"""Building IMDB-WIKI-DIR and AgeDB-DIR CSVs from tiny raw inputs written by the tests."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from dirsearch.data.prepare import prepare_agedb, prepare_imdb_wiki
from dirsearch.errors import DataError

NAN = float("nan")


def datenum(day: date, fraction: float = 0.0) -> float:
    """MATLAB serial date number of ``day`` (MATLAB day 367 is 0001-01-01)."""
    return day.toordinal() + 366 + fraction


def write_mat(path: Path, name: str, rows: list[tuple[float, float, str, float, float]]) -> None:
    """A metadata file laid out like imdb.mat / wiki.mat: a 1x1 struct of 1xN fields."""
    dob, taken, full_path, face, second = zip(*rows, strict=True)
    struct = {
        "dob": np.array([dob], dtype=np.float64),
        "photo_taken": np.array([taken], dtype=np.float64),
        "full_path": np.array([full_path], dtype=object),
        "face_score": np.array([face], dtype=np.float64),
        "second_face_score": np.array([second], dtype=np.float64),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {name: struct})


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_matlab_date_numbers_convert_like_matlab() -> None:
    # datenum(2000, 1, 1) is 730486 in MATLAB.
    assert datenum(date(2000, 1, 1)) == 730486
    assert date.fromordinal(730486 - 366) == date(2000, 1, 1)


def test_test_mat_has_the_real_files_layout(tmp_path: Path) -> None:
    path = tmp_path / "imdb.mat"
    write_mat(path, "imdb", [(730486.0, 2010, "01/a.jpg", 2.0, NAN)] * 2)
    struct = scipy.io.loadmat(path)["imdb"]
    assert struct.shape == (1, 1)
    assert struct.dtype.names == (
        "dob",
        "photo_taken",
        "full_path",
        "face_score",
        "second_face_score",
    )
    full_path = struct[0, 0]["full_path"]
    assert full_path.shape == (1, 2)
    assert full_path[0, 0].tolist() == ["01/a.jpg"]  # a cell of char arrays
    assert struct[0, 0]["dob"].shape == (1, 2)


IMDB_ROWS = [
    # dob, photo_taken, full_path, face_score, second_face_score  -> expected age or None
    (datenum(date(1980, 3, 15)), 2010, "01/spring.jpg", 1.5, NAN),  # 30
    (datenum(date(1980, 6, 30), 0.75), 2010, "01/june.jpg", 3.0, NAN),  # 30
    (datenum(date(1980, 7, 1)), 2010, "02/july.jpg", 1.0, NAN),  # 29: born July or later
    (datenum(date(1980, 12, 31)), 2010, "02/december.jpg", 4.0, NAN),  # 29
    (datenum(date(2000, 1, 1)), 2000, "03/baby.jpg", 2.0, NAN),  # 0
    (datenum(date(1810, 2, 1)), 2010, "03/old.jpg", 2.0, NAN),  # 200 (kept)
    (datenum(date(1809, 2, 1)), 2010, "03/too_old.jpg", 2.0, NAN),  # 201 (dropped)
    (datenum(date(2001, 1, 1)), 2000, "04/unborn.jpg", 2.0, NAN),  # -1 (dropped)
    (datenum(date(1980, 1, 1)), 2010, "04/no_face.jpg", -np.inf, NAN),  # dropped
    (datenum(date(1980, 1, 1)), 2010, "04/weak_face.jpg", 0.99, NAN),  # dropped
    (datenum(date(1980, 1, 1)), 2010, "04/two_faces.jpg", 3.0, 0.5),  # dropped
    (NAN, 2010, "05/no_dob.jpg", 3.0, NAN),  # dropped
    (0.0, 2010, "05/bad_dob.jpg", 3.0, NAN),  # dropped: before 0001-01-01
    (datenum(date(1980, 1, 1)), NAN, "05/no_year.jpg", 3.0, NAN),  # dropped
]
IMDB_EXPECTED = {
    "imdb_crop/01/spring.jpg": 30,
    "imdb_crop/01/june.jpg": 30,
    "imdb_crop/02/july.jpg": 29,
    "imdb_crop/02/december.jpg": 29,
    "imdb_crop/03/baby.jpg": 0,
    "imdb_crop/03/old.jpg": 200,
}


def test_imdb_ages_filters_and_paths(tmp_path: Path) -> None:
    write_mat(tmp_path / "raw" / "imdb_crop" / "imdb.mat", "imdb", IMDB_ROWS)
    out = tmp_path / "imdb_wiki.csv"
    counts = prepare_imdb_wiki(tmp_path / "raw", out)
    rows = read_rows(out)
    assert list(rows[0]) == ["path", "age", "split"]
    assert {row["path"]: int(row["age"]) for row in rows} == IMDB_EXPECTED
    assert [row["path"] for row in rows] == list(IMDB_EXPECTED)  # metadata order kept
    # Ages 30 and 29 have two images each, 0 and 200 one: too few to hold any out.
    assert {row["split"] for row in rows} == {"train"}
    assert counts == {"train": 6, "val": 0, "test": 0}


def test_imdb_and_wiki_combine_and_cap_is_150(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_mat(raw / "imdb_crop" / "imdb.mat", "imdb", IMDB_ROWS)
    wiki_rows = [
        (datenum(date(1950, 2, 2)), 1990, f"{i % 100:02d}/w{i}.jpg", 1.2, NAN) for i in range(500)
    ]
    write_mat(raw / "wiki_crop" / "wiki.mat", "wiki", wiki_rows)
    out = tmp_path / "out.csv"
    counts = prepare_imdb_wiki(raw, out, seed=7)
    rows = read_rows(out)
    wiki = [row for row in rows if row["path"].startswith("wiki_crop/")]
    assert len(rows) == 506
    assert rows[6]["path"] == "wiki_crop/00/w0.jpg"
    assert {row["age"] for row in wiki} == {"40"}
    assert [sum(row["split"] == s for row in wiki) for s in ("train", "val", "test")] == [
        200,
        150,
        150,
    ]
    assert counts == {"train": 206, "val": 150, "test": 150}
    # Deterministic for a seed, different for another.
    first = out.read_bytes()
    prepare_imdb_wiki(raw, out, seed=7)
    assert out.read_bytes() == first
    prepare_imdb_wiki(raw, out, seed=8)
    assert out.read_bytes() != first


def test_wiki_alone_is_enough(tmp_path: Path) -> None:
    write_mat(tmp_path / "wiki_crop" / "wiki.mat", "wiki", IMDB_ROWS[:1])
    out = tmp_path / "out.csv"
    assert prepare_imdb_wiki(tmp_path, out) == {"train": 1, "val": 0, "test": 0}
    assert read_rows(out) == [{"path": "wiki_crop/01/spring.jpg", "age": "30", "split": "train"}]


def test_imdb_wiki_errors(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    with pytest.raises(DataError, match="raw data folder not found"):
        prepare_imdb_wiki(tmp_path / "nowhere", out)
    with pytest.raises(
        DataError, match=r"found neither imdb_crop/imdb\.mat nor wiki_crop/wiki\.mat"
    ):
        prepare_imdb_wiki(tmp_path, out)
    mat = tmp_path / "imdb_crop" / "imdb.mat"
    mat.parent.mkdir()
    mat.write_text("not a mat file")
    with pytest.raises(DataError, match=r"imdb\.mat: not a readable MATLAB v5 file"):
        prepare_imdb_wiki(tmp_path, out)
    scipy.io.savemat(mat, {"wiki": {"dob": np.ones((1, 1))}})
    with pytest.raises(DataError, match="no MATLAB struct named 'imdb'"):
        prepare_imdb_wiki(tmp_path, out)
    scipy.io.savemat(mat, {"imdb": {"dob": np.ones((1, 1))}})
    with pytest.raises(DataError, match="struct 'imdb' has no field 'photo_taken'"):
        prepare_imdb_wiki(tmp_path, out)
    write_mat(mat, "imdb", IMDB_ROWS[8:])  # every row filtered out
    with pytest.raises(DataError, match="no image has a single face"):
        prepare_imdb_wiki(tmp_path, out)
    assert not out.exists()


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def test_agedb_ages_from_names(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    touch(raw / "AgeDB" / "0_MariaCallas_35_f.jpg")
    touch(raw / "AgeDB" / "12_Jean_Paul_Sartre_60_m.jpg")  # name with underscores
    touch(raw / "AgeDB" / "3_Someone_1_m.JPG")
    touch(raw / "AgeDB" / "._0_MariaCallas_35_f.jpg")  # macOS resource fork: ignored
    touch(raw / ".cache" / "7_Hidden_40_f.jpg")  # hidden folder: ignored
    touch(raw / "AgeDB" / "README.txt")  # not an image: ignored
    out = tmp_path / "agedb.csv"
    assert prepare_agedb(raw, out) == {"train": 3, "val": 0, "test": 0}
    assert read_rows(out) == [
        {"path": "AgeDB/0_MariaCallas_35_f.jpg", "age": "35", "split": "train"},
        {"path": "AgeDB/12_Jean_Paul_Sartre_60_m.jpg", "age": "60", "split": "train"},
        {"path": "AgeDB/3_Someone_1_m.JPG", "age": "1", "split": "train"},
    ]


def test_agedb_cap_is_30_and_split_is_deterministic(tmp_path: Path) -> None:
    for i in range(100):
        touch(tmp_path / "raw" / f"{i}_Person{i}_40_m.jpg")
    for i in range(100, 106):
        touch(tmp_path / "raw" / f"{i}_Person{i}_7_f.jpg")
    out = tmp_path / "agedb.csv"
    assert prepare_agedb(tmp_path / "raw", out, seed=1) == {"train": 42, "val": 32, "test": 32}
    rows = read_rows(out)
    age_40 = [row["split"] for row in rows if row["age"] == "40"]
    assert [age_40.count(s) for s in ("train", "val", "test")] == [40, 30, 30]
    first = out.read_bytes()
    prepare_agedb(tmp_path / "raw", out, seed=1)
    assert out.read_bytes() == first
    prepare_agedb(tmp_path / "raw", out, seed=2)
    assert out.read_bytes() != first


@pytest.mark.parametrize("name", ["photo.jpg", "1_Name_x_f.jpg", "1_35_f.jpg", "1_Old_201_m.jpg"])
def test_agedb_unparsable_name_is_named(tmp_path: Path, name: str) -> None:
    touch(tmp_path / "raw" / "0_Fine_30_m.jpg")
    touch(tmp_path / "raw" / name)
    out = tmp_path / "out.csv"
    with pytest.raises(DataError, match=rf"{name}: image name does not match ID_Name_AGE_GENDER"):
        prepare_agedb(tmp_path / "raw", out)
    assert not out.exists()


def test_agedb_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="raw data folder not found"):
        prepare_agedb(tmp_path / "nowhere", tmp_path / "out.csv")
    touch(tmp_path / "raw" / "notes.txt")
    with pytest.raises(DataError, match="no AgeDB images"):
        prepare_agedb(tmp_path / "raw", tmp_path / "out.csv")
