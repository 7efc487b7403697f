"""``dirsearch ui [SWEEP_DIR | --tracking-uri URI] [--port N]``: the MLflow UI of a sweep's store.

Starts a real ``mlflow server`` on 127.0.0.1 for the sweep's tracking store (the sqlite file in
its folder, or the store its run map names), prints the URL of the sweep's experiment, and stops
the server on Ctrl-C.
"""

from __future__ import annotations

import argparse
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


def add_ui_command(commands: argparse._SubParsersAction) -> None:
    ui = commands.add_parser(
        "ui",
        help="open a sweep's MLflow runs in the MLflow UI (starts a local mlflow server)",
        description="Start an MLflow server on 127.0.0.1 for the tracking store of SWEEP_DIR "
        "(or --tracking-uri) and print the URL of the sweep's experiment; Ctrl-C stops it.",
    )
    ui.add_argument("folder", nargs="?", help="a sweep folder that `dirsearch run` printed")
    ui.add_argument("--tracking-uri", help="a tracking store URI instead of a sweep folder")
    ui.add_argument("--port", type=int, help="port (default: a free one)")
    ui.set_defaults(handler=ui_command)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def start_server(
    backend_uri: str, port: int, *, artifacts: str | None = None, log: Path | None = None
) -> subprocess.Popen:
    """An ``mlflow server`` child process (one worker: one user, and a quick start)."""
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
    """SIGTERM the server's process group (mlflow runs uvicorn as a child) and wait for it."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def store_of(folder: str | None, uri: str | None) -> tuple[str, str | None, str | None]:
    """(backend store URI, experiment id, parent run id) for a sweep folder or a given URI."""
    from dirsearch.tracking.tracker import RunMap

    if uri:
        return uri, None, None
    if folder is None:
        raise ConfigError("ui: give a sweep folder or --tracking-uri")
    folder = folder if "://" in folder else str(Path(folder).resolve())
    runs = RunMap.load(folder)
    if runs is None:
        raise ConfigError(
            f"{folder}: no MLflow runs recorded here (no mlflow_runs.json); give a sweep folder "
            f"that `dirsearch run` made"
        )
    return runs.tracking_uri, runs.experiment_id, runs.parent


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def ui_command(args: argparse.Namespace) -> int:
    backend, experiment, parent = store_of(args.folder, args.tracking_uri)
    if backend.startswith(("http://", "https://")):
        where = f"#/experiments/{experiment}/runs/{parent}" if experiment else ""
        print(f"that store is a server already: open {backend.rstrip('/')}/{where}")
        return 0
    port = args.port or free_port()
    url = f"http://{HOST}:{port}"
    # The server leads its own process group, so only we can stop it: SIGTERM and SIGINT (even
    # where a shell started us with SIGINT ignored) end the wait below like Ctrl-C.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, _interrupt)
    process = start_server(backend, port)
    try:
        wait_ready(process, url)
        # The runs table: MLflow 3's default experiment page is the GenAI overview.
        page = f"{url}/#/experiments/{experiment}/runs" if experiment else url
        print(f"MLflow UI: {page}\n(Ctrl-C stops the server)", flush=True)
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(process)
    return 0
