"""How a sweep lies in MLflow, and the writes that keep it so.

One experiment per ``experiment`` name; one parent run per sweep folder, named after it and
tagged with the source commit and package versions; under it (``mlflow.parentRunId``) one child
run per trial, named by its sampled values, with the resolved trial config as params, only
the trainer's metrics and the best objective so far (``best/<objective>``: MLflow sorts runs by
a metric's last value, the leaderboard by its best), one ``log_batch`` per result. The run map
in the sweep folder lets a resumed sweep reopen the same runs instead of making new ones.

The ``RunLayout`` methods that write are run by the write queue, which runs a method again whole
when the store went down halfway through it: each is safe to run twice.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from dirsearch.common.formatting import format_setting
from dirsearch.common.objective_mode import better
from dirsearch.errors import ConfigError
from dirsearch.sweep.folder import ABLATION, ARTIFACTS, CONFIRM, trial_number
from dirsearch.sweep.paths import flatten
from dirsearch.sweep.records import scores
from dirsearch.sweep.spec import SweepSpec
from dirsearch.sweep.statuses import trial_status
from dirsearch.tracking.run_map import RunMap
from dirsearch.tracking.store import connect, shown, tracking_uri, uri_source

METRIC_PREFIXES = ("train/", "val/", "test/", "time/")
"""Trainer metrics are namespaced; Ray's bookkeeping keys (pid, time_total_s, ...) are not."""
UNTRACKED_SUFFIX = "/n"
"""Sample counts per region: constant per split, noise in the UI."""
PACKAGES = ("dirsearch", "torch", "ray", "optuna", "mlflow", "numpy")
MAX_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit
MAX_TAG_LENGTH = 5000
"""Characters of a tag value we write: MLflow 3 takes 8000 (``MAX_TAG_VAL_LENGTH``), servers of
older versions 5000."""
BEST_PREFIX = "best/"


def best_metric(objective: str) -> str:
    """The child runs' metric holding the best ``objective`` so far: the leaderboard's score of
    the trial, and what the MLflow UI sorts trials by."""
    return f"{BEST_PREFIX}{objective}"


