"""The ablation table: per variant of the winner, test MAE per region over the fresh seeds, and
the paired difference against the full winner. Paired by seed, as the same seed's run of the
full winner shares the initialisation and batch order, so the noise they share cancels and a
difference smaller than either spread can still be read."""

from __future__ import annotations

import math
from typing import Any

from dirsearch.common.formatting import format_metric
from dirsearch.common.seed_statistics import mean_std, or_none
from dirsearch.imbalance.vocabulary import REGIONS
from dirsearch.sweep.tables import REGION_TITLES, ShotMetrics, markdown_table


def ablation_rows(per_variant: dict[str, list[ShotMetrics | None]]) -> list[dict[str, Any]]:
    """One row per variant, in the given order, the first (the full winner) the reference: per
    region the test MAE's mean and std over the seeds, and the mean and std of the per-seed
    differences, variant minus full. ``per_variant``: name -> each seed's test metrics (None for
    a trial that gave none), the seeds in the same order for every variant. An empty cell
    (None) where too few seeds have a value."""
    full = next(iter(per_variant.values()))
    rows = []
    for name, per_seed in per_variant.items():
        row: dict[str, Any] = {"variant": name, "seeds": sum(m is not None for m in per_seed)}
        for region in REGIONS:
            maes = [_mae(metrics, region) for metrics in per_seed]
            differences = [
                mae - reference
                for mae, reference in zip(maes, (_mae(m, region) for m in full), strict=True)
            ]
            for stem, values in ((f"test/{region}/mae", maes), (f"{region} Δ", differences)):
                mean, std = mean_std(values)
                row[f"{stem} mean"], row[f"{stem} std"] = or_none(mean), or_none(std)
        rows.append(row)
    return rows


def ablation_markdown(heading: str, rows: list[dict[str, Any]]) -> str:
    """The rows as 'mean ± std' cells, MAE and difference side by side per region."""
    header = ["variant", "seeds"]
    for region in REGIONS:
        header += [f"{REGION_TITLES[region]} MAE", f"{REGION_TITLES[region]} Δ"]
    body = []
    for row in rows:
        cells = [row["variant"], str(row["seeds"])]
        for region in REGIONS:
            for stem in (f"test/{region}/mae", f"{region} Δ"):
                cells.append(_cell(row[f"{stem} mean"], row[f"{stem} std"]))
        body.append(cells)
    return f"{heading}\n\n{markdown_table(header, body)}\n"


def ablation_heading(configuration: str, seeds: list[int]) -> str:
    """What the table compares and how to read its differences."""
    return (
        f"Ablation of the winner ({configuration}): each DIR component it uses switched off in "
        f"turn, every variant trained with the seeds {seeds}; test MAE per region, mean ± std "
        f"over the seeds. Δ: the variant's MAE minus the full winner's on the same seed, mean ± "
        f"std over the seeds; a positive Δ means the component lowers the error on this data, "
        f"a negative one that the data does better without it."
    )


def _mae(metrics: ShotMetrics | None, region: str) -> float:
    """The region's test MAE, NaN where the trial gave none (the statistics skip it)."""
    return math.nan if metrics is None else metrics[region]["mae"]


def _cell(mean: float | None, std: float | None) -> str:
    return format_metric(mean) + ("" if std is None else f" ± {format_metric(std)}")
