"""The ``search:`` section of a space file: metric and mode, budget, resources, searcher,
scheduler, repeats and the confirm phase, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from dirsearch.config.loader import choices
from dirsearch.imbalance.vocabulary import REGIONS, STATISTICS

SEARCHERS = ("optuna", "random", "grid")


SCHEDULERS = ("asha", "fifo")


OBJECTIVES = (*(f"val/{r}/{s}" for r in REGIONS for s in STATISTICS), "train/loss")
"""Per-epoch metrics of the trainer that a sweep can optimise."""


@dataclass(frozen=True)
class Resources:
    """What one trial reserves on the cluster; fractional GPUs share a device (accounting only)."""

    cpu: float = 1.0
    """CPUs one trial reserves."""
    gpu: float = 0.0
    """GPUs one trial reserves; a fraction shares a GPU (0.25: four trials on one)."""


@dataclass(frozen=True)
class SearcherSettings:
    name: str = field(default="optuna", metadata=choices(*SEARCHERS))
    """optuna (TPE after startup_trials random ones), random, or grid (each point once)."""
    seed: int = 0
    """Seeds Optuna's sampler (TPE or random), so a search is reproducible."""
    startup_trials: int = 10
    """optuna: trials sampled at random before TPE models the results (Optuna's default 10)."""


@dataclass(frozen=True)
class SchedulerSettings:
    name: str = field(default="asha", metadata=choices(*SCHEDULERS))
    """asha (stops trials that fall behind at its rungs) or fifo (every trial runs every epoch)."""
    grace_period: int = 1
    """asha: epochs every trial gets before it can be stopped."""
    reduction_factor: int = 3
    """asha: 1 in reduction_factor trials goes on at each rung."""


@dataclass(frozen=True)
class ConfirmSettings:
    """After the search: retrain the ``top_k`` best configurations with ``seeds`` fresh seeds."""

    top_k: int = 0
    """Configurations retrained after the search (0: no confirm phase)."""
    seeds: int = 3
    """Fresh seeds each confirmed configuration is trained with."""


@dataclass(frozen=True)
class AblateSettings:
    """After the search: the winner retrained with ``seeds`` fresh seeds as it is and with each
    DIR component it uses switched off, one at a time, scored on the balanced test split."""

    seeds: int = 0
    """Fresh seeds per variant (0: no ablation)."""


MAX_OBJECTIVES = 4
"""More objectives than this is no trade-off a person can read off a front."""


@dataclass(frozen=True)
class SearchSettings:
    metric: str | tuple[str, ...] = "val/few/mae"
    """The per-epoch metric the search optimises: val/{all,many,medium,few}/{mae,mse,gm} or
    train/loss; a list (e.g. [val/few/mae, val/all/mae]) searches several objectives at once
    (multi-objective TPE, a Pareto front at the end), and ASHA stops trials on the first."""
    mode: str | tuple[str, ...] = field(default="min", metadata=choices("min", "max"))
    """min or max; a list gives one per metric, a single one applies to every metric."""
    num_samples: int = 16
    """Trials (optuna, random); a grid runs each point once instead."""
    max_concurrent: int = 2
    """Trials running at a time."""
    resources: Resources = field(default_factory=Resources)
    searcher: SearcherSettings = field(default_factory=SearcherSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    repeats: int = 1
    """Seeds per sampled configuration, trained in lockstep; the search optimises their mean."""
    confirm: ConfirmSettings = field(default_factory=ConfirmSettings)
    ablate: AblateSettings = field(default_factory=AblateSettings)
    max_failures: int = 2
    """Retries of a trial that fails (a lost node, say), each from its last checkpoint."""

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every objective, the first one first."""
        return (self.metric,) if isinstance(self.metric, str) else tuple(self.metric)

    @property
    def modes(self) -> tuple[str, ...]:
        """The mode of each objective (a single ``mode`` applies to every one)."""
        if isinstance(self.mode, str):
            return (self.mode,) * len(self.metrics)
        return tuple(self.mode)

    @property
    def objective(self) -> str:
        """The first objective: what ASHA stops on, what picks the winner and its checkpoint."""
        return self.metrics[0]

    @property
    def objective_mode(self) -> str:
        return self.modes[0]

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1


MAX_SEARCHER_SEED = 2**32 - 1
"""Optuna's samplers seed numpy, whose seeds are 32-bit and not negative."""
SEARCH_LIMITS = {
    "search.num_samples": 100_000,
    "search.max_concurrent": 10_000,
    "search.repeats": 100,
    "search.confirm.top_k": 1000,
    "search.confirm.seeds": 100,
    "search.ablate.seeds": 100,
    "search.max_failures": 100,
    "search.searcher.startup_trials": 100_000,
    "search.scheduler.reduction_factor": 1000,
    "search.resources.cpu": 10_000,
    "search.resources.gpu": 1000,
}
"""Upper limits of the search settings, far above any real sweep: a number beyond them is a
typo (or a hostile file) that would otherwise reach Ray as a sweep of 10^20 trials."""


def search_limit_problems(search: SearchSettings) -> list[tuple[str, str]]:
    """(key, problem) for each search setting beyond its limit."""
    found = []
    for key, limit in SEARCH_LIMITS.items():
        value: object = search
        for name in key.split(".")[1:]:
            value = getattr(value, name)
        if isinstance(value, int | float) and value > limit:
            found.append((key, f"must be at most {limit:,}, got {str(value)[:40]}"))
    seed = search.searcher.seed
    if not 0 <= seed <= MAX_SEARCHER_SEED:
        found.append(
            ("search.searcher.seed", f"must be 0 to {MAX_SEARCHER_SEED:,}, got {str(seed)[:40]}")
        )
    return found