def start_sweep_runs(spec: SweepSpec, folder: str, given: str | None) -> RunMap:
    """Before Ray starts: reach the store, create the experiment (concurrent first-time creation
    races, so never from trials) and the sweep's parent run, or reopen them on resume.

    The store is the one named now (``given``: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``,
    else the sweep folder's sqlite file), never the one the run map in the folder names: whoever
    can write the folder could otherwise send the sweep's metrics, and an
    ``MLFLOW_TRACKING_TOKEN``, to a server of their choice. A map naming another store is
    refused in one line, unless the URI given now is that store."""
    known = RunMap.load(folder)
    uri = tracking_uri(folder, given)
    if known is not None and known.tracking_uri != uri:
        raise ConfigError(
            f"{folder}: its MLflow runs are in {shown(known.tracking_uri)}, but this would log "
            f"to {shown(uri)} (from {uri_source(given)}); to continue in the recorded store, "
            f"pass it as --tracking-uri"
        )
    client = connect(uri)
    if known is not None:
        client.update_run(known.parent, status="RUNNING")
        return known
    experiment = client.get_experiment_by_name(spec.experiment)
    if experiment is not None:
        experiment_id = experiment.experiment_id
    else:
        # A sqlite store keeps artifacts in the sweep folder too; a server decides for itself.
        location = f"{folder}/{ARTIFACTS}" if uri.startswith("sqlite:") else None
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
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def _git(*arguments: str) -> str:
    source = Path(__file__).resolve().parent
    return subprocess.run(
        ["git", "-C", str(source), *arguments],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout.strip()


def flat_params(mapping: dict[str, Any]) -> dict[str, str]:
    """A nested trial config as dotted MLflow params (``imbalance.lds.sigma``): MLflow params are
    strings, lists and mappings as their JSON."""
    return {
        path: json.dumps(value) if isinstance(value, list | dict) else str(value)
        for path, value in flatten(mapping).items()
    }


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


@dataclass(frozen=True)
class ResultBatch:
    """One reported result as its child run's ``log_batch``, made when Tune reports it (an
    outage delays the write, not the timestamps)."""

    step: int
    timestamp_ms: int
    metrics: list[Metric]
    tags: list[RunTag]
    score: float | None
    """The objective, when this result counts towards the trial's best (``records.scores``)."""

    @staticmethod
    def of(
        result: dict[str, Any], iteration: int, timestamp_ms: int, objective: str
    ) -> ResultBatch:
        step = int(result.get("epoch", iteration) or 0)
        tags = [RunTag("status", str(result.get("status", "running")))]
        if "message" in result:
            tags.append(RunTag("message", str(result["message"])[:MAX_TAG_LENGTH]))
        metrics = result_metrics(result, step, timestamp_ms)
        score = float(result[objective]) if scores(result, objective) else None
        return ResultBatch(step, timestamp_ms, metrics, tags, score)


def result_status(result: dict[str, Any], failed: bool, max_epochs: int) -> str:
    """The child run's status tag from the trial's last result, in the leaderboard's words."""
    epoch = int(result.get("epoch", 0) or 0)
    diverged = result.get("status") == "diverged"
    return trial_status(epoch, max_epochs, diverged=diverged, errored=failed)


SEARCH = "search"
PHASES = (CONFIRM, ABLATION)
"""The phases after the search, each a Tuner of its own in the folder of its name."""


def phase_of(trial: Any) -> str:
    """``confirm`` or ``ablation`` for a trial of that phase's Tuner, else ``search`` (each
    phase's ghost runs are dropped among its own runs only)."""
    name = trial.experiment_dir_name
    return name if name in PHASES else SEARCH


class RunLayout:
    """The parent and child runs of one sweep folder, as the driver writes them.

    The run map and the client are made on first use, not when the layout is: the layout of a
    callback that Ray unpickled must read the map the sweep folder holds by then."""

    def __init__(self, spec: SweepSpec, folder: str) -> None:
        self.spec, self.folder = spec, folder
        self._runs: RunMap | None = None
        self._client: MlflowClient | None = None
        self._last_step: dict[str, int] = {}
        """Trial id -> the last step its run holds: a resumed trial reports again the epochs
        after its last checkpoint, which the killed driver may have logged already."""
        self._best: dict[str, float] = {}
        """Trial id -> its best objective so far."""

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
            self._client = MlflowClient(tracking_uri=self.runs.tracking_uri)
        return self._client

    def reconnect(self) -> None:
        """At the start of each Tuner: the map re-read (a resumed sweep's, or the search
        phase's before confirm) and a new client for its store."""
        self._runs = None
        self._client = MlflowClient(tracking_uri=self.runs.tracking_uri)

    def create_child(self, trial: Any) -> None:
        """The trial's run, mapped (and the map saved) at once: a driver killed from here on
        leaves a run that resume reopens, and a retry after the store went away only logs the
        params."""
        phase = phase_of(trial)
        config = self.spec.trial_config(dict(trial.config))
        sampled = ", ".join(
            f"{key.split('.', 1)[-1]}={format_setting(value)}"
            for key, value in trial.config.items()
        )
        number = trial_number(trial)
        name = f"{'trial' if phase == SEARCH else phase} {number}: {sampled or 'fixed'}"
        repeats = self.spec.search.repeats if phase == SEARCH else 1
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
        if trial.trial_id not in self.runs.trials:
            run = self.client.create_run(self.runs.experiment_id, run_name=name, tags=tags)
            self.runs.trials[trial.trial_id] = run.info.run_id
            self.runs.save(self.folder)
        self._log_params(self.runs.trials[trial.trial_id], trial)

    def _log_params(self, run_id: str, trial: Any) -> None:
        """The resolved trial config (again after a resume: MLflow accepts identical values)."""
        config = self.spec.trial_config(dict(trial.config))
        params = [Param(k, v) for k, v in flat_params(config.to_dict()).items()]
        for start in range(0, len(params), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=params[start : start + MAX_PARAMS_PER_BATCH])

    def reopen(self, trial: Any) -> None:
        """A trial restarted after a resume: same run, RUNNING again, no step logged twice."""
        run_id = self.runs.trials[trial.trial_id]
        self.client.update_run(run_id, status="RUNNING")
        self._log_params(run_id, trial)  # the driver may have died before logging them
        history = self.client.get_metric_history(run_id, "train/loss")
        self._last_step[trial.trial_id] = max((m.step for m in history), default=0)
        logged = self.client.get_run(run_id).data.metrics
        best = logged.get(best_metric(self.spec.search.objective))
        if best is not None:
            self._best[trial.trial_id] = best

    def log_result(self, trial_id: str, batch: ResultBatch) -> None:
        if batch.step <= self._last_step.get(trial_id, -1):  # logged before the driver died
            return
        metrics = batch.metrics + self._best_so_far(trial_id, batch)
        self.client.log_batch(self.runs.trials[trial_id], metrics=metrics, tags=batch.tags)
        self._last_step[trial_id] = batch.step

    def _best_so_far(self, trial_id: str, batch: ResultBatch) -> list[Metric]:
        """``best/<objective>`` at this step (none before the first score); a retried write
        finds the same best."""
        objective, mode = self.spec.search.objective, self.spec.search.objective_mode
        best = self._best.get(trial_id)
        if batch.score is not None and better(batch.score, best, mode):
            best = self._best[trial_id] = batch.score
        if best is None:
            return []
        return [Metric(best_metric(objective), best, batch.timestamp_ms, batch.step)]

    def end_trial(self, trial_id: str, status: str, failed: bool) -> None:
        run_id = self.runs.trials[trial_id]
        self.client.log_batch(run_id, tags=[RunTag("status", status)])
        bad = failed or status.startswith("diverged")
        self.client.set_terminated(run_id, "FAILED" if bad else "FINISHED")

    def kill(self, run_id: str) -> None:
        """A run whose trial Tune stopped unfinished (Ctrl-C): resume reopens it."""
        self.client.set_terminated(run_id, "KILLED")

    def drop_ghosts(self, known: set[str], phase: str) -> None:
        """A trial the killed driver started after Ray's last experiment-state save is unknown
        to the resumed sweep: Ray discards its results and runs another trial in its place. Its
        run would stand as a duplicate of that trial, so it is deleted (MLflow keeps deleted
        runs restorable)."""
        for run in self._children(f"tags.`dirsearch.phase` = '{phase}'"):
            trial_id = run.data.tags.get("dirsearch.trial_id")
            if trial_id not in known:
                self.client.delete_run(run.info.run_id)
                self.runs.trials.pop(trial_id, None)
        self.runs.save(self.folder)

    def close(self, status: str) -> None:
        """The parent ends with ``status``, and children a crashed driver left RUNNING end
        KILLED."""
        for run in self._children("attributes.status = 'RUNNING'"):
            self.client.set_terminated(run.info.run_id, "KILLED")
        self.client.set_terminated(self.runs.parent, status)

    def _children(self, where: str) -> list[Run]:
        return self.client.search_runs(
            [self.runs.experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.runs.parent}' and {where}",
        )
