"""Shot thresholds (many-shot > ``many``, few-shot < ``few`` training samples per bin) scaled to
the data, the rule ``dirsearch init`` writes into a space file.

The paper's 100 and 20 were chosen for AgeDB-DIR, whose fullest training bin holds 353 images;
on a 2,000-row table every bin is few-shot by them. The rule keeps the paper's thresholds as the
same fractions of the fullest bin: ``many = round(100/353 x fullest)``, ``few = round(20/353 x
fullest)``. It gives back exactly 100/20 on AgeDB-DIR, moves with the data's size (halving every
count halves both thresholds, so the regions stay the same bins), and depends only on the
histogram's shape, which is what the regions are meant to describe. On small data the fraction
can fall below 2; ``few`` is at least 2 there, since a bin with one training sample is as
few-shot as a bin gets.

A region the proportion leaves without evaluated bins is then given the most extreme ones
(``keep_regions``): on nearly flat data no bin is below ``few``, which would leave the few-shot
MAE, the metric a DIR sweep optimises, undefined on the validation split.
"""

from __future__ import annotations

import numpy as np

AGEDB_FULLEST_BIN = 353
"""Training images in AgeDB-DIR's fullest age bin (``data/agedb_dir_split_counts.csv``)."""
AGEDB_MANY, AGEDB_FEW = 100, 20
MIN_FEW = 2
"""A bin with a single training sample is always few-shot."""


def shot_thresholds(counts: np.ndarray) -> tuple[int, int]:
    """``(many, few)`` for training ``counts`` per bin: AgeDB-DIR's 100/20 as fractions of its
    fullest bin, applied to this fullest bin; at least few 2 and many few + 1."""
    fullest = int(np.max(counts)) if np.size(counts) else 0
    few = max(MIN_FEW, round(AGEDB_FEW / AGEDB_FULLEST_BIN * fullest))
    many = max(few + 1, round(AGEDB_MANY / AGEDB_FULLEST_BIN * fullest))
    return many, few


def keep_regions(many: int, few: int, evaluated: np.ndarray) -> tuple[int, int]:
    """``(many, few)`` moved just enough that the bins the validation split evaluates (their
    training ``evaluated`` counts) hold a few-shot and a many-shot bin: the rarest become
    few-shot, the fullest many-shot. Unchanged when both regions already hold one."""
    counts = np.asarray(evaluated, dtype=np.int64)
    if counts.size == 0:
        return many, few
    if not np.any(counts < few):
        few = int(counts.min()) + 1
    if not np.any(counts > many):
        many = int(counts.max()) - 1
    return max(many, few), few
