"""``resume`` logs to the tracking store named now (``--tracking-uri``, else
``MLFLOW_TRACKING_URI``, else the sweep folder's own sqlite file), never to the one the run map
in the folder names: whoever can write the folder must not be able to send the sweep's metrics
(and an ``MLFLOW_TRACKING_TOKEN``) to a server of their choice. A map naming another store is
refused in one line, before anything is sent anywhere.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sweep_helpers import TINY_SWEEP, write_space

from dirsearch.cli.main import main
from dirsearch.errors import ConfigError
from dirsearch.sweep.folder import RUN_MAP_FILE, SPEC_FILE
from dirsearch.sweep.spec import SweepSpec
from dirsearch.sweep.spec_reader import load_sweep_spec
from dirsearch.tracking.run_layout import start_sweep_runs
from dirsearch.tracking.run_map import RunMap


@pytest.fixture
def sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, SweepSpec, RunMap]:
    """A sweep folder whose runs are in its own store (no --tracking-uri, no environment)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = load_sweep_spec(write_space(tmp_path, TINY_SWEEP))
    folder = tmp_path / "runs" / "tiny"
    folder.mkdir(parents=True)
    (folder / SPEC_FILE).write_text(json.dumps(spec.to_dict()))
    return folder, spec, start_sweep_runs(spec, str(folder), None)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port on 127.0.0.1 that counts who connects (a server the map could name)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        yield server


def connections(server: socket.socket) -> int:
    count = 0
    while True:
        try:
            connection, _ = server.accept()
        except BlockingIOError:
            return count
        connection.close()
        count += 1


def rewrite_map(folder: Path, uri: str) -> None:
    runs = json.loads((folder / RUN_MAP_FILE).read_text())
    (folder / RUN_MAP_FILE).write_text(json.dumps({**runs, "tracking_uri": uri}))


@pytest.mark.parametrize("given_by", ["default", "environment"])
def test_resume_refuses_a_run_map_naming_another_store_and_sends_it_nothing(
    sweep: tuple[Path, SweepSpec, RunMap],
    listener: socket.socket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    given_by: str,
) -> None:
    folder, _, runs = sweep
    port = listener.getsockname()[1]
    rewrite_map(folder, f"http://mallory:hunter2@127.0.0.1:{port}")
    expected = runs.tracking_uri  # the folder's own sqlite file
    if given_by == "environment":
        expected = f"sqlite:///{tmp_path}/elsewhere.db"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", expected)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "the-token")
    capsys.readouterr()
    assert main(["resume", str(folder)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"dirsearch: error: {folder}: its MLflow runs are in ")
    assert f"http://mallory:***@127.0.0.1:{port}" in line and f"would log to {expected}" in line
    source = "MLFLOW_TRACKING_URI" if given_by == "environment" else "the default"
    assert f"(from {source}" in line and line.endswith("pass it as --tracking-uri")
    assert "hunter2" not in line and "the-token" not in line
    assert connections(listener) == 0  # nothing was sent to the store the map names
    assert not (tmp_path / "elsewhere.db").exists()


def test_resume_continues_in_the_recorded_store_when_the_uri_given_is_that_store(
    sweep: tuple[Path, SweepSpec, RunMap], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, spec, runs = sweep
    client = MlflowClient(runs.tracking_uri)
    client.set_terminated(runs.parent, "KILLED")
    # The default again: the folder's own store is the recorded one.
    assert start_sweep_runs(spec, str(folder), None) == runs
    assert client.get_run(runs.parent).info.status == "RUNNING"
    # A sweep tracked elsewhere resumes there when --tracking-uri (or the environment) says so,
    # and only then.
    other = f"sqlite:///{tmp_path}/other.db"
    other_client = MlflowClient(other)
    experiment = other_client.create_experiment("tiny")
    parent = other_client.create_run(experiment).info.run_id
    RunMap(other, experiment, parent).save(str(folder))
    with pytest.raises(ConfigError, match="its MLflow runs are in"):
        start_sweep_runs(spec, str(folder), None)
    assert start_sweep_runs(spec, str(folder), other).parent == parent
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    assert start_sweep_runs(spec, str(folder), None).parent == parent
    assert other_client.get_run(parent).info.status == "RUNNING"
