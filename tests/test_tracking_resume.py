"""A SIGKILLed ``dirsearch run`` followed by ``dirsearch resume`` continues the same MLflow runs.

The driver dies mid-sweep with its parent and child runs RUNNING and some epochs logged; the
resumed sweep must reuse the parent and every child (one run per trial, no metric step logged
twice, every epoch Ray recorded present) and end with nothing RUNNING.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sweep_helpers import TINY_SWEEP, cli, kill_when, reported_epochs, write_space
from trial_helpers import merged

from dirsearch.sweep.folder import load_spec
from dirsearch.sweep.records import read_trials
from dirsearch.tracking.run_layout import flat_params
from dirsearch.tracking.run_map import RunMap


def logged_steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(metric.step for metric in client.get_metric_history(run_id, key))


@pytest.mark.slow
def test_resume_after_sigkill_reuses_the_parent_and_child_runs(tmp_path: Path) -> None:
    space = write_space(
        tmp_path, merged(TINY_SWEEP, {"train": {"epochs": 6}, "search": {"num_samples": 6}})
    )
    folder = tmp_path / "runs" / "killed"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("MLFLOW_TRACKING_URI", None)  # the default store: sqlite in the sweep folder
    driver = subprocess.Popen(
        cli("run", str(space), "--storage", str(tmp_path / "runs"), "--name", "killed"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kill_when(driver, lambda: sum(map(len, reported_epochs(folder).values())) >= 5, timeout=240)
    before = reported_epochs(folder)
    runs = RunMap.load(str(folder))
    assert runs is not None and runs.trials, "no child run was made before the kill"
    client = MlflowClient(runs.tracking_uri)
    assert client.get_run(runs.parent).info.status == "RUNNING"  # the crash left it open
    time.sleep(3)  # Ray's reaper stops the orphaned workers
    resumed = subprocess.run(
        cli("resume", str(folder)), env=env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    after = RunMap.load(str(folder))
    assert after.parent == runs.parent and after.tracking_uri == runs.tracking_uri
    # No trial got a new run (a ghost trial's run is dropped, see below).
    assert all(after.trials[k] == v for k, v in runs.trials.items() if k in after.trials)
    # A trial the driver started after Ray's last state save is lost to the resumed sweep
    # (it runs another in its place): only trials with results count.
    records = {r.trial_id: r for r in read_trials(str(folder)) if r.history}
    everything = client.search_runs([runs.experiment_id])
    assert len(everything) == len(records) + 1 == 7  # one parent, one child per trial
    assert Counter(run.info.status for run in everything) == {"FINISHED": 7}
    kids = [run for run in everything if run.info.run_id != runs.parent]
    assert {run.data.tags["mlflow.parentRunId"] for run in kids} == {runs.parent}
    assert sorted(run.data.tags["dirsearch.trial_id"] for run in kids) == sorted(records)
    spec = load_spec(str(folder))
    for run in kids:
        record = records[run.data.tags["dirsearch.trial_id"]]
        epochs = [int(row["epoch"]) for row in record.history]
        for key in ("train/loss", "val/few/mae", "lr"):
            assert logged_steps(client, run.info.run_id, key) == epochs, (key, record.number)
        assert run.data.params == flat_params(spec.trial_config(record.overrides).to_dict())
        status = record.status(spec.epochs)
        assert run.data.tags["status"] == status
    parent = client.get_run(runs.parent)
    assert "test/few/mae" in parent.data.metrics
    # Finished trials are kept as they were and running ones continue. An epoch reported after
    # Ray's last state save is trained again from the checkpoint before it (Ray's result.json
    # then holds it twice); the sweep's record of every trial has each epoch once.
    once = {f"trial_{r.number:04d}_{r.trial_id}": r for r in read_trials(str(folder))}
    for name, epochs in reported_epochs(folder).items():
        assert [int(row["epoch"]) for row in once[name].history] == sorted(set(epochs))
        assert sorted(set(epochs)) == list(range(1, max(epochs) + 1)), (name, epochs)
        finished_before = len(before.get(name, [])) == spec.epochs
        assert not finished_before or epochs == before[name], (name, epochs)
    assert "dirsearch report" in resumed.stdout and (folder / "results.md").is_file()
    assert json.loads((folder / "mlflow_runs.json").read_text())["parent"] == runs.parent
