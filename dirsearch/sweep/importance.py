"""Which searched knob matters: parameter importances for the (first) objective at the end of a
sweep, in two readings of the same trials.

- ``completed``: the trials that ran every epoch, each at its best epoch (what the leaderboard
  ranks them by);
- ``rung``: every scored trial at one epoch they all reached (the fewest epochs any scored trial
  that did not diverge ran), so the trials ASHA stopped count too: a knob that makes trials
  poor early shows here even when none of those trials lived to the end.

Each trial goes into an in-memory Optuna study with its sampled values replayed through the
sweep's own dimensions (``Dimension.sample`` against Optuna's ``FixedTrial``), so its values
and distributions are the ones the search study had: choice labels, log scales, int steps.

The evaluator is PED-ANOVA, Optuna's default, not fANOVA: fANOVA needs scikit-learn, which no
dependency dirsearch declares guarantees (it is installed because the full ``mlflow`` package
requires it; ``mlflow-skinny`` does not, and this layer never relies on MLflow). PED-ANOVA needs
only numpy and has no random forest to seed, so the parent run's plot and importance.md read the
same numbers, computed apart.

Knobs missing from some trial of a reading (their ``when`` condition did not hold:
``imbalance.lds.sigma`` without LDS) are left out of it and named as such. Optuna's conditional
PED-ANOVA would read them per regime, but with a sweep's few trials per regime it ranked a knob
without any effect above the one that decided the objective in up to a third of trial runs of
8 to 16 trials. The knob their condition depends on is read, when it is in every trial.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dirsearch.common.formatting import format_metric
from dirsearch.sweep.dimensions import SearchSpace
from dirsearch.sweep.records import TrialRecord, scores
from dirsearch.sweep.spec import SweepSpec
from dirsearch.sweep.statuses import COMPLETED
from dirsearch.sweep.tables import markdown_table

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

TOP_TRIALS = 4
"""The fewest best trials PED-ANOVA contrasts with all of a reading's (Optuna suggests about 5):
with fewer, one lucky trial decides which knob looks important."""
MIN_TRIALS = 2 * TOP_TRIALS
"""Below this the best trials are over half of all of them, so the two sets PED-ANOVA compares
are nearly one: what it reads is chance, and the output says so instead of printing it. With 8
random trials over three knobs, one of them deciding the objective, it came first in each of 30
trial runs."""
TARGET_QUANTILE = 0.1
"""Optuna's default share of best trials, used once a reading has ``TOP_TRIALS / 0.1`` trials."""


READ = {
    "completed": "the trials that ran every epoch",
    "rung": "every scored trial, stopped ones too, at the fewest epochs one ran",
}
"""What each reading reads, for importance.md."""


@dataclass(frozen=True)
class Reading:
    """One reading: the trials it read, where, and each knob's share of the importance."""

    name: str
    """``completed`` or ``rung``."""
    trials: int
    epoch: int | None
    """The epoch every trial was read at; None: each at its best epoch."""
    importances: dict[str, float]
    """Knob -> share, largest first, summing to 1; empty when there is no reading."""
    left_out: tuple[str, ...]
    """Searched knobs missing from some trial read (conditional ones)."""
    no_reading: str = ""
    """Why ``importances`` is empty."""

    @property
    def title(self) -> str:
        if not self.trials:  # the rung has no epoch without a scored trial
            return f"{self.name}, no trials"
        where = "at their best epoch" if self.epoch is None else f"at epoch {self.epoch}"
        return f"{self.name}, {self.trials} trials {where}"


def importance_readings(records: Sequence[TrialRecord], spec: SweepSpec) -> list[Reading]:
    """The ``completed`` and the ``rung`` reading of a sweep's trials."""
    metric, mode = spec.search.objective, spec.search.objective_mode
    completed = [
        (record, record.score(metric, mode))
        for record in records
        if record.status(spec.epochs) == COMPLETED and record.best(metric, mode) is not None
    ]
    epoch = rung_epoch(records, spec)
    at_rung = [] if epoch is None else [(r, value_at(r, metric, epoch)) for r in records]
    return [
        _reading("completed", completed, None, spec),
        _reading("rung", [(r, v) for r, v in at_rung if v is not None], epoch, spec),
    ]


