"""TPE whose cost per suggestion stays flat however many trials the study holds.

Optuna's TPESampler reads every trial of the study for every suggestion: the group-decomposed
search space re-folds all finished trials' distributions, and each group's Parzen estimators
split and fit all of them. A sweep of N trials therefore costs O(N**2) in the driver (1.1-1.4 s
per suggestion near 3,000 trials on the development machine).

This sampler hands TPE a bounded view of the study instead: the ``recent`` newest finished
trials, every running trial (constant liar), and the 25 best complete and 25 best pruned trials
by TPE's own ranking (complete trials by value, pruned ones by how far they got, then their last
value). TPE's "good" set is at most 25 trials (``default_gamma``), so with ``recent`` at least
250 it is exactly the set TPE would pick from the whole study; only the "bad" density is fitted
on the recent trials rather than on all of them (Optuna's default weights already fade old
trials out of it). That costs a little exploitation once the study outgrows the view: on the
bench's synthetic 2,000-trial sweeps it finds the same best value as TPE over every trial, but
its last 500 suggestions are on average farther from the optimum (bench/RESULTS.md, "TPE on a
bounded history"). The groups of the search space are folded in once per finished trial. The
best trials, the running ones and the groups are kept up to date in ``before_trial`` and
``after_trial``, so no suggestion scans the study.

It reads Optuna's private study and TPE internals (``_get_trials``, ``_sample``,
``_group_decomposed_search_space``); optuna is pinned below 6 and tests/test_bounded_tpe.py
checks the view against the full study.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import TPESampler
from optuna.samplers._tpe.sampler import _get_pruned_trial_score
from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace, _SearchSpaceGroup
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

ELITE = 25
"""The most trials TPE puts in its "good" set (``default_gamma`` caps it at 25)."""
MIN_RECENT = 10 * ELITE
"""``default_gamma`` reaches its cap of 25 at 250 finished trials: a view of at least that many
gives the same gamma as the whole study."""
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
"""The states TPE learns from."""


class FoldedGroups(_GroupDecomposedSearchSpace):
    """The group decomposition of the finished trials' parameters, folded in once per trial
    (``fold``) instead of re-scanning every finished trial at each suggestion."""

    def fold(self, distributions: dict[str, BaseDistribution]) -> None:
        self._search_space.add_distributions(distributions)

    def calculate(self, study: Study, use_cache: bool = False) -> _SearchSpaceGroup:
        return copy.deepcopy(self._search_space)


class BoundedHistoryTPESampler(TPESampler):
    """Multivariate, group-decomposed TPE over a bounded view of the study (module docstring).

    ``recent``: how many of the newest finished trials the view holds besides the best and the
    running ones (at least 250). A suggestion costs O(recent), not O(trials); 500 keeps it
    within about 1.5x of what it costs at trial 500."""

    def __init__(self, *, recent: int = 500, **tpe_options: Any) -> None:
        if recent < MIN_RECENT:
            raise ValueError(f"recent must be at least {MIN_RECENT}, got {recent}")
        super().__init__(multivariate=True, group=True, **tpe_options)
        self._group_decomposed_search_space = FoldedGroups(include_pruned=True)
        self.recent = recent
        self.running: set[int] = set()
        self.finished = 0
        self.best_complete: list[tuple[float, int]] = []
        """(value, signed to minimise; trial number) of the best COMPLETE trials, best first."""
        self.best_pruned: list[tuple[tuple[float, float], int]] = []
        """(TPE's pruned-trial score; trial number) of the best PRUNED trials, best first."""
        self._view: tuple[int, list[FrozenTrial]] | None = None

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        super().before_trial(study, trial)
        self.running.add(trial.number)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        super().after_trial(study, trial, state, values)
        self.running.discard(trial.number)
        self._view = None
        if state == TrialState.COMPLETE and values:
            sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
            keep_best(self.best_complete, (sign * values[0], trial.number))
        elif state == TrialState.PRUNED:
            keep_best(self.best_pruned, (_get_pruned_trial_score(trial, study), trial.number))
        if state in FINISHED:
            self.finished += 1
            self._group_decomposed_search_space.fold(trial.distributions)

    def _sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """TPE's own rule (random until ``n_startup_trials`` have finished) with the finished
        trials counted as they end instead of filtered out of the whole study per group."""
        if search_space == {} or self.finished < self._n_startup_trials:
            return {}
        return self._sample(study, trial, search_space)

    def _sample(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return super()._sample(HistoryView(study, self.view(study, trial)), trial, search_space)

    def view(self, study: Study, trial: FrozenTrial) -> list[FrozenTrial]:
        """The trials TPE sees while sampling ``trial``, in trial-number order: the ``recent``
        newest finished trials, the running ones and the best ones (computed once per trial:
        each group of the search space samples from the same view)."""
        if self._view is not None and self._view[0] == trial.number:
            return self._view[1]
        trials = study._get_trials(deepcopy=False, use_cache=False)  # index = trial number
        numbers = set(self.running)
        numbers.update(number for _, number in self.best_complete)
        numbers.update(number for _, number in self.best_pruned)
        recent = 0
        for past in reversed(trials):
            if recent == self.recent:
                break
            if past.state in FINISHED:
                numbers.add(past.number)
                recent += 1
        view = [trials[number] for number in sorted(numbers)]
        self._view = (trial.number, view)
        return view

    def __getstate__(self) -> dict[str, Any]:
        """Pickled with the searcher at every experiment save: the view is a per-suggestion
        cache of the study's trials, which the study's own pickle already holds."""
        state = self.__dict__.copy()
        state["_view"] = None
        return state


def keep_best(best: list[tuple[Any, int]], entry: tuple[Any, int]) -> None:
    """Insert ``entry`` (sort key, trial number) into ``best``, sorted, keeping the first
    ``ELITE``."""
    bisect.insort(best, entry)
    del best[ELITE:]


class HistoryView(optuna.study.Study):
    """The study as TPE's ``_sample`` reads it, with ``_get_trials`` limited to a view (the
    pattern of Optuna's own ``_BracketStudy`` in its Hyperband pruner). Everything else is the
    study's own."""

    def __init__(self, study: Study, trials: list[FrozenTrial]) -> None:
        self.__dict__.update(study.__dict__)
        self._view_trials = trials

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        trials = [t for t in self._view_trials if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials
