"""How a finished Tune trial is told to Optuna, on a real Optuna study (no Ray needed: the
searcher is driven through the same calls Tune makes)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from dirsearch.sweep.dimensions import Dimension, SearchSpace
from dirsearch.sweep.records import DIVERGED_SENTINEL
from dirsearch.tune.search.optuna_searcher import TruthfulOptunaSearch

EPOCHS = 4


def searcher() -> TruthfulOptunaSearch:
    space = SearchSpace(
        {"train": {"lr": 1e-3}}, [Dimension("train.lr", "loguniform", low=1e-4, high=1e-2)]
    )
    return TruthfulOptunaSearch(
        space,
        metrics=("val/few/mae",),
        modes=("min",),
        max_epochs=EPOCHS,
        sampler=optuna.samplers.RandomSampler(seed=0),
        points_to_evaluate=[],
    )


def run(
    search: TruthfulOptunaSearch, values: list[float], *, error: bool = False, status: str = ""
) -> optuna.trial.FrozenTrial:
    """One trial as Tune drives it: every result but the last through on_trial_result, the last
    through on_trial_complete only."""
    trial_id = f"t{len(search._ot_trials)}"
    assert "train.lr" in search.suggest(trial_id)
    results = [
        {"val/few/mae": value, "epoch": epoch, "training_iteration": epoch, "status": "running"}
        for epoch, value in enumerate(values, start=1)
    ]
    if status:
        results[-1]["status"] = status
    for result in results[:-1]:
        search.on_trial_result(trial_id, result)
    search.on_trial_complete(trial_id, None if error else results[-1], error=error)
    return search._ot_study.trials[-1]


def test_a_finished_trial_is_complete_with_its_best_epoch() -> None:
    trial = run(searcher(), [9.0, 7.0, 8.0, 7.5])
    assert (trial.state, trial.value) == (TrialState.COMPLETE, 7.0)
    assert trial.intermediate_values == {1: 9.0, 2: 7.0, 3: 8.0, 4: 7.5}


def test_a_trial_stopped_before_the_last_epoch_is_pruned_with_its_epochs() -> None:
    trial = run(searcher(), [9.0, 8.5])
    assert trial.state == TrialState.PRUNED
    assert trial.intermediate_values == {1: 9.0, 2: 8.5}  # the last one came with completion


def test_an_errored_trial_fails_even_after_reporting() -> None:
    trial = run(searcher(), [9.0, 8.0], error=True)
    assert trial.state == TrialState.FAIL


@pytest.mark.parametrize("epochs_before", [0, 2])
def test_a_diverged_trial_completes_with_the_finite_sentinel(epochs_before: int) -> None:
    values = [9.0] * epochs_before + [DIVERGED_SENTINEL]
    trial = run(searcher(), values, status="diverged")
    assert (trial.state, trial.value) == (TrialState.COMPLETE, DIVERGED_SENTINEL)


def test_the_study_goes_on_after_every_kind_of_ending() -> None:
    search = searcher()
    run(search, [9.0, 7.0, 8.0, 7.5])
    run(search, [9.0])
    run(search, [9.0], error=True)
    run(search, [DIVERGED_SENTINEL], status="diverged")
    states = [trial.state for trial in search._ot_study.trials]
    assert TrialState.RUNNING not in states
    assert search.suggest("next") is not None


TWO = ("val/few/mae", "val/all/mae")


def two_objective_searcher(startup: int = 2) -> TruthfulOptunaSearch:
    """The multi-objective searcher a two-objective sweep gets: Optuna's TPE on two values."""
    space = SearchSpace(
        {"train": {"lr": 1e-3}}, [Dimension("train.lr", "loguniform", low=1e-4, high=1e-2)]
    )
    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=startup, multivariate=True)
    return TruthfulOptunaSearch(
        space,
        metrics=TWO,
        modes=("min", "min"),
        max_epochs=EPOCHS,
        sampler=sampler,
        points_to_evaluate=[],
    )


def run_two(
    search: TruthfulOptunaSearch, few: list[float], overall: list[float], *, status: str = ""
) -> optuna.trial.FrozenTrial:
    """``run`` with two objectives per report."""
    trial_id = f"t{len(search._ot_trials)}"
    assert "train.lr" in search.suggest(trial_id)
    results = [
        {TWO[0]: f, TWO[1]: a, "epoch": epoch, "training_iteration": epoch, "status": "running"}
        for epoch, (f, a) in enumerate(zip(few, overall, strict=True), start=1)
    ]
    if status:
        results[-1]["status"] = status
    for result in results[:-1]:
        search.on_trial_result(trial_id, result)
    search.on_trial_complete(trial_id, results[-1])
    return search._ot_study.trials[-1]


def test_two_objectives_are_told_at_the_epoch_where_the_first_is_best() -> None:
    trial = run_two(two_objective_searcher(), [9.0, 7.0, 8.0, 7.5], [3.0, 4.0, 2.0, 2.5])
    assert (trial.state, trial.values) == (TrialState.COMPLETE, [7.0, 4.0])
    assert trial.intermediate_values == {}  # a multi-objective study takes none


def test_a_stopped_trial_of_two_objectives_is_pruned_without_values() -> None:
    trial = run_two(two_objective_searcher(), [9.0, 8.5], [3.0, 2.0])
    assert (trial.state, trial.values) == (TrialState.PRUNED, None)


def test_multi_objective_tpe_samples_on_after_pruned_and_diverged_trials() -> None:
    """The path with known Optuna issues: PRUNED trials in a multi-objective TPE study. Past the
    start-up trials TPE must model a study holding complete, pruned and diverged trials."""
    search = two_objective_searcher(startup=2)
    run_two(search, [9.0, 7.0, 8.0, 7.5], [3.0, 4.0, 2.0, 2.5])
    run_two(search, [9.0], [5.0])
    run_two(search, [DIVERGED_SENTINEL], [DIVERGED_SENTINEL], status="diverged")
    run_two(search, [6.0, 6.5, 6.2, 6.1], [5.0, 4.0, 4.5, 4.2])
    for _ in range(6):  # TPE's own suggestions from here on
        run_two(search, [8.0, 7.0], [4.0, 3.0])
        run_two(search, [5.0, 5.0, 5.0, 5.0], [6.0, 6.0, 6.0, 6.0])
    trials = search._ot_study.trials
    states = [trial.state for trial in trials]
    assert TrialState.RUNNING not in states
    assert states.count(TrialState.PRUNED) == 7
    assert [t.values for t in trials if t.state == TrialState.PRUNED] == [None] * 7
    assert trials[2].values == [DIVERGED_SENTINEL, DIVERGED_SENTINEL]
    assert len(search._ot_study.best_trials) >= 1
