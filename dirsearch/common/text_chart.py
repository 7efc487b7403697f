"""A label histogram as a small terminal chart, the shot region of every bin marked below it.

Plain ASCII, so it reads the same in any terminal and in a log file. Each column is one bin, or
a group of neighbouring bins when there are more than ``MAX_COLUMNS`` (their largest count, so
the peak is the fullest bin, and the region most of them are in). A bin with any sample shows at
least one mark, so the rare bins that decide the few-shot error stay visible beside a tall peak.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

MAX_COLUMNS = 60
"""Fits an 80-column terminal with the axis labels."""
HEIGHT = 8
REGION_MARKS = {"many": "M", "medium": "-", "few": "f"}


def histogram_chart(
    counts: Sequence[int], regions: Sequence[str], first: str, last: str, height: int = HEIGHT
) -> list[str]:
    """Lines of the chart: bars, the region row, and the axis labels ``first``/``last`` (the
    target at the left edge of the first bin and the right edge of the last)."""
    group = max(1, math.ceil(len(counts) / MAX_COLUMNS))
    columns = [max(counts[i : i + group]) for i in range(0, len(counts), group)]
    marks = [
        REGION_MARKS[Counter(regions[i : i + group]).most_common(1)[0][0]]
        for i in range(0, len(counts), group)
    ]
    peak = max(max(columns, default=0), 1)
    bars = [math.ceil(value / peak * height) for value in columns]
    label_width = len(str(peak))
    lines = []
    for level in range(height, 0, -1):
        label = str(peak) if level == height else ""
        row = "".join("#" if bar >= level else " " for bar in bars)
        lines.append(f"{label:>{label_width}} |{row}".rstrip())
    pad = " " * (label_width + 2)
    lines.append(pad + "".join(marks))
    gap = max(1, len(columns) - len(first) - len(last))
    lines.append(pad + first + " " * gap + last)
    return lines
