"""A sweep with two objectives end to end, on a real local Ray with real Optuna and a real
sqlite MLflow store: multi-objective TPE goes on past ASHA-stopped (PRUNED) trials, the
leaderboard's Pareto column is the front brute force finds, and the front's tables and plot
exist."""

from __future__ import annotations

import csv
import pickle
import subprocess
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState
from sweep_helpers import TINY_SWEEP, cli, write_space
from test_pareto import dominated_by_brute_force
from trial_helpers import merged

from dirsearch.sweep.records import read_trials
from dirsearch.sweep.statuses import COMPLETED

pytestmark = pytest.mark.slow

OBJECTIVES = ["val/few/mae", "val/all/mae"]
TWO_OBJECTIVES: dict[str, Any] = merged(
    TINY_SWEEP,
    {
        "experiment": "two",
        "search": {
            "metric": OBJECTIVES,
            "mode": ["min", "min"],
            "num_samples": 8,
            "searcher": {"name": "optuna", "seed": 0, "startup_trials": 3},
            "points": [{"imbalance.reweight": "none"}],  # vanilla training
        },
    },
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("two")
    space = write_space(root, TWO_OBJECTIVES)
    command = cli("run", str(space), "--storage", str(root / "runs"), "--name", "two")
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return root / "runs" / "two"


def test_the_leaderboard_marks_exactly_the_front_brute_force_finds(folder: Path) -> None:
    epochs = TWO_OBJECTIVES["train"]["epochs"]
    records = {str(r.number): r for r in read_trials(str(folder))}
    with open(folder / "leaderboard.csv") as file:
        rows = list(csv.DictReader(file))
    assert {*OBJECTIVES, "pareto"} <= set(rows[0])
    full = [row for row in rows if records[row["trial"]].status(epochs) == COMPLETED]
    assert len(full) >= 2, rows
    values = []
    for row in full:
        best = records[row["trial"]].best(OBJECTIVES[0], "min")  # the epoch both are read at
        values.append(tuple(best[metric] for metric in OBJECTIVES))
        assert [float(row[metric]) for metric in OBJECTIVES] == pytest.approx(values[-1])
    dominated = dominated_by_brute_force(values, ("min", "min"))
    expected = [str(i not in dominated) for i in range(len(full))]
    assert [row["pareto"] for row in full] == expected
    stopped = [row for row in rows if row not in full]
    assert all(row["pareto"] == "False" for row in stopped)


def test_stopped_trials_reached_the_multi_objective_study_as_pruned(folder: Path) -> None:
    (state,) = folder.glob("searcher-state-*.pkl")
    saved = pickle.loads(state.read_bytes())  # the test's own sweep folder
    study = saved["_ot_study"]
    assert len(study.directions) == 2
    told = {ray_id: study.trials[t.number] for ray_id, t in saved["_ot_trials"].items()}
    epochs = TWO_OBJECTIVES["train"]["epochs"]
    records = read_trials(str(folder))
    assert len(told) == len(records) == 8  # TPE suggested the 5 after its 3 start-up trials
    for record in records:
        trial = told[record.trial_id]
        if record.status(epochs) == COMPLETED:
            best = record.best(OBJECTIVES[0], "min")
            assert trial.state == TrialState.COMPLETE
            assert trial.values == pytest.approx([best[metric] for metric in OBJECTIVES])
        else:
            assert (trial.state, trial.values) == (TrialState.PRUNED, None), record.number
    assert any(trial.state == TrialState.PRUNED for trial in told.values())


def test_the_front_has_its_test_tables_and_its_plot(folder: Path) -> None:
    with open(folder / "leaderboard.csv") as file:
        optimal = {row["trial"] for row in csv.DictReader(file) if row["pareto"] == "True"}
    with open(folder / "pareto.csv") as file:
        tested = list(csv.DictReader(file))
    assert 1 <= len(tested) <= 5
    assert {row["trial"] for row in tested} <= optimal
    assert all(float(row["test/few/mae"]) > 0 for row in tested)
    text = (folder / "pareto.md").read_text()
    assert text.startswith("Pareto front over val/few/mae, val/all/mae")
    assert (folder / "plots" / "pareto_front.png").stat().st_size > 10_000
