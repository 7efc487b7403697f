"""Reading and writing the small CSV tables every dataset kind and data command works with.

All checks of user-supplied CSV files live here so that every dataset reports a bad file the same
way: one line naming the file, the spreadsheet row (the header is row 1) and the column. Writing
is atomic (a temporary file in the target folder, then ``os.replace``) so an error or an interrupt
never leaves a half-written CSV that a later run would take for a finished one.
"""

from __future__ import annotations

import csv
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dirsearch.errors import DataError

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
"""The values a split column may hold, in the order summaries list them."""


@dataclass(frozen=True)
class Table:
    """The text cells of a CSV file, with each row's spreadsheet row number for error messages."""

    path: Path
    header: tuple[str, ...]
    rows: list[list[str]]
    row_numbers: list[int]
    """Row number of ``rows[i]`` as a spreadsheet shows it: the header is row 1."""

    def column(self, name: str) -> list[str]:
        """The cells of column ``name`` (which must exist: see ``require_columns``)."""
        position = self.header.index(name)
        return [row[position] for row in self.rows]

    def where(self, index: int, column: str) -> str:
        """``"FILE: row N, column 'C'"`` for the ``index``-th data row."""
        return f"{self.path}: row {self.row_numbers[index]}, column '{column}'"


def read_table(path: Path) -> Table:
    """Read a CSV with a header row; blank lines are skipped, every other row must be complete.

    A UTF-8 byte-order mark (spreadsheet exports) is ignored and header names are stripped of
    surrounding spaces, so ``age, path`` names the columns ``age`` and ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: CSV file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            records = list(csv.reader(handle))
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not a UTF-8 text file ({error.reason})") from error
    except csv.Error as error:
        raise DataError(f"{path}: malformed CSV ({error})") from error
    if not records or not any(cell.strip() for cell in records[0]):
        raise DataError(f"{path}: empty file; expected a header row with column names")
    header = tuple(name.strip() for name in records[0])
    _check_header(path, header)
    rows: list[list[str]] = []
    row_numbers: list[int] = []
    for number, record in enumerate(records[1:], start=2):
        if not record:
            continue
        if len(record) != len(header):
            raise DataError(
                f"{path}: row {number} has {len(record)} fields; the header has {len(header)}"
            )
        rows.append(record)
        row_numbers.append(number)
    return Table(path=path, header=header, rows=rows, row_numbers=row_numbers)


def _check_header(path: Path, header: tuple[str, ...]) -> None:
    """Column names must be non-empty and unique, or ``column(name)`` would be ambiguous."""
    for position, name in enumerate(header, start=1):
        if not name:
            raise DataError(f"{path}: header column {position} has no name")
        if header.index(name) != position - 1:
            raise DataError(f"{path}: header names column '{name}' twice")


def require_columns(table: Table, names: Iterable[str]) -> None:
    """Raise a DataError naming the first missing column and listing the available ones."""
    for name in names:
        if name not in table.header:
            available = ", ".join(table.header)
            raise DataError(f"{table.path}: no column '{name}'; available columns: {available}")


def require_rows(table: Table) -> None:
    """A table that is only a header cannot feed a dataset or a split."""
    if not table.rows:
        raise DataError(f"{table.path}: no data rows below the header")


def parse_numbers(table: Table, column: str) -> np.ndarray:
    """Column ``column`` as float64; every cell must be a finite number."""
    require_columns(table, [column])
    cells = table.column(column)
    values = np.empty(len(cells), dtype=np.float64)
    for index, cell in enumerate(cells):
        try:
            values[index] = float(cell)
        except ValueError:
            raise DataError(
                f"{table.where(index, column)}: {cell.strip()!r} is not a number"
            ) from None
        if not np.isfinite(values[index]):
            raise DataError(
                f"{table.where(index, column)}: {cell.strip()!r} is not a finite number"
            )
    return values


def parse_splits(table: Table, column: str) -> np.ndarray:
    """Column ``column`` as split names; each of train/val/test must occur at least once."""
    require_columns(table, [column])
    allowed = ", ".join(SPLIT_NAMES)
    splits = np.array([cell.strip() for cell in table.column(column)], dtype=object)
    for index, split in enumerate(splits):
        if split not in SPLIT_NAMES:
            raise DataError(
                f"{table.where(index, column)}: unknown split {split!r}; allowed: {allowed}"
            )
    for name, count in count_per_split(splits).items():
        if count == 0:
            raise DataError(f"{table.path}: split '{name}' is empty (column '{column}')")
    return splits


def count_per_split(splits: np.ndarray) -> dict[str, int]:
    """Number of rows in each split, in ``SPLIT_NAMES`` order (zeros included)."""
    return {name: int(np.count_nonzero(splits == name)) for name in SPLIT_NAMES}


def write_table(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a CSV atomically, creating the folder if needed; an error leaves no file behind."""
    path = Path(path)
    try:
        _write_atomically(path, header, rows)
    except OSError as error:
        raise DataError(f"{path}: cannot write the CSV ({error.strerror or error})") from error


def _write_atomically(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write next to ``path`` then rename over it, removing the temporary file on any failure.

    The temporary file is opened with mode 0o666 so the result gets the usual umask-derived
    permissions (``tempfile`` would make it private to the owner).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(descriptor, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
