"""Real sweeps on a shared machine: a local sweep is reachable from this machine only, two
``run`` of one name give one sweep, and SIGTERM (``kill``, ``timeout``, SLURM) stops ``run`` and
``train`` as Ctrl-C does, the sweep resuming to the result of an uninterrupted one.

Each test runs the command line as subprocesses, as a user (or a scheduler) would.
"""

from __future__ import annotations

import csv
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sweep_helpers import TINY_SWEEP, cli, reported_epochs, write_space
from trial_helpers import TABULAR, merged

pytestmark = pytest.mark.slow

ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
ENV.pop("MLFLOW_TRACKING_URI", None)  # the default store: sqlite in the sweep folder


def start(arguments: list[str], log: Path) -> subprocess.Popen[bytes]:
    """``dirsearch ARGUMENTS`` in the background, stdout and stderr into ``log``.out/.err."""
    return subprocess.Popen(
        cli(*arguments),
        env=ENV,
        stdout=log.with_suffix(".out").open("wb"),
        stderr=log.with_suffix(".err").open("wb"),
    )


def wait_for(driver: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if driver.poll() is not None or time.monotonic() > deadline:
            driver.kill()
            driver.wait()
            pytest.fail("the sweep ended (or stalled) before the moment the test waits for")
        time.sleep(0.5)


def finish(driver: subprocess.Popen[bytes], log: Path, timeout: float = 900) -> tuple[int, str]:
    """The exit code and stderr of a background command, killed if it outlives ``timeout``."""
    try:
        driver.wait(timeout=timeout)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    return driver.returncode, log.with_suffix(".err").read_text()


def descendants(root: int) -> set[int]:
    """``root`` and every process below it (Ray's GCS, raylet, agents and workers)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found.update(children)
        frontier.extend(children)
    return found


def listening(pids: set[int]) -> list[tuple[str, str]]:
    """(process name, local address) of every TCP and UDP socket ``pids`` listen on."""
    assert shutil.which("ss"), "`ss` is needed for this test: apt-get install iproute2"
    found = []
    for protocol in ("-ltnpH", "-lunpH"):
        lines = subprocess.run(["ss", protocol], capture_output=True, text=True, check=True)
        for line in lines.stdout.splitlines():
            owners = {int(pid) for pid in re.findall(r"pid=(\d+)", line)} & pids
            for pid in owners:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
                found.append((name, line.split()[3]))
    return found


def is_loopback(address: str) -> bool:
    """``127.0.0.1:80``, ``[::1]:80``, ``[::ffff:127.0.0.1]:80``: yes; ``*:80``, ``0.0.0.0:80``,
    ``[::]:80`` or the machine's network address: no."""
    host = address.rsplit(":", 1)[0].strip("[]").split("%")[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:  # "*": every interface
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def test_a_local_sweep_listens_on_loopback_only(tmp_path: Path) -> None:
    """While trials run, no process of the sweep (the driver, Ray's GCS, raylet, agents, trial
    workers) listens on anything but loopback: `ss` shows no `*:port` of it."""
    space = write_space(
        tmp_path, merged(TINY_SWEEP, {"train": {"epochs": 3}, "search": {"num_samples": 2}})
    )
    folder = tmp_path / "runs" / "local"
    log = tmp_path / "driver"
    driver = start(["run", str(space), "--storage", str(folder.parent), "--name", "local"], log)
    wait_for(driver, lambda: any(reported_epochs(folder).values()), timeout=600)
    sockets = listening(descendants(driver.pid))
    code, stderr = finish(driver, log)
    assert code == 0, stderr[-3000:]
    names = {name for name, _ in sockets}
    assert {"gcs_server", "raylet"} <= names, sockets  # the check saw Ray's servers
    assert [(name, address) for name, address in sockets if not is_loopback(address)] == []


def test_two_runs_of_one_name_give_one_sweep_and_one_refusal(tmp_path: Path) -> None:
    space = write_space(
        tmp_path, merged(TINY_SWEEP, {"train": {"epochs": 2}, "search": {"num_samples": 2}})
    )
    storage = tmp_path / "runs"
    arguments = ["run", str(space), "--storage", str(storage), "--name", "same"]
    drivers = [start(arguments, tmp_path / f"driver{k}") for k in range(2)]
    outcomes = [finish(driver, tmp_path / f"driver{k}") for k, driver in enumerate(drivers)]
    assert sorted(code for code, _ in outcomes) == [0, 2], [err[-2000:] for _, err in outcomes]
    (refusal,) = [stderr for code, stderr in outcomes if code == 2]
    folder = storage / "same"
    assert refusal.count("\n") == 1 and "Traceback" not in refusal, refusal
    assert refusal.startswith(f"dirsearch: error: {folder}: already holds a sweep"), refusal
    with (folder / "leaderboard.csv").open() as table:
        assert len(list(csv.DictReader(table))) == 2  # one sweep of 2 trials, not two of them
    assert len(list(folder.glob("trial_*"))) == 2
    assert (folder / "results.md").is_file()


GRID: dict[str, Any] = {
    # 9 epochs: on a quiet machine 4 trials of 6 tiny epochs could all end before the SIGTERM.
    **merged(TINY_SWEEP, {"train": {"epochs": 9}}),
    "search": {
        "max_concurrent": 2,
        "resources": {"cpu": 1},
        "searcher": {"name": "grid"},
        "scheduler": {"name": "fifo"},
    },
    "space": {
        "imbalance.reweight": {"choice": ["none", "sqrt_inv"]},
        "train.lr": {"choice": [1.0e-3, 5.0e-3]},
    },
}
"""Four configurations, each trained for every epoch: a result that does not depend on when
the driver stopped."""


def by_configuration(folder: Path) -> dict[tuple[str, str], dict[str, str]]:
    """The leaderboard's rows by their sampled values, without rank and trial number."""
    with (folder / "leaderboard.csv").open() as table:
        rows = list(csv.DictReader(table))
    return {
        (row["imbalance.reweight"], row["train.lr"]): {
            key: value for key, value in row.items() if key not in ("rank", "trial")
        }
        for row in rows
    }


def test_a_sigtermed_sweep_resumes_to_the_result_of_an_uninterrupted_one(
    tmp_path: Path,
) -> None:
    from mlflow.tracking import MlflowClient

    from dirsearch.tracking.run_map import RunMap

    space = write_space(tmp_path, GRID)
    storage = tmp_path / "runs"
    whole = storage / "whole"
    driver = start(
        ["run", str(space), "--storage", str(storage), "--name", "whole"], tmp_path / "a"
    )
    code, stderr = finish(driver, tmp_path / "a")
    assert code == 0, stderr[-3000:]

    stopped = storage / "stopped"
    log = tmp_path / "b"
    driver = start(["run", str(space), "--storage", str(storage), "--name", "stopped"], log)
    wait_for(driver, lambda: sum(map(len, reported_epochs(stopped).values())) >= 2, timeout=600)
    driver.send_signal(signal.SIGTERM)  # what `kill`, `timeout` and SLURM send
    code, stderr = finish(driver, log, timeout=300)
    assert code == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    assert "SIGTERM received" not in stderr and "logging.cc" not in stderr  # no C++ dumps
    assert stderr.rstrip().splitlines()[-1] == (
        f"dirsearch: sweep stopped before it finished; continue with: dirsearch resume {stopped}"
    )
    assert not (stopped / "results.md").exists()
    runs = RunMap.load(str(stopped))
    assert runs is not None
    assert MlflowClient(runs.tracking_uri).get_run(runs.parent).info.status != "RUNNING"

    resumed = subprocess.run(
        cli("resume", str(stopped)), env=ENV, capture_output=True, text=True, timeout=900
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert by_configuration(stopped) == by_configuration(whole)
    assert (stopped / "results.csv").read_text() == (whole / "results.csv").read_text()
    heading = (whole / "results.md").read_text().splitlines()[0]
    assert (stopped / "results.md").read_text().splitlines()[0] == heading


def test_sigterm_stops_train_like_ctrl_c(tmp_path: Path) -> None:
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump(merged(TABULAR, {"train": {"epochs": 400}})))
    out = tmp_path / "out"
    driver = start(["train", str(config), "--out", str(out)], tmp_path / "train")
    wait_for(driver, lambda: bool(list(out.glob("checkpoints/epoch_*/state.pt"))), timeout=300)
    driver.send_signal(signal.SIGTERM)
    code, stderr = finish(driver, tmp_path / "train", timeout=120)
    assert code == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        f"dirsearch: interrupted; continue with: dirsearch train {config} --out {out} --resume"
    )
