"""``data.bins: auto``: bins derived from the data's targets when the config is loaded.

Forms: ``bins: auto`` derives start, width and count; in a mapping, a key set to ``auto`` or left
out is derived as soon as one key is ``auto`` (``{width: auto}``; ``{width: auto, count: 40}``
gives exactly 40 equal bins over the observed range; ``{width: 0.05, start: auto}``). A mapping
without ``auto`` keeps its old meaning (missing keys take the defaults 0, 1, 102).

The rule is ``imbalance/bin_rule.py``'s, applied to the targets of every row of ``data.csv``
(val and test too): the bins must hold every target a trial evaluates, or a test target beyond
the training range would be counted in an edge bin (a warning in every trial) and DIR's zero-shot
bins, evaluated but never trained on, would vanish. Only the binning's range comes from them; the
loss weights and the shot regions still count the training rows alone. The synthetic data's
targets are its ages 0..101, which its val and test splits cover. The bins are resolved once, when
the space file or trial config is read: a sweep records them in its resolved spec, so every
trial and every resume uses the same bins, and ``dirsearch train`` writes them to config.yaml.
Reads the CSV with the numpy-only table reader: no torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

import dirsearch.data
from dirsearch.config.problems import Problems
from dirsearch.data.csv_table import parse_numbers, read_table, require_rows
from dirsearch.errors import DataError
from dirsearch.imbalance.bin_rule import auto_binning

AUTO = "auto"
BIN_KEYS = ("start", "width", "count")
SYNTHETIC_COUNTS = Path(dirsearch.data.__file__).with_name("agedb_dir_split_counts.csv")
"""The synthetic data's age histogram: its ages are this file's ``age`` column."""


def auto_form(bins: Any) -> dict[str, Any] | None:
    """The given (not ``auto``) keys of a ``data.bins`` value that asks for derived bins, or
    None when it does not ask (explicit bins, or not a bins value at all)."""
    if bins == AUTO:
        return {}
    if isinstance(bins, dict) and any(value == AUTO for value in bins.values()):
        return {key: value for key, value in bins.items() if value != AUTO}
    return None


def resolve_auto_bins(mapping: Any, problems: Problems, base: Path) -> Any:
    """``mapping`` with an auto ``data.bins`` replaced by ``{start, width, count}``; a problem
    (no data to read, a constant target) is added to ``problems`` and the bins left to the
    loader's defaults, so the rest of the file is still checked."""
    data = mapping.get("data") if isinstance(mapping, dict) else None
    given = auto_form(data.get("bins")) if isinstance(data, dict) else None
    if given is None:
        return mapping
    assert isinstance(data, dict)
    resolved = dict(given)
    if _usable(given):
        try:
            binning = auto_binning(_targets(data, base), **_numbers(given))
            resolved = {"start": binning.start, "width": binning.width, "count": binning.count}
        except (DataError, ValueError) as error:
            problems.add(
                "data.bins",
                f"auto derives the bins from the targets of data.csv, but {error}; give explicit "
                f"bins {{start, width, count}}",
            )
    return {**mapping, "data": {**data, "bins": resolved}}


def _usable(given: dict[str, Any]) -> bool:
    """Whether the given keys are values a rule can start from; anything else (unknown keys, a
    negative width) goes to the loader as it is, which names the key and what is allowed."""
    if set(given) - set(BIN_KEYS):
        return False
    count = given.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        return False
    for key, value in given.items():
        number = _as_number(value)
        if number is None or not math.isfinite(number) or (key != "start" and number <= 0):
            return False
    return True


def _as_number(value: Any) -> float | None:
    """A number as the loader takes it (YAML 1.1 reads ``1e-3`` as text), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _numbers(given: dict[str, Any]) -> dict[str, Any]:
    return {key: int(value) if key == "count" else float(value) for key, value in given.items()}


def _targets(data: dict[str, Any], base: Path) -> np.ndarray:
    """The targets the bins are derived from: every row's (see the module docstring)."""
    name = data.get("name", "synthetic")
    if name == "synthetic":
        return parse_numbers(read_table(SYNTHETIC_COUNTS), "age")
    csv, target = data.get("csv"), data.get("target", "age")
    if not isinstance(csv, str) or not isinstance(target, str):
        raise DataError("data.csv and data.target must name the CSV file and its target column")
    path = Path(csv).expanduser()
    table = read_table(path if path.is_absolute() else base / path)
    require_rows(table)
    return parse_numbers(table, target)
