"""A local ``mlflow server`` child process: started on 127.0.0.1, waited for until it answers,
stopped with everything it started. ``dirsearch ui`` serves a sweep's store with it; the tests
and the tracking bench run real servers with it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from dirsearch.errors import ConfigError

HOST = "127.0.0.1"
READY_TIMEOUT_S = 180.0
"""A cold ``mlflow server`` start (imports, schema check) takes 5-50 s on a busy 2-core box."""
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def start_server(
    backend_uri: str, port: int, *, artifacts: str | None = None, log: Path | None = None
) -> subprocess.Popen:
    """An ``mlflow server`` child process (one worker: one user, and a quick start). It leads
    its own process group, so a Ctrl-C meant for us does not reach it and ``stop_server`` ends
    uvicorn's workers with it."""
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_uri,
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    if artifacts:
        command += ["--artifacts-destination", artifacts]
    output = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (the child owns it)
    return subprocess.Popen(
        command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_ready(process: subprocess.Popen, url: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until ``url/health`` answers; a server that exits or never answers is a ConfigError."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(f"mlflow server exited with code {process.returncode} at start")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    stop_server(process)
    raise ConfigError(f"mlflow server did not answer at {url} within {timeout_s:g} s")


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group and wait until all of it is gone, not only its leader:
    mlflow runs uvicorn and a job runner with its consumers as children, and these can outlive
    the leader by a moment (seconds on a busy machine)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
