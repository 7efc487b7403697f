"""Balanced DIR validation/test splits from any labelled table (ALGORITHMS.md section 6).

DIR evaluates on val/test splits that are as flat over the target range as the data allows, while
training keeps the natural imbalance. The rule that reproduces AgeDB-DIR's published split: a bin
of ``n`` samples gives ``min(cap, n // 3)`` samples each to val and test and the rest to train, so
rare bins are shared about evenly and common bins lend ``cap`` samples each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dirsearch.data.csv_table import (
    SPLIT_NAMES,
    count_per_split,
    parse_numbers,
    read_table,
    require_rows,
    write_table,
)
from dirsearch.errors import DataError
from dirsearch.imbalance.bins import EDGE_TOLERANCE, check_finite

SPLIT_COLUMN = "split"


def split_counts(n: int, cap: int) -> tuple[int, int, int]:
    """``(train, val, test)`` sizes for one bin of ``n`` samples."""
    if n < 0 or cap < 0:
        raise ValueError(f"n and cap must be >= 0; got n={n}, cap={cap}")
    held_out = min(cap, n // 3)
    return n - 2 * held_out, held_out, held_out


def assign_splits(
    targets: np.ndarray, *, cap: int = 30, bin_width: float = 1.0, seed: int = 0
) -> np.ndarray:
    """Split name (``"train"``, ``"val"`` or ``"test"``) of each target.

    Bin ``b = floor(target / bin_width)`` (with the same edge tolerance as the LDS/FDS binning,
    so a score of 0.3 lands in bin 3 at width 0.1). Which members of a bin are held out is a
    shuffle seeded by ``(seed, b)`` alone, so the choice in one bin does not change when rows of
    other bins are added or removed, and the same seed always gives the same split.
    """
    values = np.asarray(targets, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"targets must be one-dimensional; got shape {values.shape}")
    check_finite("targets", values)
    if not (np.isfinite(bin_width) and bin_width > 0):
        raise ValueError(f"bin_width must be a finite number > 0; got {bin_width}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0; got {seed}")
    bins = np.floor(values / bin_width + EDGE_TOLERANCE).astype(np.int64)
    splits = np.full(values.shape, SPLIT_NAMES[0], dtype=object)
    if values.size == 0:
        return splits
    order = np.argsort(bins, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(bins[order]) != 0])
    for members in np.split(order, starts[1:]):
        _, held_out, _ = split_counts(len(members), cap)
        shuffled = _bin_generator(seed, int(bins[members[0]])).permutation(members)
        splits[shuffled[:held_out]] = "val"
        splits[shuffled[held_out : 2 * held_out]] = "test"
    return splits


def _bin_generator(seed: int, bin_index: int) -> np.random.Generator:
    """A generator keyed by the seed and the bin (SeedSequence entropy must be non-negative)."""
    return np.random.default_rng([seed, int(bin_index < 0), abs(bin_index)])


def split_csv(
    in_csv: Path,
    out_csv: Path,
    *,
    target: str,
    cap: int = 30,
    bin_width: float = 1.0,
    seed: int = 0,
) -> dict[str, int]:
    """Copy ``in_csv`` to ``out_csv`` with a ``split`` column from ``assign_splits``.

    Every column is kept; an existing ``split`` column is overwritten in place. ``out_csv`` may
    be ``in_csv``. Returns the number of rows per split.
    """
    if target == SPLIT_COLUMN:
        raise DataError(f"{in_csv}: the target cannot be the '{SPLIT_COLUMN}' column it writes")
    table = read_table(in_csv)
    require_rows(table)
    splits = assign_splits(parse_numbers(table, target), cap=cap, bin_width=bin_width, seed=seed)
    header = table.header if SPLIT_COLUMN in table.header else (*table.header, SPLIT_COLUMN)
    position = header.index(SPLIT_COLUMN)
    rows = [
        [*row[:position], split, *row[position + 1 :]]
        for row, split in zip(table.rows, splits, strict=True)
    ]
    write_table(out_csv, header, rows)
    return count_per_split(splits)
