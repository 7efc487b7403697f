"""``best/<objective>`` on the trial runs (``RunLayout``): the best objective so far at every
step, the leaderboard's score of the trial, and what the page ``dirsearch ui`` prints sorts by.
MLflow sorts runs by a metric's last value, and a trial's last epoch is not always its best.

A real sqlite store made as ``dirsearch run`` makes it, and real (unstarted) Ray Trials; the
results are the ones the Tune callback hands the layout, with crafted values: a real tiny sweep
(``test_tracking``) rarely has a trial whose last epoch is worse than its best.
"""

from __future__ import annotations

import math
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from mlflow.tracking import MlflowClient
from ray.train._internal.storage import StorageContext
from ray.tune.experiment import Trial
from sweep_helpers import TINY_SWEEP, write_space
from trial_helpers import merged

from dirsearch.sweep.leaderboard import ranked
from dirsearch.sweep.records import TrialRecord
from dirsearch.sweep.spec_reader import load_sweep_spec
from dirsearch.tracking.run_layout import ResultBatch, RunLayout, best_metric, start_sweep_runs
from dirsearch.tracking.runs_page import runs_page

OBJECTIVE = "val/few/mae"


def sweep_layout(tmp_path: Path, mode: str) -> RunLayout:
    spec = load_sweep_spec(write_space(tmp_path, merged(TINY_SWEEP, {"search": {"mode": mode}})))
    folder = str(tmp_path / "sweep")
    start_sweep_runs(spec, folder, None)
    return RunLayout(spec, folder)


def started_trial(layout: RunLayout, number: int) -> Trial:
    storage = StorageContext(
        storage_path=layout.folder, experiment_dir_name="sweep", trial_dir_name=f"t{number}"
    )
    trial = Trial(
        "train_configuration",
        config={"train.lr": 0.001 * number},
        trial_id=f"trial{number}",
        experiment_tag=f"{number}_lr={0.001 * number}",
        stub=True,
        storage=storage,
    )
    layout.create_child(trial)
    return trial


def report(layout: RunLayout, trial: Trial, rows: list[dict]) -> None:
    for row in rows:
        result = {"status": "running", **row}
        batch = ResultBatch.of(result, row["epoch"], 1000 + row["epoch"], OBJECTIVE)
        layout.log_result(trial.trial_id, batch)


def logged_best(layout: RunLayout, trial: Trial) -> list[tuple[int, float]]:
    run_id = layout.runs.trials[trial.trial_id]
    history = layout.client.get_metric_history(run_id, best_metric(OBJECTIVE))
    return [(metric.step, metric.value) for metric in history]


def curve(values: list[float]) -> list[dict]:
    """Reports of ``values`` of the objective, one per epoch (``train/loss`` tells a reopened
    run's last step)."""
    return [
        {"epoch": epoch, "train/loss": 1.0, OBJECTIVE: value}
        for epoch, value in enumerate(values, start=1)
    ]


@pytest.fixture(autouse=True)
def sweep_folder_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the sweep folder's own sqlite


def test_each_step_logs_the_best_so_far_and_unscored_reports_do_not_count(tmp_path) -> None:
    layout = sweep_layout(tmp_path, "min")
    trial = started_trial(layout, 1)
    rows = [
        *curve([5.0, 3.0, 6.0]),
        {"epoch": 4, OBJECTIVE: math.nan},
        {"epoch": 5, OBJECTIVE: 0.5, "status": "diverged"},  # the leaderboard ignores it too
    ]
    report(layout, trial, rows)
    assert logged_best(layout, trial) == [(1, 5.0), (2, 3.0), (3, 3.0), (4, 3.0), (5, 3.0)]
    record = TrialRecord(1, trial.trial_id, {}, rows)
    assert logged_best(layout, trial)[-1][1] == record.score(OBJECTIVE, "min")


@pytest.mark.parametrize(
    ("mode", "curves"),
    [
        # best 3 (last 6), best 4 (last 4), best 4.5: by the last epoch the order would be 2, 1, 3
        ("min", [[5.0, 3.0, 6.0], [4.0, 4.0], [4.5]]),
        ("max", [[5.0, 9.0, 2.0], [6.0, 8.0], [7.0]]),
    ],
)
def test_the_runs_page_sorts_the_trial_runs_as_the_leaderboard(tmp_path, mode, curves) -> None:
    layout = sweep_layout(tmp_path, mode)
    records = []
    for number, values in enumerate(curves, start=1):
        trial = started_trial(layout, number)
        report(layout, trial, curve(values))
        records.append(TrialRecord(number, trial.trial_id, {}, curve(values)))
    # The store's sort by the page's orderByKey and orderByAsc, as the UI asks for it.
    page = runs_page("http://127.0.0.1:1", layout.runs.experiment_id, layout.spec.search)
    query = dict(parse_qsl(urlsplit(page).fragment.partition("?")[2]))
    direction = "ASC" if query["orderByAsc"] == "true" else "DESC"
    client = MlflowClient(layout.runs.tracking_uri)
    listed = client.search_runs(
        [layout.runs.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{layout.runs.parent}'",
        order_by=[f"{query['orderByKey']} {direction}"],
    )
    leaderboard = [record.trial_id for record in ranked(records, OBJECTIVE, mode)]
    assert (
        [run.data.tags["dirsearch.trial_id"] for run in listed]
        == leaderboard
        == [
            "trial1",
            "trial2",
            "trial3",
        ]
    )


def test_a_restarted_driver_keeps_the_best_of_the_reopened_run(tmp_path) -> None:
    layout = sweep_layout(tmp_path, "min")
    trial = started_trial(layout, 1)
    report(layout, trial, curve([5.0, 3.0]))
    restarted = RunLayout(layout.spec, layout.folder)  # the callback Ray unpickles on resume
    restarted.reopen(trial)
    report(restarted, trial, curve([5.0, 3.0, 6.0, 4.0]))  # epochs after the checkpoint again
    assert logged_best(restarted, trial) == [(1, 5.0), (2, 3.0), (3, 3.0), (4, 3.0)]
