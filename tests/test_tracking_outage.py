"""A tracking server that goes away mid-sweep and comes back: training goes on, and once the
server is back every result is logged, once.

A real ``mlflow server`` process is killed (SIGKILL: no goodbye, a request may be cut short)
while ``dirsearch run --tracking-uri`` trains, and restarted on the same port and store once
more epochs have been reported without it. A tiny trial takes about a second and a server
start up to a minute, so the server may come back only after the last trial, while the driver
still waits for its queue to drain: the end state must be complete either way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sweep_helpers import TINY_SWEEP, cli, reported_epochs, write_space
from trial_helpers import merged

from dirsearch.sweep.records import read_trials
from dirsearch.tracking.run_map import RunMap
from dirsearch.tracking.server import free_port, start_server, stop_server, wait_ready


def results(folder: Path) -> int:
    return sum(len(epochs) for epochs in reported_epochs(folder).values())


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 300
    while not condition():
        assert process.poll() is None, f"the sweep ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.mark.slow
def test_server_stopped_and_restarted_mid_sweep_loses_nothing(tmp_path: Path) -> None:
    space = write_space(
        tmp_path, merged(TINY_SWEEP, {"train": {"epochs": 8}, "search": {"num_samples": 10}})
    )
    store, artifacts = f"sqlite:///{tmp_path}/server.db", str(tmp_path / "artifacts")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(store, port, artifacts=artifacts, log=tmp_path / "server.log")
    folder = tmp_path / "runs" / "outage"
    command = cli("run", str(space), "--storage", str(folder.parent), "--name", folder.name)
    log = tmp_path / "driver.log"
    driver = None
    try:
        wait_ready(server, url)
        with log.open("w") as output:
            driver = subprocess.Popen(
                [*command, "--tracking-uri", url],
                env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: results(folder) >= 2, driver, "two results")
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        down_at = results(folder)
        wait_for(lambda: results(folder) >= down_at + 3, driver, "results without MLflow")
        server = start_server(store, port, artifacts=artifacts, log=tmp_path / "server.log")
        wait_ready(server, url)
        assert driver.wait(timeout=600) == 0, log.read_text()[-3000:]
        output = log.read_text()
        assert "MLflow unreachable" in output and "MLflow reachable again" in output

        runs = RunMap.load(str(folder))
        client = MlflowClient(url)
        records = {record.trial_id: record for record in read_trials(str(folder))}
        everything = client.search_runs([runs.experiment_id])
        assert len(everything) == len(records) + 1 == 11  # nothing created twice
        assert {run.info.status for run in everything} == {"FINISHED"}
        for run in everything:
            if run.info.run_id == runs.parent:
                continue
            record = records[run.data.tags["dirsearch.trial_id"]]
            for key in ("train/loss", "val/few/mae"):
                history = client.get_metric_history(run.info.run_id, key)
                assert sorted((m.step, m.value) for m in history) == [
                    (row["epoch"], row[key]) for row in record.history
                ], (key, record.number)
            assert len(run.data.params) > 10
        parent = client.get_run(runs.parent)
        assert "test/few/mae" in parent.data.metrics
        assert {Path(a.path).name for a in client.list_artifacts(runs.parent)} >= {
            "leaderboard.md",
            "plots",
        }
        # The model is the parent's LoggedModel (listed under runs:/<parent>/model), made once.
        models = client.search_logged_models([runs.experiment_id])
        assert [(m.name, m.source_run_id, str(m.status)) for m in models] == [
            ("model", runs.parent, "READY")
        ]
        assert "MLmodel" in {a.path for a in client.list_logged_model_artifacts(models[0].model_id)}
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()
        stop_server(server)
