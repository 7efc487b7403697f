"""What a trial's checkpoint holds (``state.pt``), and putting a trial back into that state.

Everything a resumed trial needs to continue bit for bit: the config it was saved with (a resume
with another config is refused), the model with its FDS buffers, Balanced MSE's noise scale, the
optimiser and schedule, every RNG stream, and the loop's record (epochs done, best epoch so far,
history). The keys are a file format: checkpoints of earlier versions must keep loading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from dirsearch.config.trial import TrialConfig
from dirsearch.errors import ConfigError
from dirsearch.train import checkpoint
from dirsearch.train.objective import Objective
from dirsearch.train.optimisation import Optimisation
from dirsearch.train.rng_streams import RngStreams


@dataclass
class Best:
    """The best epoch so far by ``train.select_metric`` (1-based), its value and metrics."""

    epoch: int | None = None
    value: float = math.inf
    metrics: dict[str, float] = field(default_factory=dict)

    def improves(self, value: float) -> bool:
        """Lower is better; NaN never improves, but the first epoch always counts."""
        return self.epoch is None or (not math.isnan(value) and value < self.value)


@dataclass
class TrialRecord:
    """The loop's own progress: epochs done, the best of them, and every epoch's metrics."""

    epochs_done: int = 0
    best: Best = field(default_factory=Best)
    history: list[dict[str, float]] = field(default_factory=list)

    def add(self, metrics: dict[str, float], select: str) -> bool:
        """Record the next epoch's ``metrics``; True when it is the best so far by ``select``."""
        self.epochs_done += 1
        improved = self.best.improves(metrics[select])
        if improved:
            self.best = Best(self.epochs_done, metrics[select], dict(metrics))
        self.history.append(metrics)
        return improved


@dataclass(frozen=True)
class TrialState:
    """The parts of a trial that a checkpoint saves and restores."""

    config: TrialConfig
    model: nn.Module
    objective: Objective
    optimisation: Optimisation
    streams: RngStreams

    def save(self, record: TrialRecord) -> dict[str, Any]:
        """The ``state.pt`` mapping of the trial as it is now, after ``record``'s epochs."""
        best = record.best
        return {
            "epochs_done": record.epochs_done,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "balanced_mse": self.objective.state_dict(),
            **self.optimisation.state_dict(),
            "rng": self.streams.state(),
            "best": {"epoch": best.epoch, "value": best.value, "metrics": best.metrics},
            "history": record.history,
        }

    def restore(self, folder: Path) -> TrialRecord:
        """Load the ``state.pt`` of a checkpoint ``folder``; it must hold this trial's config."""
        state = checkpoint.load(folder / checkpoint.STATE_FILE)
        saved = _with_defaults(state["config"], TrialConfig().to_dict())
        current = self.config.to_dict()
        if saved != current:
            raise ConfigError(
                f"{folder}: checkpoint was written with a different config (first difference: "
                f"{_first_difference(saved, current)}); resume with the same config"
            )
        self.model.load_state_dict(state["model"])
        self.objective.load_state_dict(state["balanced_mse"])
        self.optimisation.load_state_dict(state)
        self.streams.restore(state["rng"])
        return TrialRecord(int(state["epochs_done"]), Best(**state["best"]), list(state["history"]))


def _with_defaults(saved: Any, defaults: Any) -> Any:
    """A saved config with the keys it lacks at their defaults: a checkpoint written before a
    field existed (``imbalance.conr``) ran with what the field's default does."""
    if not isinstance(saved, dict) or not isinstance(defaults, dict):
        return saved
    return {
        **defaults,
        **{key: _with_defaults(value, defaults.get(key)) for key, value in saved.items()},
    }


def _first_difference(saved: Any, current: Any, prefix: str = "") -> str:
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in sorted(set(saved) | set(current)):
            if saved.get(key) != current.get(key):
                return _first_difference(saved.get(key), current.get(key), f"{prefix}{key}.")
    return prefix.rstrip(".") or "(top level)"
