"""What a person watching a sweep reads: one line per trial that starts or ends, with its
few-shot MAE and the best so far (Ray's own verbose tables stay off)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ray.tune import Callback

from dirsearch.common.formatting import format_metric, format_overrides
from dirsearch.common.objective_mode import better
from dirsearch.sweep.folder import trial_number
from dirsearch.sweep.records import TrialRecord
from dirsearch.sweep.statuses import COMPLETED

FEW_SHOT_MAE = "val/few/mae"


class SweepConsole(Callback):
    """Prints trial starts and ends; keeps the best objective seen so far and the records of
    the running trials."""

    def __init__(
        self, metric: str, mode: str, max_epochs: int, total: int, say: Callable[[str], None]
    ) -> None:
        self.metric, self.mode, self.max_epochs, self.total = metric, mode, max_epochs, total
        self.say = say
        self.records: dict[str, TrialRecord] = {}
        self.best: tuple[float, int] | None = None
        self.ended = 0

    def _record(self, trial: Any) -> TrialRecord:
        if trial.trial_id not in self.records:
            self.records[trial.trial_id] = TrialRecord(
                trial_number(trial), trial.trial_id, dict(trial.config)
            )
        return self.records[trial.trial_id]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        record = self._record(trial)
        values = format_overrides(record.overrides)
        where = getattr(trial, "temporary_state", None)
        node = getattr(getattr(where, "location", None), "hostname", None)
        self.say(
            f"trial {record.number}/{self.total} started{f' on {node}' if node else ''}: {values}"
        )

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any):
        record = self._record(trial)
        record.history.append({key: value for key, value in result.items() if _plain(value)})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial, errored=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial, errored=True)

    def _ended(self, trial: Any, *, errored: bool) -> None:
        record = self._record(trial)
        record.errored = errored
        self.ended += 1
        score = record.score(self.metric, self.mode)
        completed = math.isfinite(score) and record.status(self.max_epochs) == COMPLETED
        if completed and better(score, self.best[0] if self.best else None, self.mode):
            self.best = (score, record.number)
        few = (record.best(self.metric, self.mode) or {}).get(FEW_SHOT_MAE)
        line = (
            f"[{self.ended}/{self.total}] trial {record.number} {record.status(self.max_epochs)}: "
            f"{self.metric} {format_metric(score)}"
        )
        if self.metric != FEW_SHOT_MAE:  # the figure DIR is about, whatever the search optimises
            line += f", {FEW_SHOT_MAE} {format_metric(few)}"
        if self.best:
            line += f"; best so far {self.best[0]:.3f} (trial {self.best[1]})"
        self.say(line)
        del self.records[trial.trial_id]  # only running trials are kept: not every epoch of all


def _plain(value: Any) -> bool:
    return isinstance(value, int | float | str | bool)
