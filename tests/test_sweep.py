"""Sweeps end to end on a real local Ray with real Optuna: ASHA stops trials and Optuna hears
PRUNED, conditions hold in every trial, a diverging trial does not stall the study, repeats
and confirm train the seeds they promise, and report reads the folder. (A SIGKILLed driver's
sweep resuming with every trial once: tests/test_tracking_resume.py.)"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from optuna.trial import TrialState
from sweep_helpers import TINY_SWEEP, local_ray, write_space
from trial_helpers import merged

from dirsearch.cli.main import main
from dirsearch.sweep.records import DIVERGED_SENTINEL, read_trials
from dirsearch.sweep.spec_reader import load_sweep_spec
from dirsearch.tune.runner import run

pytestmark = pytest.mark.slow

FEATURES: dict[str, Any] = merged(
    TINY_SWEEP,
    {
        "search": {
            "repeats": 2,
            "confirm": {"top_k": 1, "seeds": 2},
            # The first start point diverges at its first batch; the second is plain training.
            "points": [
                {"imbalance.reweight": "none", "train.divergence_limit": 1.0e-3},
                {"imbalance.reweight": "sqrt_inv", "imbalance.lds.enabled": True},
            ],
        },
        "space": {"train.divergence_limit": {"choice": [1.0e6, 1.0e-3]}},
    },
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str, list[str]]:
    """One sweep with every feature on: ASHA, a diverging trial, 2 repeats, confirm."""
    folder = tmp_path_factory.mktemp("sweep")
    space = write_space(folder, FEATURES)
    spec = load_sweep_spec(space)
    lines: list[str] = []
    with local_ray():
        outcome = run(spec, space.read_text(), str(folder / "run"), say=lines.append)
    return spec, outcome, lines


def optuna_trials(folder: str) -> dict[str, Any]:
    """Ray trial id -> Optuna's record of it, from the searcher state Ray saved in the folder."""
    (state,) = Path(folder).glob("searcher-state-*.pkl")
    saved = pickle.loads(state.read_bytes())  # the test's own sweep folder
    trials = saved["_ot_study"].trials
    return {ray_id: trials[trial.number] for ray_id, trial in saved["_ot_trials"].items()}


def test_sweep_finishes_with_leaderboard_and_table(finished: tuple) -> None:
    _spec, outcome, lines = finished
    assert outcome.finished
    folder = Path(outcome.folder)
    for name in ("sweep.json", "space.yaml", "leaderboard.md", "leaderboard.csv", "results.md"):
        assert (folder / name).is_file(), name
    assert "| MAE |" in outcome.table and "±" in outcome.table
    assert any(line.startswith("sweep tiny: 6 trials") for line in lines)


def test_asha_stops_trials_and_optuna_records_them_pruned(finished: tuple) -> None:
    spec, outcome, _ = finished
    records = read_trials(outcome.folder)
    assert len(records) == 6
    statuses = {r.number: r.status(spec.epochs) for r in records}
    stopped = [n for n, s in statuses.items() if s.startswith("stopped at epoch")]
    assert stopped, statuses
    states = optuna_trials(outcome.folder)
    assert set(states) == {r.trial_id for r in records}
    for number, status in statuses.items():
        record = next(r for r in records if r.number == number)
        trial = states[record.trial_id]
        if status.startswith("stopped"):
            assert trial.state == TrialState.PRUNED, (number, status)
            # The epochs it ran are in Optuna as intermediate values, step = epoch.
            assert sorted(trial.intermediate_values) == list(range(1, record.epochs + 1))
        elif status == "completed":
            assert trial.state == TrialState.COMPLETE
            assert trial.value == pytest.approx(record.score(spec.search.objective, "min"))
        else:
            assert status.startswith("diverged")
            assert (trial.state, trial.value) == (TrialState.COMPLETE, DIVERGED_SENTINEL)
    assert not [t for t in states.values() if t.state == TrialState.RUNNING]


