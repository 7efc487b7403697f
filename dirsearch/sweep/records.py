"""Trials of a sweep as their folders tell them.

Reads only the files Ray Tune leaves in each trial folder (``params.json``: the sampled values;
``result.json``: one JSON line per report; ``error.txt`` when it failed), through the sweep
folder's file systems, so the same code serves a local folder, a shared path or an object store.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from pyarrow import fs as pafs

from dirsearch.common.objective_mode import sign, worst
from dirsearch.sweep.folder import (
    ERROR_FILE,
    PARAMS_FILE,
    RESULT_FILE,
    TRIAL_PREFIX,
    filesystem,
    parse_folder_name,
    read_text,
)
from dirsearch.sweep.statuses import trial_status

DIVERGED_SENTINEL = 1.0e9
"""What a diverged trial reports as its objective (mode min; negated for max): finite, so the
Optuna study records the trial instead of waiting on a NaN forever, and worse than any real one."""


@dataclass
class TrialRecord:
    """One trial as its folder tells it."""

    number: int
    """Ray's creation order, from 1 (the experiment tag's prefix)."""
    trial_id: str
    overrides: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    errored: bool = False

    @property
    def epochs(self) -> int:
        return max((int(row.get("epoch", 0)) for row in self.history), default=0)

    def status(self, max_epochs: int) -> str:
        last = self.history[-1] if self.history else {}
        return trial_status(
            self.epochs,
            max_epochs,
            diverged=last.get("status") == "diverged",
            errored=self.errored,
            started=bool(self.history),
        )

    def best(self, metric: str, mode: str) -> dict[str, Any] | None:
        """The report with the best ``metric`` (the epoch the trainer kept as best)."""
        rows = [row for row in self.history if scores(row, metric)]
        if not rows:
            return None
        return min(rows, key=lambda row: sign(mode) * row[metric])

    def score(self, metric: str, mode: str) -> float:
        """The objective for ranking: the best value, or the worst possible without one."""
        best = self.best(metric, mode)
        return worst(mode) if best is None else float(best[metric])


def scores(report: dict[str, Any], metric: str) -> bool:
    """Whether a report's ``metric`` counts towards the trial's best: a finite value, and not
    the sentinel a diverged trial reports (the leaderboard and the trial's MLflow run agree)."""
    return _finite(report.get(metric)) and report.get("status") != "diverged"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def read_trials(experiment: str) -> list[TrialRecord]:
    """Every trial folder directly under an experiment folder, in trial order.

    What does not read is skipped with a warning, so that one bad file cannot keep ``report``
    or the end of the sweep from working: a folder whose name is not a trial's
    (``trial_<number>_<id>``), a trial whose params.json is no JSON object, and a result line
    that is none (Ray appends one line per epoch: a crash can leave the last one cut short)."""
    system, path = filesystem(experiment)
    infos = system.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    records = []
    for info in infos:
        if info.type != pafs.FileType.Directory or not info.base_name.startswith(TRIAL_PREFIX):
            continue
        folder = f"{experiment.rstrip('/')}/{info.base_name}"
        try:
            number, trial_id = parse_folder_name(info.base_name)
        except ValueError:
            warn(f"{folder}: not a trial folder (trial_<number>_<id>); skipped")
            continue
        params = read_text(f"{folder}/{PARAMS_FILE}", errors="replace")
        overrides = _json_object(params) if params else {}
        if overrides is None:
            warn(f"{folder}/{PARAMS_FILE}: not a JSON object; trial {number} skipped")
            continue
        results = read_text(f"{folder}/{RESULT_FILE}", errors="replace") or ""
        history = retried_last(_result_rows(results, f"{folder}/{RESULT_FILE}"))
        records.append(
            TrialRecord(
                number=number,
                trial_id=trial_id,
                overrides=overrides,
                history=history,
                errored=failed_last(read_text(f"{folder}/{ERROR_FILE}", errors="replace"), history),
            )
        )
    return sorted(records, key=lambda record: record.number)


def warn(message: str) -> None:
    print(f"dirsearch: warning: {message}", file=sys.stderr)


def _json_object(text: str) -> dict[str, Any] | None:
    """The JSON object ``text`` holds, or None when it holds something else or is cut short."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _result_rows(text: str, location: str) -> list[dict[str, Any]]:
    """The reports of a result.json, skipping (with one warning) lines that are no object."""
    rows, skipped = [], []
    lines = [line for line in text.splitlines() if line.strip()]
    for number, line in enumerate(lines, start=1):
        row = _json_object(line)
        if row is None:
            skipped.append(number)
        else:
            rows.append(row)
    if skipped:
        which = "the last line is" if skipped == [len(lines)] else f"lines {skipped[:5]} are"
        warn(f"{location}: {which} not a JSON object (cut short by a crash?); skipped")
    return rows


def retried_last(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each report once. A trial whose node was lost restarts from its last checkpoint Ray
    registered, which can be older than its last result: Ray records the re-run reports again
    (same ``training_iteration``), and the re-run is the one the training went on from."""
    kept: list[dict[str, Any]] = []
    for row in rows:
        iteration = row.get("training_iteration")
        while kept and iteration is not None and kept[-1].get("training_iteration", 0) >= iteration:
            kept.pop()
        kept.append(row)
    return kept


FAILURE = re.compile(r"^Failure # \d+ \(occurred at (\S+)\)", re.MULTILINE)
"""How Ray Tune starts each failure in a trial's error.txt (local time, to the second)."""


def failed_last(error_text: str | None, history: list[dict[str, Any]]) -> bool:
    """Whether the trial ended in an error. Tune keeps error.txt when a retry succeeds (the
    trial's node was lost, say): a result reported after the last failure means it recovered."""
    if error_text is None:
        return False
    failures = FAILURE.findall(error_text)
    last = history[-1].get("timestamp") if history else None
    if not failures or not isinstance(last, int | float):
        return True
    failed_at = datetime.datetime.strptime(failures[-1], "%Y-%m-%d_%H-%M-%S").timestamp()
    return last <= failed_at
