"""Ray's FIFO and ASHA schedulers, choosing the next trial to run among the live trials only.

Ray's ``FIFOScheduler.choose_trial_to_run`` (ASHA inherits it) walks every trial of the
experiment, finished ones included, twice per controller step when none is waiting: O(trials)
per step, so O(trials**2) over a sweep (8% of the driver near 3,000 no-op trials, and growing).
The trials that can be chosen, PENDING then PAUSED, are all live (not terminated), and the
controller keeps that set, so this walks it instead and picks the oldest (Ray's walk picks the
first in the order the trials were added: creation order, except right after a resume, when Ray
re-adds them by their last result).
"""

from __future__ import annotations

from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from dirsearch.sweep.folder import trial_number


def oldest_waiting(tune_controller: Any) -> Trial | None:
    """The first PENDING trial in creation order, else the first PAUSED one, else None."""
    live = tune_controller.get_live_trials()
    for status in (Trial.PENDING, Trial.PAUSED):
        waiting = [trial for trial in live if trial.status == status]
        if waiting:
            return min(waiting, key=trial_number)
    return None


class LiveFIFOScheduler(FIFOScheduler):
    """Ray's FIFO scheduler; the next trial found among the live ones (module docstring)."""

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        return oldest_waiting(tune_controller)


class LiveASHAScheduler(ASHAScheduler):
    """Ray's ASHA scheduler; the next trial found among the live ones (module docstring)."""

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        return oldest_waiting(tune_controller)
