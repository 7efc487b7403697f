"""A Ray Tune searcher that hands out a fixed list of points, one trial each, in order.

Grids (the paper's table of methods) and the confirm phase (top configurations x fresh seeds)
are lists of dotted overrides. Ray's BasicVariantGenerator resolves a start point's keys as
nested paths of its parameter space, which dotted names are not, and it is no ``Searcher``, so
``max_concurrent_trials`` would be ignored; this one is, and its state (the next index) is
saved with the experiment (as JSON), so a resumed grid continues where it stopped.
"""

from __future__ import annotations

import json
from typing import Any

from ray.tune.search import Searcher

from dirsearch.errors import ConfigError


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
        """The state as JSON, not pickle: loading a pickle runs whatever code it names, and the
        sweep folder may be a shared path or bucket others can write to."""
        state = {"points": self.points, "next_index": self.next_index}
        with open(checkpoint_path, "w", encoding="utf-8") as file:
            json.dump(state, file)

    def restore(self, checkpoint_path: str) -> None:
        """Read back what ``save`` wrote; anything else is refused with the file named."""
        try:
            with open(checkpoint_path, encoding="utf-8") as file:
                state = json.load(file)
            points, next_index = state["points"], state["next_index"]
            valid = isinstance(next_index, int) and 0 <= next_index <= len(points)
            valid = valid and all(isinstance(point, dict) for point in points)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(f"{checkpoint_path}: not a saved point list ({error})") from None
        if not valid:
            raise ConfigError(f"{checkpoint_path}: not a saved point list")
        self.points, self.next_index = points, next_index
