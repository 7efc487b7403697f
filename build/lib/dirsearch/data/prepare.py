"""Build the IMDB-WIKI-DIR and AgeDB-DIR CSVs (``path,age,split``) from the raw public downloads.

The paper's split files can be used as they are; these builders exist so a user holding only the
original archives gets the same kind of table, made by the documented rule (ages from the
metadata, balanced val/test with ``cap`` per age) rather than by an opaque download. Paths are
relative to ``raw``, which then serves as the image root of the ``csv_images`` dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import scipy.io

from dirsearch.data.csv_table import count_per_split, write_table
from dirsearch.data.splits import assign_splits
from dirsearch.errors import DataError

IMDB_WIKI_CAP = 150
AGEDB_CAP = 30
MAX_AGE = 200
MIN_FACE_SCORE = 1.0
IMDB_WIKI_SOURCES: tuple[tuple[str, str], ...] = (("imdb_crop", "imdb"), ("wiki_crop", "wiki"))
"""(folder under raw, MATLAB struct name); the metadata file is ``folder/name.mat``."""
IMDB_WIKI_FIELDS = ("dob", "photo_taken", "full_path", "face_score", "second_face_score")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
OUTPUT_HEADER = ("path", "age", "split")
_UNIX_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def prepare_imdb_wiki(raw: Path, out_csv: Path, *, seed: int = 0) -> dict[str, int]:
    """IMDB-WIKI-DIR from ``raw/imdb_crop/imdb.mat`` and/or ``raw/wiki_crop/wiki.mat``.

    Keeps single, confidently detected faces (face_score >= 1, no second face) with an age in
    0..200; val/test hold up to 150 images per age. Returns the number of rows per split.
    """
    raw = _require_folder(raw)
    sources = [
        (folder, name)
        for folder, name in IMDB_WIKI_SOURCES
        if (raw / folder / f"{name}.mat").is_file()
    ]
    if not sources:
        expected = " nor ".join(f"{folder}/{name}.mat" for folder, name in IMDB_WIKI_SOURCES)
        raise DataError(f"{raw}: found neither {expected}")
    paths: list[str] = []
    ages: list[np.ndarray] = []
    for folder, name in sources:
        source_paths, source_ages = _read_imdb_wiki_mat(raw / folder / f"{name}.mat", name)
        paths.extend(f"{folder}/{path}" for path in source_paths)
        ages.append(source_ages)
    if not paths:
        raise DataError(
            f"{raw}: no image has a single face with face_score >= {MIN_FACE_SCORE:g} "
            f"and an age in 0..{MAX_AGE}"
        )
    return _write_dir_csv(out_csv, paths, np.concatenate(ages), cap=IMDB_WIKI_CAP, seed=seed)


def prepare_agedb(raw: Path, out_csv: Path, *, seed: int = 0) -> dict[str, int]:
    """AgeDB-DIR from the images named ``ID_Name_AGE_GENDER.jpg`` anywhere under ``raw``.

    Only the names are read (the age is in them); val/test hold up to 30 images per age.
    Hidden files (such as the ``._*`` copies macOS puts into archives) are ignored.
    """
    raw = _require_folder(raw)
    images = _image_files(raw)
    if not images:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise DataError(f"{raw}: no AgeDB images ({suffixes}) found")
    ages = np.array([_agedb_age(raw / image) for image in images], dtype=np.int64)
    return _write_dir_csv(out_csv, images, ages, cap=AGEDB_CAP, seed=seed)


def _image_files(raw: Path) -> list[str]:
    """Sorted (so the split is reproducible) relative paths of the visible images under raw."""
    found: list[str] = []
    for path in raw.rglob("*"):
        relative = path.relative_to(raw)
        hidden = any(part.startswith(".") for part in relative.parts)
        if path.suffix.lower() in IMAGE_SUFFIXES and not hidden and path.is_file():
            found.append(relative.as_posix())
    return sorted(found)


def _require_folder(raw: Path) -> Path:
    raw = Path(raw)
    if not raw.is_dir():
        raise DataError(f"{raw}: raw data folder not found")
    return raw


def _write_dir_csv(
    out_csv: Path, paths: Sequence[str], ages: np.ndarray, *, cap: int, seed: int
) -> dict[str, int]:
    """Assign balanced splits over 1-year bins and write ``path,age,split``."""
    splits = assign_splits(ages, cap=cap, bin_width=1.0, seed=seed)
    rows = zip(paths, ages.tolist(), splits, strict=True)
    write_table(out_csv, OUTPUT_HEADER, rows)
    return count_per_split(splits)


def _agedb_age(image: Path) -> int:
    """The AGE field of ``ID_Name_AGE_GENDER``; the name itself may contain underscores."""
    fields = image.stem.split("_")
    age = fields[-2] if len(fields) >= 4 else ""
    if not (age.isascii() and age.isdigit() and int(age) <= MAX_AGE):
        raise DataError(
            f"{image}: image name does not match ID_Name_AGE_GENDER with AGE in 0..{MAX_AGE} "
            "(e.g. 0_MariaCallas_35_f.jpg)"
        )
    return int(age)


def _read_imdb_wiki_mat(path: Path, name: str) -> tuple[list[str], np.ndarray]:
    """Relative image paths and ages of the rows of one metadata file that pass the filters."""
    fields = _load_struct(path, name)
    year, month, valid_dob = _birth_year_month(fields["dob"].astype(np.float64))
    taken = fields["photo_taken"].astype(np.float64)
    face = fields["face_score"].astype(np.float64)
    second_face = fields["second_face_score"].astype(np.float64)
    valid = valid_dob & np.isfinite(taken)
    # A photo counts as taken mid-year: people born in July or later have not had their
    # birthday yet.
    ages = np.where(valid, taken - year - (month >= 7), -1)
    keep = (
        valid
        & np.isfinite(face)
        & (face >= MIN_FACE_SCORE)
        & np.isnan(second_face)
        & (ages >= 0)
        & (ages <= MAX_AGE)
    )
    full_paths = fields["full_path"]
    paths = [_cell_text(path, full_paths[index]) for index in np.flatnonzero(keep)]
    return paths, ages[keep].astype(np.int64)


def _load_struct(path: Path, name: str) -> dict[str, np.ndarray]:
    """The IMDB-WIKI fields of struct ``name``, each a 1-D array with one entry per image."""
    try:
        contents = scipy.io.loadmat(
            path, variable_names=[name], squeeze_me=True, struct_as_record=False
        )
    except (scipy.io.matlab.MatReadError, ValueError, NotImplementedError, OSError) as error:
        raise DataError(f"{path}: not a readable MATLAB v5 file ({error})") from error
    if name not in contents:
        raise DataError(f"{path}: no MATLAB struct named '{name}'")
    struct = contents[name]
    fields: dict[str, np.ndarray] = {}
    for field in IMDB_WIKI_FIELDS:
        if field not in getattr(struct, "_fieldnames", ()):
            raise DataError(f"{path}: struct '{name}' has no field '{field}'")
        fields[field] = np.atleast_1d(getattr(struct, field)).reshape(-1)
    lengths = {field: len(values) for field, values in fields.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{path}: struct '{name}' fields differ in length: {lengths}")
    return fields


def _birth_year_month(dob: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month and validity of MATLAB serial date numbers.

    MATLAB day 367 is 0001-01-01, Python ordinal 1, so a date number ``d`` is the Python date
    ``date.fromordinal(int(d) - 366)``; computed here for all rows at once with datetime64.
    Values that are not finite or fall outside Python's date range are marked invalid.
    """
    finite = np.isfinite(dob)
    ordinal = np.where(finite, np.trunc(dob), 0) - 366
    valid = finite & (ordinal >= 1) & (ordinal <= date.max.toordinal())
    days = np.where(valid, ordinal, _UNIX_EPOCH_ORDINAL).astype(np.int64) - _UNIX_EPOCH_ORDINAL
    when = days.astype("datetime64[D]")
    year = when.astype("datetime64[Y]").astype(np.int64) + 1970
    month = when.astype("datetime64[M]").astype(np.int64) % 12 + 1
    return year, month, valid


def _cell_text(path: Path, value: object) -> str:
    """One ``full_path`` entry as text (a MATLAB cell of char arrays loads as ``str``)."""
    if not isinstance(value, str) or not value:
        raise DataError(f"{path}: full_path holds {value!r}; expected a relative image path")
    return value
