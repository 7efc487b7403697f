"""MLflow tracking of a sweep, from the driver only: a parent run per sweep, a child run per trial.

Ray's ``MLflowLoggerCallback`` sends one request per metric per result, logs Ray's bookkeeping
keys as metrics, makes flat runs and starts new ones after a restore. ``SweepTracker`` is a
``LoggerCallback`` that sends one ``log_batch`` per result, logs only the trainer's metrics,
nests trial runs under the sweep's run (``mlflow.parentRunId``) and keeps the trial -> run map in
the sweep folder (``mlflow_runs.json``), so ``dirsearch resume`` continues the same runs.

Workers never talk to the store. Every write goes through a queue: when the store is
unreachable the queue keeps the writes, in order, and retries them every ``retry_s`` seconds,
so training never waits on MLflow and the store ends complete once it is back.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    REQUEST_LIMIT_EXCEEDED,
    TEMPORARILY_UNAVAILABLE,
    ErrorCode,
)
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from ray.tune.logger import LoggerCallback

from dirsearch.errors import ConfigError
from dirsearch.imbalance.metrics import REGIONS, STATISTICS
from dirsearch.sweep.dimensions import format_value
from dirsearch.sweep.records import read_text, trial_number, write_text
from dirsearch.sweep.spec import SweepSpec
from dirsearch.tune.runner import CONFIRM, FinalResult

RUN_MAP_FILE = "mlflow_runs.json"
DEFAULT_STORE = "mlflow.db"
METRIC_PREFIXES = ("train/", "val/", "test/", "time/")
"""Trainer metrics are namespaced; Ray's bookkeeping keys (pid, time_total_s, ...) are not."""
UNTRACKED_SUFFIX = "/n"
"""Sample counts per region: constant per split, noise in the UI."""
TRANSIENT = {ErrorCode.Name(c) for c in (INTERNAL_ERROR, TEMPORARILY_UNAVAILABLE)} | {
    ErrorCode.Name(REQUEST_LIMIT_EXCEEDED)
}
PACKAGES = ("dirsearch", "torch", "ray", "optuna", "mlflow", "numpy")
MAX_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit
MAX_TAG_LENGTH = 5000


def tracking_uri(folder: str, given: str | None) -> str:
    """``given``, else ``MLFLOW_TRACKING_URI``, else a sqlite file in the sweep folder (absolute:
    Ray changes the working directory). A sweep folder on an object store has no place for a
    sqlite file, so its store goes beside the current folder's ``runs/``."""
    uri = given or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    local = folder if "://" not in folder else str(Path("runs").resolve())
    return f"sqlite:///{Path(local).resolve()}/{DEFAULT_STORE}"


def connect(uri: str) -> MlflowClient:
    """A client whose requests fail fast (our queue retries, not MLflow's minutes-long backoff),
    checked now: an unreachable server is a one-line ConfigError before Ray starts."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=uri)
    try:
        client.search_experiments(max_results=1)
    except Exception as error:
        raise ConfigError(
            f"--tracking-uri {uri}: the MLflow tracking store cannot be reached "
            f"({str(error).splitlines()[0][:200]}); start the server or give another URI"
        ) from None
    return client


@dataclass
class RunMap:
    """What a resumed sweep needs to continue the same runs; lives in the sweep folder."""

    tracking_uri: str
    experiment_id: str
    parent: str
    trials: dict[str, str] = field(default_factory=dict)
    """Ray trial id -> MLflow run id."""

    @staticmethod
    def load(folder: str) -> RunMap | None:
        text = read_text(f"{folder}/{RUN_MAP_FILE}")
        return None if text is None else RunMap(**json.loads(text))

    def save(self, folder: str) -> None:
        write_text(f"{folder}/{RUN_MAP_FILE}", json.dumps(asdict(self), indent=2))


def start_sweep_runs(spec: SweepSpec, folder: str, uri: str | None) -> RunMap:
    """Before Ray starts: reach the store, create the experiment (concurrent first-time creation
    races, so never from trials) and the sweep's parent run, or reopen them on resume."""
    known = RunMap.load(folder)
    uri = uri or (known.tracking_uri if known else tracking_uri(folder, None))
    client = connect(uri)
    if known is not None and known.tracking_uri == uri:
        client.update_run(known.parent, status="RUNNING")
        return known
    experiment = client.get_experiment_by_name(spec.experiment)
    if experiment is not None:
        experiment_id = experiment.experiment_id
    else:
        # A sqlite store keeps artifacts in the sweep folder too; a server decides for itself.
        location = f"{folder}/mlartifacts" if uri.startswith("sqlite:") else None
        experiment_id = client.create_experiment(spec.experiment, artifact_location=location)
    parent = client.create_run(
        experiment_id, run_name=folder.rstrip("/").rsplit("/", 1)[-1], tags=_sweep_tags(folder)
    )
    runs = RunMap(uri, experiment_id, parent.info.run_id)
    runs.save(folder)
    return runs