def test_a_diverging_trial_is_marked_and_the_sweep_goes_on(finished: tuple) -> None:
    spec, outcome, lines = finished
    records = read_trials(outcome.folder)
    first = next(r for r in records if r.number == 1)
    assert first.overrides["train.divergence_limit"] == 1.0e-3
    assert first.status(spec.epochs) == "diverged at epoch 1"
    assert first.history[-1]["message"].startswith("training diverged at epoch 1, batch 1")
    assert any("trial 1 diverged at epoch 1" in line for line in lines)
    assert sum(r.status(spec.epochs) == "completed" for r in records) >= 1


def test_conditional_dimensions_appear_only_when_their_condition_holds(finished: tuple) -> None:
    _, outcome, _ = finished
    for record in read_trials(outcome.folder):
        config = record.overrides
        assert ("imbalance.lds.enabled" in config) == (config["imbalance.reweight"] == "sqrt_inv")
        assert ("imbalance.lds.sigma" in config) == config.get("imbalance.lds.enabled", False)


def test_repeats_train_each_configuration_with_the_promised_seeds(finished: tuple) -> None:
    spec, outcome, _ = finished
    completed = [r for r in read_trials(outcome.folder) if r.status(spec.epochs) == "completed"]
    record = completed[0]
    trial_folder = next(Path(outcome.folder).glob(f"trial_{record.number:04d}_*"))
    last = sorted(trial_folder.glob("checkpoint_*"))[-1]
    states = [torch.load(last / f"seed_{k}" / "state.pt", weights_only=True) for k in range(2)]
    assert [state["config"]["seed"] for state in states] == [0, 1]
    # The reported metric is the mean of the two seeds' epochs.
    for epoch, row in enumerate(record.history):
        seeds = [state["history"][epoch]["val/few/mae"] for state in states]
        assert row["val/few/mae"] == pytest.approx(sum(seeds) / 2)
    assert seeds[0] != seeds[1]  # different seeds really trained differently


def test_confirm_retrains_the_winner_with_fresh_seeds(finished: tuple) -> None:
    _spec, outcome, _lines = finished
    confirmed = read_trials(f"{outcome.folder}/confirm")
    assert sorted(r.overrides["seed"] for r in confirmed) == [2, 3]  # 0, 1 served the search
    winner = {k: v for k, v in confirmed[0].overrides.items() if k != "seed"}
    assert all({k: v for k, v in r.overrides.items() if k != "seed"} == winner for r in confirmed)
    assert all("test/few/mae" in r.history[-1] for r in confirmed)
    results = (Path(outcome.folder) / "results.md").read_text()
    assert results.startswith("confirmed winner (") and "mean ± std over 2 seeds" in results
    assert (Path(outcome.folder) / "confirm.md").is_file()


def test_report_reads_a_finished_sweep_without_ray(
    finished: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    _, outcome, _ = finished
    assert main(["report", outcome.folder]) == 0
    out = capsys.readouterr().out
    assert "leaderboard (by val/few/mae):" in out
    assert "| rank | trial | status |" in out
    assert "confirmed winner (" in out and "| MAE |" in out


def test_importance_is_written_at_the_end_and_reported(
    finished: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    _, outcome, _ = finished
    text = (Path(outcome.folder) / "importance.md").read_text()
    assert text.startswith("parameter importance for val/few/mae (min), PED-ANOVA\n")
    assert "\ncompleted, " in text and "\nrung, " in text and " trials at epoch " in text
    assert text.count("too few trials (") == 2  # 6 trials, one diverging at once: under 8
    assert main(["report", outcome.folder]) == 0
    assert text.rstrip() in capsys.readouterr().out


def test_grid_runs_each_point_once(tmp_path: Path) -> None:
    grid = merged(
        TINY_SWEEP, {"search": {"searcher": {"name": "grid"}, "scheduler": {"name": "fifo"}}}
    )
    del grid["search"]["num_samples"]
    grid["space"] = {"imbalance.reweight": {"choice": ["none", "sqrt_inv"]}}
    space = write_space(tmp_path, grid)
    with local_ray():
        outcome = run(load_sweep_spec(space), space.read_text(), str(tmp_path / "g"))
    records = read_trials(outcome.folder)
    assert sorted(r.overrides["imbalance.reweight"] for r in records) == ["none", "sqrt_inv"]
    assert all(r.epochs == 4 for r in records)
