"""A user's CSV as ``dirsearch init`` sees it: image or tabular data, its numeric target, its
feature columns and its split column, with every refusal a one-line DataError.

Image data is a CSV with a ``path`` column (or any CSV given with ``--images ROOT``): paths are
relative to the image root, by default the CSV's folder. Everything else is tabular: the feature
columns are the numeric ones besides the target and the split. Only the table is read (numpy,
no torch), and every image file's existence is checked, so a bad row is found now rather than by
the first trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dirsearch.data.csv_table import (
    Table,
    parse_numbers,
    parse_splits,
    read_table,
    require_columns,
    require_rows,
)
from dirsearch.data.splits import SPLIT_COLUMN
from dirsearch.errors import DataError

PATH_COLUMN = "path"
MIN_ROWS = 100
"""Fewer rows cannot give a train, a val and a test split spread over several target bins."""


@dataclass(frozen=True)
class OwnData:
    """What init needs to know about the CSV."""

    csv: Path
    kind: str
    """``csv_images`` or ``tabular`` (the dataset names of the trial config)."""
    target: str
    targets: np.ndarray
    """The target of every row, in file order (float64)."""
    splits: np.ndarray | None
    """The split of every row when the CSV has a split column, else None."""
    root: Path | None = None
    """csv_images: the image folder the paths are relative to (None: the CSV's folder)."""
    features: tuple[str, ...] = ()
    """tabular: the numeric feature columns."""
    skipped: tuple[str, ...] = ()
    """tabular: columns left out because they hold something other than numbers."""


def read_own_data(csv: Path, target: str, images: Path | None = None) -> OwnData:
    """Read and check ``csv``; raises DataError (one line) for what init refuses."""
    csv = Path(csv)
    table = read_table(csv)
    require_rows(table)
    if target == SPLIT_COLUMN:
        raise DataError(f"{csv}: the target cannot be the '{SPLIT_COLUMN}' column")
    require_columns(table, [target])
    targets = parse_numbers(table, target)
    if len(targets) < MIN_ROWS:
        raise DataError(
            f"{csv}: {len(targets)} rows is too few; init needs at least {MIN_ROWS} to make "
            f"train, val and test splits over several target bins"
        )
    splits = parse_splits(table, SPLIT_COLUMN) if SPLIT_COLUMN in table.header else None
    _refuse_constant(csv, target, targets, "")
    if splits is not None:
        _refuse_constant(csv, target, targets[splits == "train"], " in the train split")
    if images is not None or PATH_COLUMN in table.header:
        root = Path(images) if images is not None else None
        _check_images(table, root if root is not None else csv.parent, images is not None)
        return OwnData(csv, "csv_images", target, targets, splits, root=root)
    features, skipped = _numeric_features(table, target)
    return OwnData(csv, "tabular", target, targets, splits, features=features, skipped=skipped)


def _refuse_constant(csv: Path, target: str, values: np.ndarray, where: str) -> None:
    if values.size and np.all(values == values[0]):
        raise DataError(
            f"{csv}: column '{target}' is {values[0]:g} in every row{where}; a constant target "
            f"leaves nothing to learn"
        )


def _check_images(table: Table, root: Path, given: bool) -> None:
    if PATH_COLUMN not in table.header:
        raise DataError(
            f"{table.path}: --images needs a '{PATH_COLUMN}' column of image files relative to "
            f"{root}; available columns: {', '.join(table.header)}"
        )
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found" + (" (--images)" if given else ""))
    for index, cell in enumerate(table.column(PATH_COLUMN)):
        if not (root / cell.strip()).is_file():
            raise DataError(
                f"{table.where(index, PATH_COLUMN)}: image file {root / cell.strip()} not found"
            )


def _numeric_features(table: Table, target: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(numeric feature columns, other columns): a column is a feature when every cell is a
    finite number; an id or a category column is left out rather than refused."""
    features, skipped = [], []
    for name in table.header:
        if name in (target, SPLIT_COLUMN):
            continue
        try:
            parse_numbers(table, name)
        except DataError:
            skipped.append(name)
            continue
        features.append(name)
    if not features:
        raise DataError(
            f"{table.path}: no numeric feature columns besides '{target}' (columns: "
            f"{', '.join(table.header)}); image data needs a '{PATH_COLUMN}' column or --images"
        )
    return tuple(features), tuple(skipped)
