"""Ray's OptunaSearch, telling Optuna the truth about how each trial ended.

Ray 2.60 tells Optuna COMPLETE with the last reported value for a trial that ASHA stopped early,
so TPE mixes half-trained scores with fully trained ones, and COMPLETE for a trial that errored
after reporting. Here: a trial stopped before the last epoch is PRUNED (its per-epoch values
are already in Optuna as intermediate values), an errored one is FAIL, a diverged one is
COMPLETE with the finite sentinel it reported, and a finished one is COMPLETE with its best
epoch's value, the epoch whose checkpoint the sweep evaluates. Tune hands the last result of a
trial only to ``on_trial_complete``; it is recorded as an intermediate value there. This reads
the parent's private ``_ot_trials``/``_ot_study``/``_completed_trials``; ray is pinned to 2.60
and tests/test_sweep.py checks the states Optuna ends up with. A finished trial's entry in
``_ot_trials`` is Optuna's ``FrozenTrial`` of it, a running one's the live ``optuna.Trial``.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from dirsearch.common.objective_mode import better
from dirsearch.sweep.dimensions import SearchSpace


class TruthfulOptunaSearch(OptunaSearch):
    """OptunaSearch over a define-by-run ``SearchSpace`` that knows the full epoch budget."""

    def __init__(
        self,
        space: SearchSpace,
        *,
        metric: str,
        mode: str,
        max_epochs: int,
        sampler: optuna.samplers.BaseSampler,
        points_to_evaluate: list[dict[str, Any]],
    ) -> None:
        super().__init__(
            space=space,
            metric=metric,
            mode=mode,
            sampler=sampler,
            points_to_evaluate=[space.optuna_point(point) for point in points_to_evaluate],
        )
        self.max_epochs = max_epochs
        self.best_values: dict[str, float] = {}
        self.last_steps: dict[str, int] = {}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        step = int(result.get("training_iteration", 0))
        if step <= self.last_steps.get(trial_id, 0):
            return  # already recorded (a last result that reached on_trial_complete too)
        self.last_steps[trial_id] = step
        value = result.get(self.metric)
        if isinstance(value, int | float) and math.isfinite(value):
            if better(value, self.best_values.get(trial_id), self.mode):
                self.best_values[trial_id] = float(value)
            super().on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        if result and not error:
            # Tune hands a trial's last result (the final epoch, or the one ASHA stopped it at)
            # only to on_trial_complete: record it like every other epoch first.
            self.on_trial_result(trial_id, result)
        state, value = self.ending(trial_id, result, error)
        live = self._ot_trials[trial_id]
        self._ot_study.tell(live, value, state=state)
        self._completed_trials.add(trial_id)
        # The live handle holds its own copies of the trial and of the search space; the study's
        # record of the finished trial (the same object its storage holds) replaces it, so each
        # of a big sweep's finished trials is held and pickled with every state save once.
        self._ot_trials[trial_id] = self._ot_study._storage.get_trial(live._trial_id)

    def ending(
        self, trial_id: str, result: dict[str, Any] | None, error: bool
    ) -> tuple[TrialState, float | None]:
        """The Optuna state and value a finished Tune trial is told with."""
        if error:
            return TrialState.FAIL, None
        if result and result.get("status") == "diverged":
            return TrialState.COMPLETE, float(result[self.metric])
        best = self.best_values.get(trial_id)
        if not result or int(result.get("epoch", 0)) < self.max_epochs or best is None:
            return TrialState.PRUNED, None
        return TrialState.COMPLETE, best
