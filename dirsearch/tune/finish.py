"""The end of a sweep: the leaderboard, then the winner on the balanced test split (or the
confirm phase), handed to every callback that publishes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from dirsearch.common.formatting import describe_configuration
from dirsearch.errors import ConfigError
from dirsearch.sweep.folder import (
    IMPORTANCE_MD,
    LEADERBOARD_CSV,
    LEADERBOARD_MD,
    PARETO_CSV,
    PARETO_MD,
    RESULTS_CSV,
    RESULTS_MD,
    write_text,
)
from dirsearch.sweep.front_table import front_markdown, front_rows, tested_front
from dirsearch.sweep.importance import Reading, importance_markdown, importance_readings
from dirsearch.sweep.leaderboard import candidates, leaderboard_rows
from dirsearch.sweep.pareto import Front, sweep_front
from dirsearch.sweep.records import TrialRecord, read_trials
from dirsearch.sweep.spec import SweepSpec
from dirsearch.sweep.tables import csv_text, markdown, mean_std_table
from dirsearch.tune.ablation import ablate
from dirsearch.tune.confirm import confirm
from dirsearch.tune.test_split import evaluate_trials
from dirsearch.tune.tuners import Callbacks, Say


@dataclass(frozen=True)
class FinalResult:
    """What ``finish`` hands to every callback with a ``sweep_finished(result)`` method (the
    MLflow tracker): the sweep's final tables without re-reading them from the folder."""

    rows: list[dict[str, Any]]
    """The leaderboard, best first."""
    records: list[TrialRecord]
    """Every search trial, in trial order."""
    best: TrialRecord | None
    """The winning search trial (None after ``confirm``: the winner is a configuration)."""
    checkpoint: Any
    """The winner's Ray checkpoint (its best weights per seed), or None after ``confirm``."""
    per_seed: list[dict[str, dict[str, float]]]
    """The winner's test metrics per seed: region -> statistic -> value."""
    heading: str
    front: Front | None = None
    """The Pareto front of a sweep with several objectives (None with one)."""
    importances: list[Reading] = field(default_factory=list)
    """The knob importances for the first objective (importance.md's readings)."""


@runtime_checkable
class FinishHook(Protocol):
    """A callback that publishes the finished sweep (the MLflow tracker)."""

    def sweep_finished(self, result: FinalResult) -> None: ...


@dataclass(frozen=True)
class SweepOutcome:
    """How ``run``/``resume`` ended: the folder, and whether every trial finished."""

    folder: str
    finished: bool
    table: str = ""


def finish(
    spec: SweepSpec,
    folder: str,
    checkpoints: dict[str, Any],
    callbacks: Callbacks,
    say: Say,
) -> SweepOutcome:
    """Leaderboard, then the winner on the balanced test split (or the confirm phase)."""
    search = spec.search
    # Only the trials of Ray's experiment: a driver killed before Ray saved its state leaves
    # folders of trials that the resumed sweep ran again under new ids.
    records = [record for record in read_trials(folder) if record.trial_id in checkpoints]
    front = sweep_front(records, spec)
    rows = leaderboard_rows(records, spec, front)
    write_text(f"{folder}/{LEADERBOARD_MD}", markdown(rows) + "\n")
    write_text(f"{folder}/{LEADERBOARD_CSV}", csv_text(rows))
    readings = importance_readings(records, spec)
    write_text(f"{folder}/{IMPORTANCE_MD}", importance_markdown(readings, spec))
    winners = candidates(records, spec)
    if not winners:
        raise ConfigError(
            f"{folder}: no trial finished with a finite {search.objective}; see {LEADERBOARD_MD}"
        )
    confirmed = search.confirm.top_k > 0
    best = winners[0]
    shown = [] if front is None else tested_front(front, spec.epochs)
    tested = evaluate_trials(
        spec,
        shown if confirmed or best.trial_id in {r.trial_id for r in shown} else [*shown, best],
        checkpoints,
    )
    if confirmed:
        outcome = confirm(spec, folder, winners[: search.confirm.top_k], callbacks, say)
        if outcome is None:
            return SweepOutcome(folder, finished=False)
        per_seed, heading, winner = outcome
    else:
        per_seed, winner = tested[best.trial_id], best.overrides
        configuration = describe_configuration(best.overrides)
        heading = f"best trial {best.number} ({configuration}), {len(per_seed)} seed(s)"
    if front is not None:
        optimal_rows = front_rows(front, search.metrics, tested)
        front_text = front_markdown(front, search.metrics, optimal_rows)
        write_text(f"{folder}/{PARETO_MD}", front_text)
        write_text(f"{folder}/{PARETO_CSV}", csv_text(optimal_rows))
        say(f"\n{front_text}")
    table, csv_rows = mean_std_table(per_seed)
    write_text(f"{folder}/{RESULTS_MD}", f"{heading}; test split:\n\n{table}\n")
    write_text(f"{folder}/{RESULTS_CSV}", csv_text(csv_rows))
    say(f"\n{heading}; test split:\n{table}")
    if search.ablate.seeds > 0 and ablate(spec, folder, winner, callbacks, say) is None:
        return SweepOutcome(folder, finished=False)
    final = FinalResult(
        rows,
        records,
        None if confirmed else best,
        None if confirmed else checkpoints[best.trial_id],
        per_seed,
        heading,
        front,
        readings,
    )
    for callback in callbacks:
        if isinstance(callback, FinishHook):
            callback.sweep_finished(final)
    return SweepOutcome(folder, finished=True, table=table)
