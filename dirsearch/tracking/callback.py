"""The Tune side of tracking: Tune's trial events become writes of the run layout, sent through
the write queue, on the driver only.

Ray's ``MLflowLoggerCallback`` sends one request per metric per result, logs Ray's bookkeeping
keys as metrics, makes flat runs and starts new ones after a restore. ``SweepTracker`` sends one
``log_batch`` per result, logs only the trainer's metrics, nests trial runs under the sweep's
run and keeps the trial -> run map in the sweep folder, so ``dirsearch resume`` continues the
same runs. Workers never talk to the store, and training never waits on it: while it is down
the queue keeps the writes, in order, and retries them every ``retry_s`` seconds.
"""

from __future__ import annotations

import time
from typing import Any

from ray.tune.logger import LoggerCallback

from dirsearch.sweep.spec import SweepSpec
from dirsearch.tracking.publish import publish_sweep
from dirsearch.tracking.run_layout import ResultBatch, RunLayout, phase_of, result_status
from dirsearch.tracking.store import classify, shown
from dirsearch.tracking.write_queue import WriteQueue, warn
from dirsearch.tune.finish import FinalResult


class SweepTracker(LoggerCallback):
    """The Tune callback; also the hook ``tune.finish`` hands the final results to
    (``sweep_finished``), and what the command ends the parent run with (``close``).

    Ray pickles it into the experiment state (the Tuner's run config) and a resumed Tuner gets
    it back from there, so it holds only plain settings; its layout and queue are made again
    on unpickling, and the layout re-reads the run map from the sweep folder."""

    def __init__(self, spec: SweepSpec, folder: str, retry_s: float = 5.0) -> None:
        self.spec, self.folder, self.retry_s = spec, folder.rstrip("/"), retry_s
        self._reset()

    def _reset(self) -> None:
        self._layout = RunLayout(self.spec, self.folder)
        self._queue = WriteQueue(self.retry_s, classify)

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "folder": self.folder, "retry_s": self.retry_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def setup(self, *args: Any, **kwargs: Any) -> None:
        self._layout.reconnect()

    def log_trial_start(self, trial: Any) -> None:
        layout = self._layout
        if trial.trial_id in layout.runs.trials:
            self._queue.submit(lambda: layout.reopen(trial))
        else:
            self._queue.submit(lambda: layout.create_child(trial))

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        now_ms = int(time.time() * 1000)
        batch = ResultBatch.of(result, iteration, now_ms, self.spec.search.objective)
        trial_id = trial.trial_id
        self._queue.submit(lambda: self._layout.log_result(trial_id, batch))

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        status = result_status(trial.last_result or {}, failed, self.spec.epochs)
        trial_id = trial.trial_id
        self._queue.submit(lambda: self._layout.end_trial(trial_id, status, failed))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Trials still running (Ctrl-C) become KILLED (resume reopens them) and runs of trials
        Ray lost with a killed driver are deleted; then the driver waits a while (six retry
        periods) for a store that is down."""
        layout = self._layout
        for trial in trials:
            if trial.status not in ("TERMINATED", "ERROR") and trial.trial_id in layout.runs.trials:
                run_id = layout.runs.trials[trial.trial_id]
                self._queue.submit(lambda run_id=run_id: layout.kill(run_id))
        if trials:
            known = {trial.trial_id for trial in trials}
            phase = phase_of(trials[0])
            self._queue.submit(lambda: layout.drop_ghosts(known, phase))
        self._queue.flush(wait_s=self.retry_s * 6)

    def sweep_finished(self, result: FinalResult) -> None:
        publish_sweep(self.spec, self.folder, result, self._layout, self._queue)

    def close(self, status: str, wait_s: float = 60.0) -> None:
        """End the parent run (FINISHED, KILLED on Ctrl-C, FAILED on an error) after every
        queued write, and end children a crashed driver left RUNNING."""
        self._queue.submit(lambda: self._layout.close(status))
        left = self._queue.flush(wait_s=wait_s)
        if left:
            warn(
                f"MLflow still unreachable: {left} updates of this sweep were not logged "
                f"({shown(self._layout.runs.tracking_uri)})"
            )
