"""A Ray Tune searcher that hands out a fixed list of points, one trial each, in order.

Grids (the paper's table of methods) and the confirm phase (top configurations x fresh seeds)
are lists of dotted overrides. Ray's BasicVariantGenerator resolves a start point's keys as
nested paths of its parameter space, which dotted names are not, and it is no ``Searcher``, so
``max_concurrent_trials`` would be ignored; this one is, and its state (the next index) is
saved with the experiment, so a resumed grid continues where it stopped.
"""

from __future__ import annotations

import pickle
from typing import Any

from ray.tune.search import Searcher


class PointSearcher(Searcher):
    """Suggests ``points`` in order, then reports that the search is finished."""

    def __init__(self, points: list[dict[str, Any]]) -> None:
        super().__init__()
        self.points = [dict(point) for point in points]
        self.next_index = 0

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.next_index >= len(self.points):
            return Searcher.FINISHED
        point = self.points[self.next_index]
        self.next_index += 1
        return dict(point)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Nothing to learn: every point runs regardless of the others."""

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as file:
            pickle.dump({"points": self.points, "next_index": self.next_index}, file)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as file:
            state = pickle.load(file)  # our own experiment folder's file, written by save
        self.points, self.next_index = state["points"], state["next_index"]
