"""Which DIR components a trial config uses, and the dotted overrides that switch each off: the
variants of the ablation (the paper's ablation table, on the user's data), and whether a config
uses none at all (the vanilla model a Pareto plot marks as the start point)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dirsearch.config.trial import TrialConfig

FULL = "full"
"""The variant with nothing switched off: the reference every other variant is compared with."""


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: the configuration with ``off`` applied on top of its overrides."""

    name: str
    off: dict[str, Any] = field(default_factory=dict)
    """Dotted overrides switching one component off (none for the full configuration)."""


def switched_off(config: TrialConfig) -> list[Variant]:
    """One variant per DIR component ``config`` uses, with that component off and the others
    kept. Re-weighting off takes LDS with it (LDS smooths the re-weighting density: on its own
    it is no valid config); LDS off keeps the re-weighting it smoothed."""
    imbalance = config.imbalance
    variants = []
    if imbalance.reweight != "none":
        off = {"imbalance.reweight": "none", "imbalance.lds.enabled": False}
        variants.append(Variant("no re-weighting", off))
        if imbalance.lds.enabled:
            variants.append(Variant("no LDS", {"imbalance.lds.enabled": False}))
    for section, title in (("fds", "FDS"), ("ranksim", "RankSim"), ("conr", "ConR")):
        if getattr(imbalance, section).enabled:
            variants.append(Variant(f"no {title}", {f"imbalance.{section}.enabled": False}))
    return variants


def ablation_variants(config: TrialConfig) -> list[Variant]:
    """The full configuration first, then each of its components switched off."""
    return [Variant(FULL), *switched_off(config)]


def is_vanilla(config: TrialConfig) -> bool:
    """True when ``config`` uses no DIR component: plain training on the imbalanced data."""
    return not switched_off(config)
