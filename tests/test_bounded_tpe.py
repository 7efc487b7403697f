"""The bounded-history TPE against Optuna's own TPE on real studies over a conditional space:
the same suggestions while the view holds every trial, the same "good" set and the same
search-space groups once it does not, a view that stays bounded, and a pickled sampler (Ray's
experiment state) that continues exactly where it was."""

from __future__ import annotations

import pickle
import random
import warnings

import optuna
import pytest
from optuna.samplers._tpe.sampler import _split_trials, default_gamma
from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace
from optuna.trial import TrialState

from dirsearch.sweep.dimensions import Condition, Dimension, SearchSpace
from dirsearch.tune.search.bounded_tpe import ELITE, BoundedHistoryTPESampler

SPACE = SearchSpace(
    {"imbalance": {"reweight": "none", "lds": {"enabled": False}}, "train": {"lr": 1e-3}},
    [
        Dimension("imbalance.reweight", "choice", values=("none", "inverse", "sqrt_inv")),
        Dimension(
            "imbalance.lds.enabled",
            "choice",
            values=(False, True),
            conditions=(Condition("imbalance.reweight", ("inverse", "sqrt_inv")),),
        ),
        Dimension(
            "imbalance.lds.sigma",
            "loguniform",
            low=0.5,
            high=4.0,
            conditions=(Condition("imbalance.lds.enabled", (True,)),),
        ),
        Dimension("train.lr", "loguniform", low=1e-4, high=1e-2),
    ],
)


@pytest.fixture(autouse=True)
def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def objective(params: dict) -> float:
    value = 10.0 + abs(params["train.lr"] - 2e-3) * 1e3
    if params.get("imbalance.lds.enabled"):
        value -= 1.0 / params["imbalance.lds.sigma"]
    return value


def sweep(study: optuna.Study, trials: int, complete_share: float, seed: int = 0) -> list[dict]:
    """``trials`` suggestions, two running at a time as in the sweeps; the older one is told
    COMPLETE (with ``complete_share`` odds) or PRUNED after two intermediate values."""
    draw = random.Random(seed)
    running: list[tuple[optuna.Trial, dict]] = []
    suggested = []
    for _ in range(trials):
        trial = study.ask()
        running.append((trial, SPACE(trial)))
        suggested.append(running[-1][1])
        if len(running) == 2:
            told, params = running.pop(0)
            value = objective(params)
            told.report(2 * value, 1)
            told.report(1.5 * value, 2)
            if draw.random() < complete_share:
                study.tell(told, value)
            else:
                study.tell(told, state=TrialState.PRUNED)
    return suggested


def bounded(recent: int = 250, seed: int = 0) -> BoundedHistoryTPESampler:
    return BoundedHistoryTPESampler(recent=recent, seed=seed, n_startup_trials=4)


def test_while_the_view_holds_every_trial_it_suggests_what_tpe_suggests() -> None:
    tpe = optuna.create_study(
        sampler=optuna.samplers.TPESampler(
            seed=0, n_startup_trials=4, multivariate=True, group=True
        )
    )
    ours = optuna.create_study(sampler=bounded())
    assert sweep(ours, 80, 0.2) == sweep(tpe, 80, 0.2)


@pytest.mark.slow
@pytest.mark.parametrize("complete_share", [0.02, 0.3])
def test_the_good_set_and_the_groups_are_those_of_the_whole_study(complete_share: float) -> None:
    """With few COMPLETE trials TPE's good set takes the pruned trials that got furthest; with
    many, the best COMPLETE ones: either way the view must hold them all."""
    sampler = bounded()
    study = optuna.create_study(sampler=sampler)
    sweep(study, 600, complete_share)
    trial = study.ask()
    frozen = study._storage.get_trial(trial._trial_id)
    view = sampler.view(study, frozen)
    everything = study.get_trials(deepcopy=False)
    numbers = [t.number for t in view]
    assert numbers == sorted(numbers)
    assert len(view) <= sampler.recent + 2 * ELITE + len(sampler.running)
    assert {t.number for t in everything[-sampler.recent :]} <= set(numbers)
    assert {t.number for t in everything if t.state == TrialState.RUNNING} <= set(numbers)

    def good(trials: list[optuna.trial.FrozenTrial]) -> list[int]:
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        below, _ = _split_trials(study, finished, default_gamma(len(finished)))
        return [t.number for t in below]

    assert good(view) == good(everything)
    assert len(good(view)) == ELITE

    optuna_groups = _GroupDecomposedSearchSpace(include_pruned=True).calculate(study)
    ours = sampler._group_decomposed_search_space.calculate(study)
    assert {frozenset(g) for g in ours.search_spaces} == {
        frozenset(g) for g in optuna_groups.search_spaces
    }


@pytest.mark.slow
def test_a_pickled_sampler_continues_exactly_where_it_was() -> None:
    """Ray pickles the searcher (study and sampler together) at every experiment save and a
    resumed sweep continues from that pickle."""
    study = optuna.create_study(sampler=bounded())
    sweep(study, 300, 0.2)
    copy = pickle.loads(pickle.dumps(study))
    assert sweep(copy, 30, 0.2, seed=1) == sweep(study, 30, 0.2, seed=1)


def test_a_view_smaller_than_tpe_s_good_set_needs_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 250"):
        bounded(recent=100)
