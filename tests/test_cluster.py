"""dirsearch on a real multi-node Ray cluster (separate ``ray start`` process groups on this
machine, token authentication on): trials spread over the nodes, a lost node's trial continues
from its last checkpoint on another node with nothing recorded twice.

The measured times are printed (run with ``-s`` to see them); timing is never asserted."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import LocalCluster, free_port
from mlflow.tracking import MlflowClient
from pyarrow import fs as pafs
from sweep_helpers import TINY_SWEEP, cli, kill_when, write_space
from trial_helpers import merged

from dirsearch.sweep.folder import read_text
from dirsearch.sweep.records import read_trials

pytestmark = pytest.mark.slow

WORKER_IP = "127.0.0.2"
SLOWER: dict[str, Any] = merged(
    TINY_SWEEP,
    {
        # Epochs of about 1.5 s: sub-second trials all go to the first (reused) trial actor
        # before a second node has started its worker, and finish before a kill lands.
        "data": {"scale": 1.0},
        "model": {"mlp_hidden": [256, 256]},
        "train": {"epochs": 6, "batch_size": 16},
        "search": {"num_samples": 4, "scheduler": {"name": "fifo"}},
    },
)


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster()
    try:
        yield cluster
    finally:
        cluster.stop()


def results(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Trial folder name -> every result Ray recorded for it, in order."""
    return {
        trial.name: [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        for trial in sorted(folder.glob("trial_*"))
        if (trial / "result.json").is_file()
    }


def run_sweep(cluster: LocalCluster, space: Path, storage: Path, **popen: Any) -> Any:
    command = cli("run", str(space), "--address", cluster.address, "--storage", str(storage))
    return subprocess.Popen([*command, "--name", "sweep"], env=cluster.env, **popen)


def test_trials_run_on_every_node_of_a_multi_node_cluster(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_head(cpus=1)
    cluster.add_worker(WORKER_IP, cpus=1)
    space = write_space(tmp_path, SLOWER)
    driver = run_sweep(cluster, space, tmp_path / "runs", stdout=subprocess.PIPE, text=True)
    out, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, out[-3000:]
    folder = tmp_path / "runs" / "sweep"
    ran = results(folder)
    assert len(ran) == 4
    nodes = {row["node_ip"] for rows in ran.values() for row in rows}
    assert WORKER_IP in nodes and len(nodes) == 2, nodes  # the head and the worker
    assert (folder / "results.md").is_file()


def mlflow_steps(folder: Path) -> dict[str, list[int]]:
    """Trial id -> the epochs (steps) of its MLflow run's train/loss, as logged."""
    client = MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db")
    experiment = client.get_experiment_by_name(TINY_SWEEP["experiment"])
    runs = client.search_runs([experiment.experiment_id], "tags.`dirsearch.role` = 'trial'")
    return {
        run.data.tags["dirsearch.trial_id"]: [
            m.step for m in client.get_metric_history(run.info.run_id, "train/loss")
        ]
        for run in runs
    }


def test_a_lost_node_s_trial_continues_from_its_checkpoint_on_another_node(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_head(cpus=0)  # the coordinator runs no trials, as in jobs/
    worker = cluster.add_worker(WORKER_IP, cpus=1)
    epochs = 10
    spec = merged(SLOWER, {"train": {"epochs": epochs}, "search": {"num_samples": 2}})
    driver = run_sweep(cluster, write_space(tmp_path, spec), tmp_path / "runs")
    folder = tmp_path / "runs" / "sweep"
    try:
        lost = running_trial(folder, driver, epochs)
        worker.kill()
        killed = time.monotonic()
        cluster.add_worker("127.0.0.3", cpus=1)  # the replacement an autoscaler would start
        replaced = time.monotonic()
        while driver.poll() is None and not moved(results(folder)[lost]):
            time.sleep(0.2)
        recovered = time.monotonic()
        assert driver.wait(timeout=600) == 0
    finally:
        driver.kill()
    ran = results(folder)
    assert len(ran) == 2
    nodes = [(row["node_ip"], int(row["epoch"])) for row in ran[lost]]
    done = [epoch for ip, epoch in nodes if ip == WORKER_IP]
    again = [epoch for ip, epoch in nodes if ip == "127.0.0.3"]
    # Epochs 1..k on the lost node, then k' + 1..n on the new one, from the last checkpoint Ray
    # had registered (k' = k, or k - 1 when the node died between a report and its checkpoint).
    assert len(done) >= 2 and done == list(range(1, len(done) + 1)), nodes
    assert again and again[0] in (len(done), len(done) + 1), nodes
    assert again == list(range(again[0], epochs + 1)), nodes
    assert len(nodes) == len(done) + len(again), nodes
    print(
        f"\nlost trial {lost} after epoch {len(done)}: replacement node up after "
        f"{replaced - killed:.1f} s, epoch {again[0]} reported {recovered - killed:.1f} s "
        f"after the kill"
    )
    records = read_trials(str(folder))
    assert [r.status(epochs) for r in records] == ["completed", "completed"]
    for record in records:  # dirsearch's record of each trial: every epoch once
        assert [int(row["epoch"]) for row in record.history] == list(range(1, epochs + 1))
    leaderboard = (folder / "leaderboard.csv").read_text().splitlines()
    assert len(leaderboard) == 1 + 2
    steps = mlflow_steps(folder)
    assert sorted(steps) == sorted(r.trial_id for r in records)
    assert all(sorted(s) == list(range(1, epochs + 1)) for s in steps.values()), steps


def moved(rows: list[dict[str, Any]]) -> bool:
    return any(row["node_ip"] != WORKER_IP for row in rows)


def running_trial(folder: Path, driver: subprocess.Popen, epochs: int) -> str:
    """A trial in the middle of its training (at least 2 of ``epochs`` done)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None:
        for name, rows in results(folder).items():
            if 2 <= len(rows) <= epochs - 4:
                return name
        time.sleep(0.1)
    raise AssertionError("no trial was caught running")


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An S3-compatible server (moto) on 127.0.0.1 with an empty bucket; this process and its
    children reach it through the standard AWS variables (pyarrow, hence Ray, honour
    AWS_ENDPOINT_URL). Yields the bucket's URI."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for name, value in {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }.items():
            monkeypatch.setenv(name, value)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.2)
        system = pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True
        )
        system.create_dir("sweeps")
        yield "s3://sweeps"
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def experiment_trial_ids(uri: str) -> set[str]:
    """The trial ids in Ray's last saved experiment state of the sweep folder ``uri`` (a
    resumed sweep may leave one file per driver, named by its start time)."""
    system, path = pafs.FileSystem.from_uri(uri)
    state = max(
        info.path
        for info in system.get_file_info(pafs.FileSelector(path))
        if info.base_name.startswith("experiment_state-") and info.base_name.endswith(".json")
    )
    with system.open_input_stream(state) as stream:
        trials = json.loads(stream.read())["trial_data"]
    return {json.loads(trial)["trial_id"] for trial, _ in trials}


def bucket_files(uri: str) -> list[str]:
    system, path = pafs.FileSystem.from_uri(uri)
    selector = pafs.FileSelector(path, recursive=True)
    return [i.path for i in system.get_file_info(selector) if i.type == pafs.FileType.File]


def test_an_object_store_sweep_resumes_after_the_driver_is_killed(s3: str, tmp_path: Path) -> None:
    space = write_space(
        tmp_path, merged(TINY_SWEEP, {"train": {"epochs": 6}, "search": {"num_samples": 4}})
    )
    folder = f"{s3}/runs/killed"
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    run = cli("run", str(space), "--storage", f"{s3}/runs", "--name", "killed")
    driver = subprocess.Popen([*run, "--tracking-uri", tracking], env=env)
    kill_when(driver, lambda: sum(r.epochs for r in read_trials(folder)) >= 5, timeout=300)
    before = {r.trial_id: r.history for r in read_trials(folder)}
    time.sleep(3)  # Ray's reaper stops the orphaned workers
    resumed = subprocess.run(  # resume logs to the store named now: the same one
        cli("resume", folder, "--tracking-uri", tracking),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # The sweep's trials are those of Ray's experiment state: a trial the killed driver started
    # after Ray's last state save leaves a folder, and the resumed sweep runs another in its
    # place, under the same number (creation order) and a new id.
    ranked = {
        row["trial"] for row in csv.DictReader(io.StringIO(read_text(f"{folder}/leaderboard.csv")))
    }
    kept = experiment_trial_ids(folder)
    records = [record for record in read_trials(folder) if record.trial_id in kept]
    assert {str(record.number) for record in records} == ranked
    assert len(records) == len(ranked) == 4
    files = bucket_files(folder)
    for record in records:
        iterations = [row["training_iteration"] for row in record.history]
        assert iterations == list(range(1, len(iterations) + 1)), record.trial_id
        assert iterations[: len(before.get(record.trial_id, []))] == [
            row["training_iteration"] for row in before.get(record.trial_id, [])
        ]
        prefix = f"{folder.removeprefix('s3://')}/trial_{record.number:04d}_{record.trial_id}/"
        assert any(f.startswith(prefix) and f.endswith("/seed_0/state.pt") for f in files)
    for name in ("sweep.json", "leaderboard.md", "results.md"):
        assert f"{folder.removeprefix('s3://')}/{name}" in files
    print_upload_overhead(folder, files, tmp_path)


def print_upload_overhead(folder: str, files: list[str], tmp_path: Path) -> None:
    """One of the sweep's checkpoint folders copied 10 times to the bucket and to a local
    folder through pyarrow.fs.copy_files, as Ray persists checkpoints: the remote-storage
    overhead per checkpoint (printed, never asserted)."""
    checkpoint = next(f for f in files if "/checkpoint_" in f).rsplit("/seed_0/", 1)[0]
    source, local = f"s3://{checkpoint}", tmp_path / "checkpoint"
    pafs.copy_files(source, str(local))
    size = sum(p.stat().st_size for p in local.rglob("*") if p.is_file())
    times = {}
    for label, target in (("local", str(tmp_path / "copies")), ("s3", f"{folder}/copies")):
        start = time.perf_counter()
        for k in range(10):
            pafs.copy_files(str(local), f"{target}/{k}")
        times[label] = (time.perf_counter() - start) / 10
    print(
        f"\ncheckpoint of {size / 1e3:.0f} kB: local copy {times['local'] * 1e3:.1f} ms, "
        f"S3 upload {times['s3'] * 1e3:.1f} ms"
    )
