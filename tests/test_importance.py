"""Parameter importances of a sweep, read from trial records built here (real Optuna): one
knob decides the objective and comes first, shares sum to 1 over searched knobs only, the rung
reading counts the trials ASHA stopped and names its epoch, and too few trials give no reading.
(importance.md of a real sweep, through ``dirsearch report``: tests/test_sweep.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sweep_helpers import TINY_SWEEP, write_space
from trial_helpers import merged

from dirsearch.sweep.importance import MIN_TRIALS, importance_markdown, importance_readings
from dirsearch.sweep.records import DIVERGED_SENTINEL, TrialRecord
from dirsearch.sweep.spec import SweepSpec
from dirsearch.sweep.spec_reader import load_sweep_spec
from dirsearch.tracking.plots import importance_figure, save_png

METRIC = "val/few/mae"
LOSSES = ["l1", {"name": "focal_l1", "beta": 0.2, "gamma": 1.0}]
SPACE = merged(
    TINY_SWEEP,
    {"space": {"imbalance.lds.ks": {"int": [3, 9], "step": 2}, "train.loss": {"choice": LOSSES}}},
)
CONDITIONAL = ("imbalance.lds.enabled", "imbalance.lds.sigma")
"""Searched only with sqrt_inv (and LDS on): in some trials, not in all."""
LEARNING_RATES = [1.0e-3 * 10 ** (k / 11) for k in (7, 2, 10, 5, 0, 9, 3, 11, 6, 1, 8, 4)]
"""Twelve learning rates over the dimension's range, in an order unrelated to the other knobs."""


def spec_of(tmp_path: Path, **search: Any) -> SweepSpec:
    return load_sweep_spec(write_space(tmp_path, merged(SPACE, {"search": search})))


