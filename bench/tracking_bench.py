"""Our SweepTracker against Ray's MLflowLoggerCallback on the same tiny sweep.

Each logger tracks the same sweep (tests' tiny tabular space, real Ray, real Optuna) into its own
real ``mlflow server``; the server's access log counts the HTTP requests, and a wrapping
callback times the driver's time inside the logger's hooks. Prints requests and driver
milliseconds per reported result for both, and the ratios.

    .venv/bin/python bench/tracking_bench.py
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ray import tune
from ray.air.integrations.mlflow import MLflowLoggerCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from sweep_helpers import TINY_SWEEP, local_ray, write_space

from dirsearch.sweep.records import read_trials
from dirsearch.sweep.spec_reader import load_sweep_spec
from dirsearch.tracking.callback import SweepTracker
from dirsearch.tracking.run_layout import start_sweep_runs
from dirsearch.tracking.server import free_port, start_server, stop_server, wait_ready
from dirsearch.tune.runner import run

REQUEST = re.compile(r'"(?:GET|POST|PATCH|DELETE|PUT) (/[^ ?"]*)')
HOOKS = ("on_trial_start", "on_trial_result", "on_trial_complete", "on_trial_error")


class Timed(tune.Callback):
    """Forwards Tune's hooks to a logger and adds up the driver time spent in them."""

    def __init__(self, inner: tune.Callback) -> None:
        self.inner, self.seconds = inner, 0.0
        self.per_hook: dict[str, float] = {}

    def _timed(self, hook: str, **info: Any) -> None:
        started = time.perf_counter()
        getattr(self.inner, hook)(**info)
        spent = time.perf_counter() - started
        self.seconds += spent
        self.per_hook[hook] = self.per_hook.get(hook, 0.0) + spent

    def setup(self, **info: Any) -> None:
        self._timed("setup", **info)

    def on_trial_start(self, **info: Any) -> None:
        self._timed("on_trial_start", **info)

    def on_trial_result(self, **info: Any) -> None:
        self._timed("on_trial_result", **info)

    def on_trial_complete(self, **info: Any) -> None:
        self._timed("on_trial_complete", **info)

    def on_trial_error(self, **info: Any) -> None:
        self._timed("on_trial_error", **info)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._timed("on_experiment_end", trials=trials, **info)


def measure(name: str, root: Path, make_logger) -> dict[str, float]:
    port = free_port()
    log = root / f"{name}.log"
    server = start_server(
        f"sqlite:///{root}/{name}.db", port, artifacts=str(root / f"{name}-art"), log=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(server, url)
        space = write_space(root, TINY_SWEEP, f"{name}.yaml")
        spec = load_sweep_spec(space)
        folder = f"{root}/{name}"
        before = len(REQUEST.findall(log.read_text(errors="replace")))
        timed = Timed(make_logger(spec, folder, url))
        run(spec, space.read_text(), folder, callbacks=[timed], say=lambda line: None)
        sent = len(REQUEST.findall(log.read_text(errors="replace"))) - before
    finally:
        stop_server(server)
    results = sum(len(record.history) for record in read_trials(folder))
    return {
        "results": results,
        "requests": sent,
        "driver_s": timed.seconds,
        "result_hook_s": timed.per_hook.get("on_trial_result", 0.0),
    }


def ours(spec, folder: str, url: str) -> tune.Callback:
    start_sweep_runs(spec, folder, url)
    return SweepTracker(spec, folder)


def rays(spec, folder: str, url: str) -> tune.Callback:
    return MLflowLoggerCallback(tracking_uri=url, experiment_name="ray", save_artifact=False)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="tracking-bench-"))
    with local_ray():
        numbers = {
            name: measure(name, root, make) for name, make in (("ours", ours), ("ray", rays))
        }
    for name, n in numbers.items():
        print(
            f"{name:5s}: {n['results']} results, {n['requests']} requests "
            f"({n['requests'] / n['results']:.2f} per result), driver "
            f"{1000 * n['driver_s'] / n['results']:.1f} ms per result in all hooks, "
            f"{1000 * n['result_hook_s'] / n['results']:.1f} ms in on_trial_result"
        )
    per = {
        name: (n["requests"] / n["results"], n["driver_s"] / n["results"])
        for name, n in numbers.items()
    }
    print(
        f"ray / ours: requests per result x{per['ray'][0] / per['ours'][0]:.1f}, "
        f"driver time per result x{per['ray'][1] / per['ours'][1]:.1f}"
    )


if __name__ == "__main__":
    main()
