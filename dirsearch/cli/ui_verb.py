"""``dirsearch ui [SWEEP_DIR | --tracking-uri URI] [--port N]``: the MLflow UI of a sweep's store.

Starts a real ``mlflow server`` on 127.0.0.1 for the sweep's tracking store (the sqlite file in
its folder, or the store its run map names), prints the URL of the sweep's trial runs in the
model-training view, best first by the objective (``tracking.runs_page``), and stops the server
on Ctrl-C. A store that is a server already is not served again: its page is printed.
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable
from pathlib import Path

from dirsearch.errors import ConfigError
from dirsearch.tracking.server import HOST, free_port, start_server, stop_server, wait_ready


def add_ui_command(commands: argparse._SubParsersAction) -> None:
    ui = commands.add_parser(
        "ui",
        help="open a sweep's MLflow runs in the MLflow UI (starts a local mlflow server)",
        description="Start an MLflow server on 127.0.0.1 for the tracking store of SWEEP_DIR "
        "(or --tracking-uri) and print the URL of the sweep's trial runs in the model-training "
        "view, best first by the objective; Ctrl-C stops it.",
    )
    ui.add_argument("folder", nargs="?", help="a sweep folder that `dirsearch run` printed")
    ui.add_argument("--tracking-uri", help="a tracking store URI instead of a sweep folder")
    ui.add_argument("--port", type=int, help="port (default: a free one)")
    ui.set_defaults(handler=ui_command)


def store_of(folder: str | None, uri: str | None) -> tuple[str, Callable[[str], str]]:
    """The tracking store to serve, and the page to open on a server of it (given the server's
    address): a sweep folder's runs page, or a given URI's start page."""
    from dirsearch.sweep.folder import load_spec
    from dirsearch.tracking.run_map import RunMap
    from dirsearch.tracking.runs_page import runs_page

    if uri:
        return uri, lambda server: server
    if folder is None:
        raise ConfigError("ui: give a sweep folder or --tracking-uri")
    folder = folder if "://" in folder else str(Path(folder).resolve())
    runs = RunMap.load(folder)
    if runs is None:
        raise ConfigError(
            f"{folder}: no MLflow runs recorded here (no mlflow_runs.json); give a sweep folder "
            f"that `dirsearch run` made"
        )
    search = load_spec(folder).search
    return runs.tracking_uri, lambda server: runs_page(server, runs.experiment_id, search)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def ui_command(args: argparse.Namespace) -> int:
    from dirsearch.tracking.runs_page import server_address

    backend, page = store_of(args.folder, args.tracking_uri)
    served = server_address(backend)
    if served is not None:
        print(f"that store is a server already: open {page(served)}")
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
        print(f"MLflow UI: {page(url)}\n(Ctrl-C stops the server)", flush=True)
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(process)
    return 0
