"""``dirsearch ui SWEEP_DIR --port N`` as a user runs it: a real ``mlflow server`` subprocess.

The sweep folder is made the way ``dirsearch run`` makes it before Ray starts
(``start_sweep_runs``: a sqlite store in the folder, the experiment, the parent run, the run
map; and ``sweep.json``), so the test needs no sweep.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from sweep_helpers import TINY_SWEEP, cli, write_space

from dirsearch.sweep.folder import SPEC_FILE, write_text
from dirsearch.sweep.spec_reader import load_sweep_spec
from dirsearch.tracking.run_layout import start_sweep_runs
from dirsearch.tracking.runs_page import runs_page
from dirsearch.tracking.server import HOST, free_port


def lines_of(process: subprocess.Popen) -> queue.Queue:
    """The process's stdout lines, read by a thread so the test can wait with a deadline."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return lines


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def port_is_free(port: int) -> bool:
    """Bindable the way a server binds (SO_REUSEADDR: the closed connections' TIME_WAIT
    entries stay for a minute) and nobody listening."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    with socket.socket() as client:
        return client.connect_ex((HOST, port)) != 0


def child_pids(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_ui_serves_the_sweep_store_and_stops_on_ctrl_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = write_space(tmp_path, TINY_SWEEP)
    folder = str(tmp_path / "sweep")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the sweep folder's own store
    spec = load_sweep_spec(space)
    runs = start_sweep_runs(spec, folder, None)
    write_text(f"{folder}/{SPEC_FILE}", json.dumps(spec.to_dict()))
    port = free_port()
    ui = subprocess.Popen(
        cli("ui", folder, "--port", str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    servers: list[int] = []
    try:
        lines = lines_of(ui)
        printed = lines.get(timeout=240)
        url = f"http://{HOST}:{port}"
        assert printed == f"MLflow UI: {runs_page(url, runs.experiment_id, spec.search)}"
        experiment = get_json(
            f"{url}/api/2.0/mlflow/experiments/get?experiment_id={runs.experiment_id}"
        )
        assert experiment["experiment"]["name"] == "tiny"
        parent = get_json(f"{url}/api/2.0/mlflow/runs/get?run_id={runs.parent}")
        assert parent["run"]["info"]["run_name"] == "sweep"
        with urllib.request.urlopen(f"{url}/", timeout=10) as page:  # the UI itself
            assert b"<html" in page.read().lower()
        servers += child_pids(ui.pid)  # the mlflow server leads its own process group
        assert servers and all(group_alive(pid) for pid in servers)
        ui.send_signal(signal.SIGINT)
        assert ui.wait(timeout=60) == 0
        assert not any(group_alive(pid) for pid in servers), "the server outlived dirsearch ui"
    finally:
        if ui.poll() is None:
            ui.kill()
            ui.wait()
        for pid in servers:  # whatever the test found, no server is left behind
            if group_alive(pid):
                os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not port_is_free(port) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert port_is_free(port)
