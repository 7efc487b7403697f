"""The ablation phase: what each DIR component of the winner is worth on this data. The winner is
retrained with fresh seeds as it is and with each component it uses switched off in turn (a
Tuner of its own in ``ablation/``, so it resumes like confirm), every variant with the same
seeds, and scored on the balanced test split against the full winner seed by seed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from dirsearch.common.formatting import describe_configuration
from dirsearch.imbalance.metrics import nested_metrics
from dirsearch.sweep.ablation_table import ablation_heading, ablation_markdown, ablation_rows
from dirsearch.sweep.components import ablation_variants
from dirsearch.sweep.folder import ABLATION, ABLATION_CSV, ABLATION_MD, write_text
from dirsearch.sweep.records import read_trials
from dirsearch.sweep.spec import SweepSpec
from dirsearch.sweep.tables import ShotMetrics, csv_text
from dirsearch.tune.trainable import seeds_of
from dirsearch.tune.tuners import Callbacks, Say, fit_points


def ablate(
    spec: SweepSpec, folder: str, overrides: dict[str, Any], callbacks: Callbacks, say: Say
) -> list[dict[str, Any]] | None:
    """Train every variant of the winner (``overrides``) with ``search.ablate.seeds`` fresh
    seeds, write ``ablation.md``/``.csv`` and return its rows; None if interrupted."""
    searched = [record.overrides for record in read_trials(folder)]
    seeds = fresh_seeds(spec, searched, spec.search.ablate.seeds)
    variants = ablation_variants(spec.trial_config(overrides))
    for variant in variants:  # a variant the config rules refuse stops here, before training
        spec.trial_config({**overrides, **variant.off})
    points = [{**overrides, **v.off, "seed": seed} for v in variants for seed in seeds]
    say(f"ablating the winner: {', '.join(v.name for v in variants)}, with seeds {seeds}")
    results = fit_points(spec, f"{folder}/{ABLATION}", points, callbacks, say)
    if results is None:
        return None
    tested: dict[str, ShotMetrics] = {}
    for result in results:
        metrics = nested_metrics(result.metrics or {}, "test")
        if metrics:  # a trial that failed or diverged has no test metrics
            tested[_key(result.config)] = metrics
    per_variant: dict[str, list[ShotMetrics | None]] = {
        v.name: [tested.get(_key({**overrides, **v.off, "seed": seed})) for seed in seeds]
        for v in variants
    }
    rows = ablation_rows(per_variant)
    text = ablation_markdown(ablation_heading(describe_configuration(overrides), seeds), rows)
    write_text(f"{folder}/{ABLATION_MD}", text)
    write_text(f"{folder}/{ABLATION_CSV}", csv_text(rows))
    say(f"\n{text}")
    return rows


def fresh_seeds(spec: SweepSpec, searched: Iterable[dict[str, Any]], count: int) -> list[int]:
    """``count`` seeds that no search trial (``searched``: their overrides, each with its
    repeats) and no confirm trial trained. Confirm's seeds follow its top trials' seeds, so
    they end at most ``confirm.seeds`` past the largest search seed."""
    search = spec.search
    # {}: the fixed config's own seeds, those of every trial without a searched seed.
    last = max(seeds_of(spec, overrides, search.repeats)[-1] for overrides in [{}, *searched])
    if search.confirm.top_k > 0:
        last += search.confirm.seeds
    return [last + 1 + k for k in range(count)]


def _key(point: dict[str, Any]) -> str:
    """A trial's point as one comparable value (Ray hands its config back as a fresh dict)."""
    return json.dumps(point, sort_keys=True)