def rung_epoch(records: Sequence[TrialRecord], spec: SweepSpec) -> int | None:
    """The fewest epochs any scored trial ran, diverged ones aside (a trial that diverged in its
    second epoch would otherwise pull every trial's reading back to its first)."""
    metric, mode = spec.search.objective, spec.search.objective_mode
    reached = [
        record.epochs
        for record in records
        if record.best(metric, mode) is not None
        and not record.status(spec.epochs).startswith("diverged")
    ]
    return min(reached, default=None)


def value_at(record: TrialRecord, metric: str, epoch: int) -> float | None:
    """The trial's ``metric`` at ``epoch``, if it reported a score there."""
    rows = [row for row in record.history if row.get("epoch") == epoch and scores(row, metric)]
    return float(rows[-1][metric]) if rows else None


def _reading(
    name: str, values: list[tuple[TrialRecord, float]], epoch: int | None, spec: SweepSpec
) -> Reading:
    searched = [dimension.path for dimension in spec.dimensions]
    # Optuna warns of small samples and of values outside a distribution; MIN_TRIALS and the
    # trials left out below are this module's answer to both, and the console stays quiet.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        space = spec.space()
        trials = [t for r, v in values if (t := _frozen_trial(space, r, v)) is not None]
        common = [path for path in searched if all(path in t.params for t in trials)]
        enough = len(trials) >= MIN_TRIALS
        shares = (
            _importances(trials, common, spec.search.objective_mode) if enough and common else {}
        )
    if not enough:
        why = f"too few trials ({len(trials)}) for a reading"
    elif not common:
        why = "no searched knob is in every trial read"
    else:
        why = "" if shares else "no knob sets the best trials apart: their values tie"
    left_out = tuple(path for path in searched if path not in common)
    return Reading(name, len(trials), epoch, shares, left_out, why)


def _frozen_trial(space: SearchSpace, record: TrialRecord, value: float) -> FrozenTrial | None:
    """The trial as Optuna's study had it; None when a value is one its dimension cannot
    produce (an edited params.json): the trial is left out rather than the end of the sweep
    failing."""
    import optuna

    overrides = record.overrides
    sampled = {d.path: overrides[d.path] for d in space.dimensions if d.path in overrides}
    replay = optuna.trial.FixedTrial(space.optuna_point(sampled))
    try:
        for dimension in space.dimensions:
            if dimension.path in sampled:
                dimension.sample(replay)
        return optuna.trial.create_trial(
            params=replay.params, distributions=replay.distributions, value=value
        )
    except ValueError:
        return None


def _importances(trials: list[FrozenTrial], params: list[str], mode: str) -> dict[str, float]:
    """PED-ANOVA's importances as shares summing to 1, largest first; empty when all are 0 (the
    best trials are all of them: their values tie), where Optuna would share 1 out equally."""
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator

    study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    study.add_trials(trials)
    quantile = max(TARGET_QUANTILE, TOP_TRIALS / len(trials))
    raw = PedAnovaImportanceEvaluator(target_quantile=quantile).evaluate(study, params=params)
    total = sum(raw.values())
    if total <= 0:
        return {}
    return dict(sorted(((k, v / total) for k, v in raw.items()), key=lambda item: -item[1]))


def importance_markdown(readings: Sequence[Reading], spec: SweepSpec) -> str:
    """importance.md: per reading, the trials and epoch it read and a table knob -> share."""
    search = spec.search
    lines = [f"parameter importance for {search.objective} ({search.objective_mode}), PED-ANOVA"]
    for reading in readings:
        lines += ["", f"{reading.title} ({READ[reading.name]}):", ""]
        if reading.importances:
            cells = [[knob, format_metric(share)] for knob, share in reading.importances.items()]
            lines.append(markdown_table(["knob", "importance"], cells))
        else:
            lines.append(reading.no_reading)
        if reading.left_out:
            lines += [
                "",
                f"left out (conditional, not in every trial): {', '.join(reading.left_out)}",
            ]
    return "\n".join(lines) + "\n"
