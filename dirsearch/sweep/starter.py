"""What ``dirsearch init`` decides for a CSV, before anything is written: the bins, the DIR split
(when the CSV has none), the shot thresholds and the budget.

- Bins: the ``data.bins: auto`` rule (``imbalance/bin_rule.py``, ``config/auto_bins.py``) on
  every row's target, so the bins hold every target a trial evaluates.
- Split: ``dirsearch data split``'s rule (per bin of n rows, val = test = min(cap, n // 3)) over
  those bins, seed 0. The cap is the largest that holds out at most ``HELD_OUT_SHARE`` of the
  rows, AgeDB-DIR's own share: its fixed cap of 30 would hold out most of a 2,000-row table.
  On AgeDB-DIR's counts the rule gives back its cap, 30.
- Shots: ``imbalance/shot_rule.py`` on the training rows per bin, each region kept non-empty on
  the bins the validation split evaluates.
- Budget: ``starter_budget.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dirsearch.data.csv_table import SPLIT_NAMES, count_per_split
from dirsearch.data.splits import SPLIT_COLUMN, assign_splits
from dirsearch.errors import DataError
from dirsearch.imbalance.bin_rule import auto_binning
from dirsearch.imbalance.bins import Binning
from dirsearch.imbalance.shot_rule import keep_regions, shot_thresholds
from dirsearch.sweep.own_data import OwnData
from dirsearch.sweep.starter_budget import Budget, size_budget

HELD_OUT_SHARE = 0.26
"""AgeDB-DIR holds out 4,280 of its 16,488 images (val 2,140, test 2,140): 26%."""
SPLIT_SEED = 0


@dataclass(frozen=True)
class StarterPlan:
    """Every decision of init for one CSV."""

    data: OwnData
    binning: Binning
    splits: np.ndarray
    """The split of every row: the CSV's own, or the one init makes."""
    cap: int | None
    """The DIR split's cap when init makes the split; None when the CSV has a split column."""
    train_counts: np.ndarray
    """Training rows per bin."""
    many: int
    few: int
    proportional: tuple[int, int]
    """(many, few) by AgeDB-DIR's proportions, before ``keep_regions`` moved them (if it did)."""
    budget: Budget

    def regions(self) -> list[str]:
        """The shot region of each bin by its training count: many, medium or few."""
        return [
            "many" if count > self.many else "few" if count < self.few else "medium"
            for count in self.train_counts
        ]

    def split_counts(self) -> dict[str, int]:
        return count_per_split(self.splits)


def plan_starter(data: OwnData) -> StarterPlan:
    """Decide bins, split, shots and budget for ``data``; DataError when no split can be made."""
    binning = auto_binning(data.targets)
    if data.splits is None:
        cap = held_out_cap(binning.histogram(data.targets))
        splits = assign_splits(data.targets, cap=cap, bin_width=binning.width, seed=SPLIT_SEED)
        empty = [name for name, count in count_per_split(splits).items() if count == 0]
        if empty:
            raise DataError(
                f"{data.csv}: {len(splits)} rows over {binning.count} target bins leave the "
                f"{empty[0]} split empty (a bin needs 3 rows to lend one to val and test); add "
                f"rows or give a '{SPLIT_COLUMN}' column ({', '.join(SPLIT_NAMES)})"
            )
    else:
        cap, splits = None, data.splits
    train = data.targets[splits == "train"]
    counts = binning.histogram(train)
    evaluated = counts[binning.histogram(data.targets[splits == "val"]) > 0]
    proportional = shot_thresholds(counts)
    many, few = keep_regions(*proportional, evaluated)
    budget = size_budget(data.kind, len(train))
    return StarterPlan(data, binning, splits, cap, counts, many, few, proportional, budget)


def held_out_cap(counts: np.ndarray) -> int:
    """The largest cap (at least 1) with which ``min(cap, n // 3)`` rows per bin for val and
    as many for test hold out at most ``HELD_OUT_SHARE`` of all rows."""
    counts = np.asarray(counts, dtype=np.int64)
    lendable = counts // 3
    best = 1
    for cap in range(1, int(lendable.max(initial=0)) + 1):
        if 2 * int(np.minimum(cap, lendable).sum()) > HELD_OUT_SHARE * counts.sum():
            break
        best = cap
    return best
