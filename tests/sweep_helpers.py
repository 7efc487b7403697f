"""Tiny sweep files and a real local Ray for the sweep tests.

The trials are the tiny tabular trial of trial_helpers (synthetic AgeDB-DIR replica at 5%
scale, an MLP, 4 epochs): about a second per trial, so a sweep's time is Ray's own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

TINY_SWEEP: dict[str, Any] = {
    "experiment": "tiny",
    "data": {"name": "synthetic", "kind": "tabular", "scale": 0.05},
    "model": {"arch": "mlp", "mlp_hidden": [32, 32]},
    "train": {"epochs": 4, "batch_size": 64, "device": "cpu"},
    "imbalance": {"shots": {"many": 10, "few": 3}},
    "search": {
        "num_samples": 6,
        "max_concurrent": 2,
        "resources": {"cpu": 1},
        "searcher": {"name": "optuna", "seed": 0},
        "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
    },
    "space": {
        "imbalance.reweight": {"choice": ["none", "sqrt_inv"]},
        "imbalance.lds.enabled": {
            "choice": [False, True],
            "when": {"imbalance.reweight": "sqrt_inv"},
        },
        "imbalance.lds.sigma": {"loguniform": [0.5, 4.0], "when": "imbalance.lds.enabled"},
        "train.lr": {"loguniform": [1.0e-3, 1.0e-2]},
    },
}


def write_space(folder: Path, mapping: dict[str, Any], name: str = "space.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    return path


@contextmanager
def local_ray() -> Iterator[None]:
    """A real, small, quiet local Ray instance (2 CPUs, no GPU, no dashboard)."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


def cli(*arguments: str) -> list[str]:
    """The command line of ``dirsearch ARGUMENTS`` as a subprocess of this interpreter."""
    return [sys.executable, "-m", "dirsearch", *arguments]


def reported_epochs(folder: Path) -> dict[str, list[int]]:
    """Trial folder name -> the epochs Ray recorded in its result.json, in order."""
    return {
        trial.name: [
            int(json.loads(line)["epoch"])
            for line in (trial / "result.json").read_text().splitlines()
        ]
        for trial in sorted(folder.glob("trial_*"))
        if (trial / "result.json").is_file()
    }


def kill_when(driver: subprocess.Popen, ready: Callable[[], bool], timeout: float) -> None:
    """SIGKILL ``driver`` as soon as ``ready()`` holds (a driver crash mid-sweep); it is killed
    whatever happens, so a failing test leaves no sweep running behind it."""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and driver.poll() is None:
            if ready():
                break
            time.sleep(0.5)
        assert driver.poll() is None, "the sweep ended before it could be killed"
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