def _sweep_tags(folder: str) -> dict[str, str]:
    tags = {"dirsearch.sweep_folder": folder, "dirsearch.role": "sweep"}
    commit = _git_commit()
    if commit:
        tags["git.commit"] = commit
    for package in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            tags[f"version.{package}"] = metadata.version(package)
    tags["version.python"] = sys.version.split()[0]
    return tags


def _git_commit() -> str | None:
    """The source tree's commit (with ``-dirty`` when it has changes), or None outside git."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def result_metrics(result: dict[str, Any], step: int, timestamp_ms: int) -> list[Metric]:
    """The trainer's numeric metrics of one reported result (nothing of Ray's bookkeeping)."""
    return [
        Metric(key, float(value), timestamp_ms, step)
        for key, value in result.items()
        if (key.startswith(METRIC_PREFIXES) or key == "lr")
        and not key.endswith(UNTRACKED_SUFFIX)
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ]


def flat_params(mapping: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested trial config as dotted MLflow params (``imbalance.lds.sigma``)."""
    flat: dict[str, str] = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = (
                json.dumps(value) if isinstance(value, list | dict) else str(value)
            )
    return flat


def trial_status(result: dict[str, Any], failed: bool, max_epochs: int, asha: bool) -> str:
    """The child run's status tag, in the leaderboard's words."""
    epoch = int(result.get("epoch", 0) or 0)
    if result.get("status") == "diverged":
        return f"diverged at epoch {epoch + 1}"
    if failed:
        return "errored"
    if epoch >= max_epochs:
        return "completed"
    return f"stopped early by ASHA at epoch {epoch}" if asha else f"stopped at epoch {epoch}"


