"""Trials of a sweep read from its folder, ranked, and written as Markdown and CSV tables.

Reads only the files Ray Tune leaves in each trial folder (``params.json``: the sampled values;
``result.json``: one JSON line per report; ``error.txt`` when it failed), through pyarrow's file
systems, so the same code serves a local folder, a shared path or an object store, and
``dirsearch report`` needs no running Ray.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pyarrow import fs as pafs

from dirsearch.imbalance.metrics import REGIONS, STATISTICS
from dirsearch.sweep.dimensions import format_value as format_setting
from dirsearch.sweep.tables import REGION_TITLES, format_value

TRIAL_PREFIX = "trial_"
"""Trial folders are ``trial_<number>_<id>`` (see ``trial_folder_name``)."""


def trial_number(trial: Any) -> int:
    """A Ray trial's creation order, from 1: the prefix of its experiment tag ("3_lr=0.1")."""
    return int(str(trial.experiment_tag).split("_", 1)[0])


def parse_folder_name(name: str) -> tuple[int, str]:
    """(number, trial id) of a trial folder name."""
    number, trial_id = name.removeprefix(TRIAL_PREFIX).split("_", 1)
    return int(number), trial_id


def trial_folder_name(trial: Any) -> str:
    """Named by number and id only: sampled values (loss mappings, say) make poor names."""
    return f"{TRIAL_PREFIX}{trial_number(trial):04d}_{trial.trial_id}"


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
        if last.get("status") == "diverged":
            return f"diverged at epoch {self.epochs + 1}"
        if self.errored:
            return "errored"
        if self.epochs >= max_epochs:
            return "completed"
        if not self.history:
            return "not started"
        return f"stopped at epoch {self.epochs}"

    def best(self, metric: str, mode: str) -> dict[str, Any] | None:
        """The report with the best ``metric`` (the epoch the trainer kept as best)."""
        rows = [r for r in self.history if _finite(r.get(metric)) and r.get("status") != "diverged"]
        if not rows:
            return None
        pick = min if mode == "min" else max
        return pick(rows, key=lambda row: row[metric])

    def score(self, metric: str, mode: str) -> float:
        """The objective for ranking: the best value, or the worst possible without one."""
        best = self.best(metric, mode)
        if best is None:
            return math.inf if mode == "min" else -math.inf
        return float(best[metric])


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow file system and path of a local folder or a URI (s3://, gs://, ...)."""
    if "://" in location:
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), location


def read_text(location: str) -> str | None:
    """A file's text, or None when it does not exist."""
    system, path = filesystem(location)
    if system.get_file_info(path).type != pafs.FileType.File:
        return None
    with system.open_input_stream(path) as stream:
        return stream.read().decode()


def write_text(location: str, text: str) -> None:
    system, path = filesystem(location)
    system.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with system.open_output_stream(path) as stream:
        stream.write(text.encode())


def read_trials(experiment: str) -> list[TrialRecord]:
    """Every trial folder directly under an experiment folder, in trial order."""
    system, path = filesystem(experiment)
    infos = system.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    records = []
    for info in infos:
        if info.type != pafs.FileType.Directory or not info.base_name.startswith(TRIAL_PREFIX):
            continue
        folder = f"{experiment.rstrip('/')}/{info.base_name}"
        params = read_text(f"{folder}/params.json")
        results = read_text(f"{folder}/result.json") or ""
        number, trial_id = parse_folder_name(info.base_name)
        history = retried_last([json.loads(line) for line in results.splitlines() if line.strip()])
        records.append(
            TrialRecord(
                number=number,
                trial_id=trial_id,
                overrides=json.loads(params) if params else {},
                history=history,
                errored=failed_last(read_text(f"{folder}/error.txt"), history),
            )
        )
    return sorted(records, key=lambda record: record.number)


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


def ranked(records: Iterable[TrialRecord], metric: str, mode: str) -> list[TrialRecord]:
    """Best first; ties keep trial order."""
    sign = 1 if mode == "min" else -1
    return sorted(records, key=lambda r: (sign * r.score(metric, mode), r.number))


def leaderboard_rows(
    records: list[TrialRecord], metric: str, mode: str, max_epochs: int
) -> list[dict[str, Any]]:
    """One row per trial, best first: sampled values, status, epochs, best val metrics."""
    searched = sorted({path for record in records for path in record.overrides})
    rows = []
    for rank, record in enumerate(ranked(records, metric, mode), start=1):
        best = record.best(metric, mode) or {}
        row: dict[str, Any] = {
            "rank": rank,
            "trial": record.number,
            "status": record.status(max_epochs),
            "epochs": record.epochs,
            "best_epoch": int(best["epoch"]) if "epoch" in best else None,
        }
        for path in searched:
            row[path] = format_setting(record.overrides[path]) if path in record.overrides else ""
        for region in REGIONS:
            row[f"val/{region}/mae"] = best.get(f"val/{region}/mae")
        row[metric] = best.get(metric)
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of dict rows (numbers with three decimals, missing as '-')."""
    if not rows:
        return "(no trials)"
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[key]) for key in header) + " |")
    return "\n".join(lines)


def csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format_value(value)
    return str(value)


def mean_std_table(per_seed: list[dict[str, dict[str, float]]]) -> tuple[str, list[dict]]:
    """The test table over seeds as 'mean ± std' cells (plain values for one seed), plus the
    same numbers as CSV rows (statistic, region, mean, std, seeds)."""
    rows, lines = [], []
    counts = [per_seed[0][region]["n"] for region in REGIONS]
    header = [
        "Metric",
        *(f"{REGION_TITLES[r]} (n={n})" for r, n in zip(REGIONS, counts, strict=True)),
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for statistic in STATISTICS:
        cells = []
        for region in REGIONS:
            values = [seed[region][statistic] for seed in per_seed]
            values = [value for value in values if _finite(value)]
            mean = statistics.fmean(values) if values else math.nan
            std = statistics.stdev(values) if len(values) > 1 else math.nan
            rows.append(
                {
                    "metric": statistic,
                    "region": region,
                    "mean": mean,
                    "std": std,
                    "seeds": len(per_seed),
                }
            )
            cell = format_value(mean)
            if len(per_seed) > 1 and values:
                cell += f" ± {format_value(std)}"
            cells.append(cell)
        lines.append("| " + " | ".join([statistic.upper(), *cells]) + " |")
    return "\n".join(lines), rows
