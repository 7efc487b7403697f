"""A validated sweep: the fixed trial, the search settings, the dimensions and the start points,
resolved (paths absolute), and its plain-data form in the sweep folder (``sweep.json``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dirsearch.config.files import trial_config_from_dict
from dirsearch.config.loader import ConfigLoader, plain_data
from dirsearch.config.problems import Problems
from dirsearch.config.trial import TrialConfig
from dirsearch.sweep.dimensions import Condition, Dimension, SearchSpace
from dirsearch.sweep.paths import with_overrides
from dirsearch.sweep.settings import SearchSettings


@dataclass(frozen=True)
class SweepSpec:
    """Everything one sweep depends on, resolved: paths absolute, the fixed trial validated."""

    source: str
    experiment: str
    fixed: dict[str, Any]
    """The fixed trial mapping (every key, paths absolute): overrides apply on top of it."""
    search: SearchSettings
    dimensions: tuple[Dimension, ...]
    points: tuple[dict[str, Any], ...]
    """Start points (optuna, random) or the grid's points (grid), as dotted overrides."""
    bins_from: str = ""
    """How the file gave ``data.bins`` when the bins in ``fixed`` were derived from the training
    targets (``auto``, ``{width: auto}``); empty for bins the file gave as numbers."""

    def trial_config(self, overrides: dict[str, Any], seed: int | None = None) -> TrialConfig:
        """The TrialConfig of one trial (``seed`` replaces the fixed seed, for repeats)."""
        mapping = with_overrides(self.fixed, overrides)
        if seed is not None:
            mapping["seed"] = seed
        return trial_config_from_dict(mapping, self.source, Path(self.source).parent)

    def space(self) -> SearchSpace:
        return SearchSpace(self.fixed, list(self.dimensions))

    @property
    def epochs(self) -> int:
        return int(self.fixed["train"]["epochs"])

    @property
    def total_trials(self) -> int:
        """A grid runs each of its points once; the other searchers ``num_samples`` trials."""
        grid = self.search.searcher.name == "grid"
        return len(self.points) if grid else self.search.num_samples

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for the sweep folder), read back by ``spec_from_dict``."""
        return plain_data(dataclasses.asdict(self))


def spec_from_dict(data: dict[str, Any]) -> SweepSpec:
    """Inverse of ``SweepSpec.to_dict`` (the sweep folder's copy, already validated)."""
    loader = ConfigLoader(Problems(data["source"]))
    dimensions = tuple(
        Dimension(
            **{
                **item,
                "values": tuple(item["values"]),
                "conditions": tuple(
                    Condition(c["path"], tuple(c["values"])) for c in item["conditions"]
                ),
            }
        )
        for item in data["dimensions"]
    )
    return SweepSpec(
        source=data["source"],
        experiment=data["experiment"],
        fixed=data["fixed"],
        search=loader.build(SearchSettings, data["search"], "search"),
        dimensions=dimensions,
        points=tuple(data["points"]),
        bins_from=data.get("bins_from", ""),
    )