class SweepTracker(LoggerCallback):
    """The Tune callback; also the hook ``sweep.finish`` hands the final results to.

    It is pickled into Ray's experiment state (Tuner state holds the run config), so it holds
    only plain settings until ``setup``; everything else is re-read from the run map."""

    def __init__(self, spec: SweepSpec, folder: str, retry_s: float = 5.0) -> None:
        self.spec, self.folder, self.retry_s = spec, folder.rstrip("/"), retry_s
        self._reset()

    def _reset(self) -> None:
        self._client: MlflowClient | None = None
        self._runs: RunMap | None = None
        self._queue: deque[Callable[[], None]] = deque()
        self._next_try = 0.0
        self._outage_since: float | None = None
        self._last_step: dict[str, int] = {}
        self.driver_seconds = 0.0
        """Time the driver spent in this callback (measured for bench/RESULTS.md)."""

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "folder": self.folder, "retry_s": self.retry_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    # The store -----------------------------------------------------------------------------

    @property
    def runs(self) -> RunMap:
        if self._runs is None:
            runs = RunMap.load(self.folder)
            if runs is None:
                raise RuntimeError(f"{self.folder}: start_sweep_runs() must run first")
            self._runs = runs
        return self._runs

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = self.make_client()
        return self._client

    def make_client(self) -> MlflowClient:
        """Overridable in measurements (a client that counts its calls)."""
        return MlflowClient(tracking_uri=self.runs.tracking_uri)

    def _submit(self, write: Callable[[], None]) -> None:
        self._queue.append(write)
        self.flush()

    def flush(self, wait_s: float = 0.0) -> int:
        """Send queued writes in order; stop at the first that fails for a transient reason
        (the store is down) and try again later. Returns how many are still queued."""
        deadline = time.monotonic() + wait_s
        while self._queue:
            now = time.monotonic()
            if now < self._next_try:
                if now >= deadline:
                    return len(self._queue)
                time.sleep(min(self._next_try, deadline) - now)
                continue
            try:
                self._queue[0]()
            except MlflowException as error:
                if error.error_code not in TRANSIENT:  # a bad request: retrying cannot help
                    _warn(f"MLflow refused an update ({error.message[:200]}); skipped")
                    self._queue.popleft()
                    continue
                self._outage(error)
                if time.monotonic() >= deadline:
                    return len(self._queue)
                continue
            except OSError as error:  # artifact uploads raise requests/connection errors
                self._outage(error)
                if time.monotonic() >= deadline:
                    return len(self._queue)
                continue
            self._queue.popleft()
            if self._outage_since is not None and not self._queue:
                _warn("MLflow reachable again; queued updates logged")
                self._outage_since = None
        return 0

    def _outage(self, error: Exception) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            first = str(error).splitlines()[0][:160]
            _warn(
                f"MLflow unreachable ({first}); training goes on, updates are queued and "
                f"retried every {self.retry_s:g} s"
            )
        self._next_try = time.monotonic() + self.retry_s

    @property
    def queued(self) -> int:
        return len(self._queue)

    # Tune's callback interface ------------------------------------------------------------

    def setup(self, *args: Any, **kwargs: Any) -> None:
        self._runs = None  # re-read: a resumed sweep's map, or the search phase's before confirm
        self._client = self.make_client()

    def log_trial_start(self, trial: Any) -> None:
        with self._timed():
            if trial.trial_id in self.runs.trials:
                self._reopen(trial)
            else:
                self._submit(lambda: self._create_child(trial))

    def _create_child(self, trial: Any) -> None:
        phase = _phase(trial)
        config = self.spec.trial_config(dict(trial.config))
        overrides = ", ".join(
            f"{key.split('.', 1)[-1]}={format_value(value)}" for key, value in trial.config.items()
        )
        number = trial_number(trial)
        name = f"{'confirm' if phase == 'confirm' else 'trial'} {number}: {overrides or 'fixed'}"
        repeats = 1 if phase == "confirm" else self.spec.search.repeats
        seeds = [config.seed + k for k in range(repeats)]
        tags = {
            MLFLOW_PARENT_RUN_ID: self.runs.parent,
            "dirsearch.role": "trial",
            "dirsearch.phase": phase,
            "dirsearch.trial_id": trial.trial_id,
            "dirsearch.trial_number": str(number),
            "seed": ",".join(map(str, seeds)),
            "status": "running",
        }
        if trial.trial_id not in self.runs.trials:  # a retry after the store went away
            run = self.client.create_run(self.runs.experiment_id, run_name=name, tags=tags)
            # Mapped at once: a driver killed from here on leaves a run that resume reopens.
            self.runs.trials[trial.trial_id] = run.info.run_id
            self.runs.save(self.folder)
        self._log_params(self.runs.trials[trial.trial_id], trial)

    def _log_params(self, run_id: str, trial: Any) -> None:
        """The resolved trial config (again after a resume: MLflow accepts identical values)."""
        config = self.spec.trial_config(dict(trial.config))
        params = [Param(k, v) for k, v in flat_params(config.to_dict()).items()]
        for start in range(0, len(params), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=params[start : start + MAX_PARAMS_PER_BATCH])

    def _reopen(self, trial: Any) -> None:
        """A trial restarted after a resume: same run, RUNNING again, no step logged twice."""
        run_id = self.runs.trials[trial.trial_id]

        def reopen() -> None:
            self.client.update_run(run_id, status="RUNNING")
            self._log_params(run_id, trial)  # the driver may have died before logging them
            history = self.client.get_metric_history(run_id, "train/loss")
            self._last_step[trial.trial_id] = max((m.step for m in history), default=0)

        self._submit(reopen)

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        with self._timed():
            step = int(result.get("epoch", iteration) or 0)
            metrics = result_metrics(result, step, int(time.time() * 1000))
            tags = [RunTag("status", str(result.get("status", "running")))]
            if "message" in result:
                tags.append(RunTag("message", str(result["message"])[:MAX_TAG_LENGTH]))
            trial_id = trial.trial_id

            def log() -> None:
                if step <= self._last_step.get(trial_id, -1):  # logged before the driver died
                    return
                self.client.log_batch(self.runs.trials[trial_id], metrics=metrics, tags=tags)
                self._last_step[trial_id] = step

            self._submit(log)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        with self._timed():
            status = trial_status(
                trial.last_result or {},
                failed,
                self.spec.epochs,
                self.spec.search.scheduler.name == "asha",
            )
            bad = failed or status.startswith("diverged")
            trial_id = trial.trial_id

            def end() -> None:
                run_id = self.runs.trials[trial_id]
                self.client.log_batch(run_id, tags=[RunTag("status", status)])
                self.client.set_terminated(run_id, "FAILED" if bad else "FINISHED")

            self._submit(end)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Trials still running (Ctrl-C) become KILLED; resume reopens them."""
        with self._timed():
            for trial in trials:
                if trial.status not in ("TERMINATED", "ERROR") and trial.trial_id in (
                    self.runs.trials
                ):
                    run_id = self.runs.trials[trial.trial_id]
                    self._submit(lambda run_id=run_id: self.client.set_terminated(run_id, "KILLED"))
            if trials:
                known = {trial.trial_id for trial in trials}
                phase = _phase(trials[0])
                self._submit(lambda: self._drop_ghosts(known, phase))
            self.flush(wait_s=self.retry_s * 6)

    def _drop_ghosts(self, known: set[str], phase: str) -> None:
        """A trial the killed driver started after Ray's last experiment-state save is unknown
        to the resumed sweep: Ray discards its results and runs another trial in its place. Its
        run would stand as a duplicate of that trial, so it is deleted (MLflow keeps deleted
        runs restorable)."""
        children = self.client.search_runs(
            [self.runs.experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.runs.parent}' "
            f"and tags.`dirsearch.phase` = '{phase}'",
        )
        for run in children:
            trial_id = run.data.tags.get("dirsearch.trial_id")
            if trial_id not in known:
                self.client.delete_run(run.info.run_id)
                self.runs.trials.pop(trial_id, None)
        self.runs.save(self.folder)

    # The end of the sweep (called by sweep.finish and the command, not by Tune) ------------

    def sweep_finished(self, result: FinalResult) -> None:
        """The parent run gets the sweep's files and the winner's test metrics (mean, and std
        over seeds when there are several); the winner's child run gets the same metrics."""
        with self._timed():
            metrics = test_metrics(result.per_seed, int(time.time() * 1000))
            parent = self.runs.parent
            texts = {
                name: read_text(f"{self.folder}/{name}")
                for name in (
                    "space.yaml",
                    "sweep.json",
                    "leaderboard.md",
                    "leaderboard.csv",
                    "results.md",
                    "results.csv",
                    "confirm.md",
                    "confirm.csv",
                )
            }

            def log_parent() -> None:
                self.client.log_batch(
                    parent,
                    metrics=metrics,
                    tags=[RunTag("dirsearch.winner", result.heading[:MAX_TAG_LENGTH])],
                )
                self.client.log_dict(parent, self.spec.fixed, "fixed_config.yaml")
                for name, text in texts.items():
                    if text is not None:
                        self.client.log_text(parent, text, name)

            self._submit(log_parent)
            self._log_artifacts(result)
            if result.best is not None and result.best.trial_id in self.runs.trials:
                best_run = self.runs.trials[result.best.trial_id]
                self._submit(
                    lambda: self.client.log_batch(
                        best_run, metrics=metrics, tags=[RunTag("dirsearch.best", "true")]
                    )
                )

    def _log_artifacts(self, result: FinalResult) -> None:
        """Plots and the best model on the parent run. A failure here costs those files, not
        the finished sweep: it is reported in one line."""
        from dirsearch.tracking.publish import MODEL, PLOTS, write_sweep_artifacts

        try:
            files = write_sweep_artifacts(self.spec, result, self.folder)
        except Exception as error:
            _warn(f"plots and model not made ({type(error).__name__}: {str(error)[:200]})")
            return
        parent = self.runs.parent
        self._submit(lambda: self.client.log_artifacts(parent, str(files.plots), PLOTS))
        if files.model is not None:
            model = str(files.model)
            self._submit(lambda: self.client.log_artifacts(parent, model, MODEL))

    def close(self, status: str, wait_s: float = 60.0) -> None:
        """End the parent run (FINISHED, KILLED on Ctrl-C, FAILED on an error) after every
        queued write, and end children a crashed driver left RUNNING."""
        parent = self.runs.parent

        def end() -> None:
            running = self.client.search_runs(
                [self.runs.experiment_id],
                filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}' "
                "and attributes.status = 'RUNNING'",
            )
            for run in running:
                self.client.set_terminated(run.info.run_id, "KILLED")
            self.client.set_terminated(parent, status)

        self._submit(end)
        left = self.flush(wait_s=wait_s)
        if left:
            _warn(
                f"MLflow still unreachable: {left} updates of this sweep were not logged "
                f"({self.runs.tracking_uri})"
            )

    def _timed(self) -> _Timer:
        return _Timer(self)


class _Timer:
    def __init__(self, tracker: SweepTracker) -> None:
        self.tracker = tracker

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.tracker.driver_seconds += time.perf_counter() - self.start


def _phase(trial: Any) -> str:
    return "confirm" if trial.experiment_dir_name == CONFIRM else "search"


def _warn(line: str) -> None:
    print(f"dirsearch: mlflow: {line}", file=sys.stderr, flush=True)


def test_metrics(per_seed: list[dict[str, dict[str, float]]], timestamp_ms: int) -> list[Metric]:
    """``test/<region>/<statistic>``: the mean over seeds, plus ``..._std`` with several seeds."""
    metrics = []
    for region in REGIONS:
        for statistic in STATISTICS:
            values = [seed[region][statistic] for seed in per_seed]
            values = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
            if not values:
                continue
            key = f"test/{region}/{statistic}"
            metrics.append(Metric(key, statistics.fmean(values), timestamp_ms, 0))
            if len(per_seed) > 1:
                std = statistics.stdev(values) if len(values) > 1 else math.nan
                metrics.append(Metric(f"{key}_std", std, timestamp_ms, 0))
    return metrics
