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
    """OptunaSearch over a define-by-run ``SearchSpace`` that knows the full epoch budget.

    With several objectives the study is multi-objective: Optuna takes no intermediate values
    there, so a stopped trial is PRUNED with no value at all (multi-objective TPE ranks such
    trials below every complete one), and a finished one is told every objective read at the
    epoch where the first objective is best."""

    def __init__(
        self,
        space: SearchSpace,
        *,
        metrics: tuple[str, ...],
        modes: tuple[str, ...],
        max_epochs: int,
        sampler: optuna.samplers.BaseSampler,
        points_to_evaluate: list[dict[str, Any]],
    ) -> None:
        several = len(metrics) > 1
        super().__init__(
            space=space,
            metric=list(metrics) if several else metrics[0],
            mode=list(modes) if several else modes[0],
            sampler=sampler,
            points_to_evaluate=[space.optuna_point(point) for point in points_to_evaluate],
        )
        self.objectives, self.objective_modes = tuple(metrics), tuple(modes)
        self.max_epochs = max_epochs
        self.best_values: dict[str, tuple[float, ...]] = {}
        """Every objective at the epoch where the first is best, per trial."""
        self.last_steps: dict[str, int] = {}

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        step = int(result.get("training_iteration", 0))
        if step <= self.last_steps.get(trial_id, 0):
            return  # already recorded (a last result that reached on_trial_complete too)
        self.last_steps[trial_id] = step
        values = [result.get(metric) for metric in self.objectives]
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            return
        best = self.best_values.get(trial_id)
        if better(values[0], best[0] if best else None, self.objective_modes[0]):
            self.best_values[trial_id] = tuple(float(v) for v in values)
        if not self.multi_objective:
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
        state, values = self.ending(trial_id, result, error)
        live = self._ot_trials[trial_id]
        told = values if values is None or self.multi_objective else values[0]
        self._ot_study.tell(live, told, state=state)
        self._completed_trials.add(trial_id)
        # The live handle holds its own copies of the trial and of the search space; the study's
        # record of the finished trial (the same object its storage holds) replaces it, so each
        # of a big sweep's finished trials is held and pickled with every state save once.
        self._ot_trials[trial_id] = self._ot_study._storage.get_trial(live._trial_id)

    def ending(
        self, trial_id: str, result: dict[str, Any] | None, error: bool
    ) -> tuple[TrialState, list[float] | None]:
        """The Optuna state and values (one per objective) a finished Tune trial is told with."""
        if error:
            return TrialState.FAIL, None
        if result and result.get("status") == "diverged":
            return TrialState.COMPLETE, [float(result[metric]) for metric in self.objectives]
        best = self.best_values.get(trial_id)
        if not result or int(result.get("epoch", 0)) < self.max_epochs or best is None:
            return TrialState.PRUNED, None
        return TrialState.COMPLETE, list(best)
