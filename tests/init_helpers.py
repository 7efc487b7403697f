"""Own-data CSVs for the init tests: tables and image folders, with and without a split column."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from dirsearch.data.csv_table import read_table, write_table


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def lab_table(path: Path, n: int = 600, seed: int = 0) -> Path:
    """A skewed float target in [0, 1] (most rows low), two informative features, an id column
    that is not a number, no split column."""
    rng = np.random.default_rng(seed)
    score = rng.beta(1.2, 5.0, n)
    rows = [
        [
            f"id{i}",
            repr(float(s * 4 + rng.normal(0, 0.3))),
            repr(float(np.sin(3 * s))),
            repr(float(s)),
        ]
        for i, s in enumerate(score)
    ]
    return write_csv(path, ["id", "x0", "x1", "score"], rows)


def without_split(csv_path: Path, out: Path) -> Path:
    """A copy of ``csv_path`` without its split column."""
    table = read_table(csv_path)
    keep = [i for i, name in enumerate(table.header) if name != "split"]
    write_table(
        out, [table.header[i] for i in keep], [[row[i] for i in keep] for row in table.rows]
    )
    return out
