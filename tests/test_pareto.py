"""The Pareto front: checked against the definition by brute force, on random points and on
trial records (which trials are compared, at which epoch)."""

from __future__ import annotations

import itertools
import random

import pytest

from dirsearch.sweep.pareto import pareto_front, pareto_optimal
from dirsearch.sweep.records import TrialRecord

MODES = ("min", "min")


def dominated_by_brute_force(points: list[tuple[float, ...]], modes: tuple[str, ...]) -> set[int]:
    """Indices of the points some other point beats: no worse on every objective, better on
    one (the definition, one pair at a time)."""

    def no_worse(a: float, b: float, mode: str) -> bool:
        return a <= b if mode == "min" else a >= b

    found = set()
    for i, j in itertools.permutations(range(len(points)), 2):
        a, b = points[j], points[i]
        if all(no_worse(x, y, m) for x, y, m in zip(a, b, modes, strict=True)) and a != b:
            found.add(i)
    return found


@pytest.mark.parametrize("modes", [("min", "min"), ("min", "max"), ("max", "min", "min")])
@pytest.mark.parametrize("seed", range(5))
def test_the_front_is_what_brute_force_finds(modes: tuple[str, ...], seed: int) -> None:
    generator = random.Random(seed)
    # Few distinct values, so ties and duplicate points occur.
    points = [tuple(float(generator.randint(0, 6)) for _ in modes) for _ in range(40)]
    flags = pareto_optimal(points, modes)
    dominated = dominated_by_brute_force(points, modes)
    assert [i for i, flag in enumerate(flags) if not flag] == sorted(dominated)
    assert any(flags)


def record(number: int, rows: list[tuple[float, float]], epochs: int = 3) -> TrialRecord:
    """A trial whose epoch k reported few-shot and overall MAE ``rows[k - 1]``."""
    history = [
        {"epoch": e, "training_iteration": e, "val/few/mae": f, "val/all/mae": a}
        for e, (f, a) in enumerate(rows[:epochs], start=1)
    ]
    return TrialRecord(number, f"t{number}", {"train.lr": number / 100}, history)


METRICS = ("val/few/mae", "val/all/mae")


def test_objectives_are_read_where_the_first_is_best_and_only_full_trials_compared() -> None:
    full_a = record(1, [(9.0, 1.0), (5.0, 4.0), (6.0, 0.5)])  # read at epoch 2: (5, 4)
    full_b = record(2, [(7.0, 3.0), (8.0, 2.0), (7.5, 2.5)])  # read at epoch 1: (7, 3)
    full_c = record(3, [(8.0, 5.0), (8.0, 5.0), (8.0, 5.0)])  # dominated by b
    stopped = record(4, [(1.0, 0.1)], epochs=1)  # beats all, but stopped: not compared
    front = pareto_front([full_a, full_b, full_c, stopped], METRICS, MODES, epochs=3)
    assert [r.number for r in front.compared] == [1, 2, 3]
    assert front.values["t1"] == (5.0, 4.0)
    assert [r.number for r in front.optimal] == [1, 2]  # best first by few-shot MAE
    assert not front.is_optimal(stopped)


def test_with_no_full_trial_every_scored_one_is_compared() -> None:
    stopped = [record(1, [(3.0, 3.0)], epochs=1), record(2, [(2.0, 2.0)], epochs=1)]
    front = pareto_front(stopped, METRICS, MODES, epochs=3)
    assert [r.number for r in front.optimal] == [2]