def overrides(index: int) -> dict[str, Any]:
    """Trial ``index``'s sampled values: every knob varies, the conditional ones when they hold."""
    sampled: dict[str, Any] = {
        "imbalance.reweight": ["none", "sqrt_inv"][index % 2],
        "imbalance.lds.ks": [3, 5, 7, 9][index // 2 % 4],
        "train.lr": LEARNING_RATES[index],
        "train.loss": LOSSES[index % 3 == 0],
    }
    if index % 2:
        sampled["imbalance.lds.enabled"] = index % 4 == 1
        if sampled["imbalance.lds.enabled"]:
            sampled["imbalance.lds.sigma"] = 0.5 + 0.25 * index
    return sampled


def record(number: int, sampled: dict[str, Any], values: list[float]) -> TrialRecord:
    """A trial that reported ``values`` of the objective, one per epoch from 1."""
    history = [
        {"epoch": epoch, "training_iteration": epoch, METRIC: value}
        for epoch, value in enumerate(values, start=1)
    ]
    return TrialRecord(number, f"t{number}", sampled, history)


def lr_decides(index: int, epochs: int, sign: float = 1.0) -> TrialRecord:
    """A trial whose objective is its learning rate alone (a little better each epoch)."""
    lr = LEARNING_RATES[index]
    values = [sign * (1000 * lr + 1 / epoch) for epoch in range(1, epochs + 1)]
    return record(index + 1, overrides(index), values)


def diverged(number: int) -> TrialRecord:
    """A trial that ran one epoch and diverged in its second (the trainer's last report)."""
    diverging = record(number, overrides(0), [9.0])
    diverging.history.append(
        {"epoch": 1, "training_iteration": 2, METRIC: DIVERGED_SENTINEL, "status": "diverged"}
    )
    return diverging


def check_lr_first(importances: dict[str, float]) -> None:
    assert next(iter(importances)) == "train.lr", importances
    assert sum(importances.values()) == pytest.approx(1.0)
    assert set(importances) == {"imbalance.reweight", "imbalance.lds.ks", "train.lr", "train.loss"}
    assert list(importances.values()) == sorted(importances.values(), reverse=True)


def test_the_knob_that_decides_the_objective_comes_first(tmp_path: Path) -> None:
    spec = spec_of(tmp_path)
    completed, rung = importance_readings([lr_decides(i, spec.epochs) for i in range(12)], spec)
    assert (completed.trials, completed.epoch, completed.no_reading) == (12, None, "")
    check_lr_first(completed.importances)
    assert completed.left_out == CONDITIONAL
    assert completed.importances["train.lr"] > 0.5
    assert (rung.trials, rung.epoch) == (12, spec.epochs)  # no trial stopped early
    check_lr_first(rung.importances)


def test_the_rung_reading_counts_stopped_trials_at_the_epoch_every_one_reached(
    tmp_path: Path,
) -> None:
    spec = spec_of(tmp_path)
    records = [lr_decides(i, spec.epochs if i < 5 else 2) for i in range(12)]
    records.append(diverged(13))  # ran fewer epochs, but does not pull the rung back to 1
    completed, rung = importance_readings(records, spec)
    assert completed.trials == 5 < MIN_TRIALS
    assert (completed.importances, completed.no_reading) == ({}, "too few trials (5) for a reading")
    assert (rung.trials, rung.epoch) == (12, 2)
    check_lr_first(rung.importances)
    text = importance_markdown(importance_readings(records, spec), spec)
    assert text.startswith(f"parameter importance for {METRIC} (min), PED-ANOVA\n")
    assert "completed, 5 trials at their best epoch" in text
    assert "too few trials (5) for a reading" in text
    assert "rung, 12 trials at epoch 2 (every scored trial, stopped ones too," in text
    assert "| knob | importance |\n|---|---|\n| train.lr | " in text
    assert "left out (conditional, not in every trial): imbalance.lds.enabled" in text


def test_a_maximised_objective_reads_as_the_minimised_negation(tmp_path: Path) -> None:
    spec = spec_of(tmp_path / "min")
    maximised = spec_of(tmp_path / "max", mode="max")
    low = importance_readings([lr_decides(i, spec.epochs) for i in range(12)], spec)
    high = importance_readings([lr_decides(i, spec.epochs, -1.0) for i in range(12)], maximised)
    assert high[0].importances == pytest.approx(low[0].importances)


def test_a_value_its_dimension_cannot_produce_leaves_the_trial_out(tmp_path: Path) -> None:
    spec = spec_of(tmp_path)
    records = [lr_decides(i, spec.epochs) for i in range(12)]
    records[3].overrides["train.lr"] = 0.5  # params.json edited: outside loguniform [1e-3, 1e-2]
    records[4].overrides["imbalance.reweight"] = "sqrt"  # and not one of the choices
    completed, _ = importance_readings(records, spec)
    assert completed.trials == 10
    check_lr_first(completed.importances)


def test_tied_trials_give_no_reading_instead_of_equal_shares(tmp_path: Path) -> None:
    spec = spec_of(tmp_path)
    records = [record(i + 1, overrides(i), [5.0] * spec.epochs) for i in range(12)]
    completed, _ = importance_readings(records, spec)
    assert completed.importances == {}
    assert completed.no_reading == "no knob sets the best trials apart: their values tie"


def test_the_plot_draws_a_bar_per_knob_and_says_why_a_reading_is_missing(
    tmp_path: Path,
) -> None:
    spec = spec_of(tmp_path)
    records = [lr_decides(i, spec.epochs if i < 5 else 2) for i in range(12)]
    readings = importance_readings(records, spec)
    figure = importance_figure(readings, METRIC)
    (axes,) = figure.axes
    assert [label.get_text() for label in axes.get_yticklabels()] == list(readings[1].importances)
    assert len(axes.patches) == 4  # the rung reading's four knobs, the first at the top
    assert axes.yaxis_inverted()
    legend = {text.get_text() for text in axes.get_legend().get_texts()}
    assert legend == {"rung, 12 trials at epoch 2", "completed: too few trials (5) for a reading"}
    assert save_png(figure, tmp_path / "importance.png").stat().st_size > 15_000


def test_without_a_scored_trial_neither_reading_claims_an_epoch(tmp_path: Path) -> None:
    spec = spec_of(tmp_path)
    readings = importance_readings([diverged(1), record(2, overrides(1), [])], spec)
    assert [reading.title for reading in readings] == ["completed, no trials", "rung, no trials"]
    assert {reading.no_reading for reading in readings} == {"too few trials (0) for a reading"}
