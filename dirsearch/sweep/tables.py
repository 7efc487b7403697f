"""The DIR result table: All / Many / Medium / Few x MAE, MSE, GM, as the paper prints it."""

from __future__ import annotations

import math

from dirsearch.imbalance.metrics import REGIONS, STATISTICS

REGION_TITLES = {"all": "All", "many": "Many", "medium": "Medium", "few": "Few"}


def format_value(value: float | None) -> str:
    """Three decimals; a missing value (empty shot region) shows as '-', never as a number."""
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def result_table(metrics: dict[str, dict[str, float]]) -> str:
    """A Markdown table of shot metrics (``shot_metrics`` output); missing values show as '-'."""
    header = ["Metric", *(f"{REGION_TITLES[r]} (n={metrics[r]['n']})" for r in REGIONS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for statistic in STATISTICS:
        cells = [format_value(metrics[region][statistic]) for region in REGIONS]
        lines.append("| " + " | ".join([statistic.upper(), *cells]) + " |")
    return "\n".join(lines)
