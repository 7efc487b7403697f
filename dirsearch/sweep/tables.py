"""The tables a sweep writes: the DIR result table (All / Many / Medium / Few x MAE, MSE, GM, as
the paper prints it, with mean ± std over seeds) and any list of rows as Markdown or CSV."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from typing import Any

from dirsearch.common.formatting import format_metric
from dirsearch.common.seed_statistics import mean_std
from dirsearch.imbalance.vocabulary import REGIONS, STATISTICS

REGION_TITLES = {"all": "All", "many": "Many", "medium": "Medium", "few": "Few"}
ShotMetrics = dict[str, dict[str, float]]
"""region -> statistic -> value, as ``shot_metrics`` returns it (with ``n`` per region)."""


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table of cells already written as text."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of dict rows (numbers with three decimals, missing as '-')."""
    if not rows:
        return "(no trials)"
    header = list(rows[0])
    return markdown_table(header, ([_cell(row[key]) for key in header] for row in rows))


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
        return format_metric(value)
    return str(value)


def result_table(metrics: ShotMetrics) -> str:
    """A Markdown table of one run's shot metrics; missing values show as '-'."""
    return mean_std_table([metrics])[0]


def mean_std_table(per_seed: list[ShotMetrics]) -> tuple[str, list[dict]]:
    """The test table over seeds as 'mean ± std' cells (plain values for one seed), plus the
    same numbers as CSV rows (statistic, region, mean, std, seeds)."""
    counts = [per_seed[0][region]["n"] for region in REGIONS]
    header = [
        "Metric",
        *(f"{REGION_TITLES[r]} (n={n})" for r, n in zip(REGIONS, counts, strict=True)),
    ]
    rows, body = [], []
    for statistic in STATISTICS:
        cells = [statistic.upper()]
        for region in REGIONS:
            mean, std = mean_std(seed[region][statistic] for seed in per_seed)
            rows.append(
                {
                    "metric": statistic,
                    "region": region,
                    "mean": mean,
                    "std": std,
                    "seeds": len(per_seed),
                }
            )
            cell = format_metric(mean)
            if len(per_seed) > 1 and not math.isnan(mean):  # some seed had a value
                cell += f" ± {format_metric(std)}"
            cells.append(cell)
        body.append(cells)
    return markdown_table(header, body), rows
