"""The epoch progress bar and the DIR result table."""

from __future__ import annotations

import io
import math

from dirsearch.common.formatting import format_metric
from dirsearch.sweep.tables import result_table
from dirsearch.train.progress import EpochProgress


class Terminal(io.StringIO):
    """A text stream that says it is a terminal, as sys.stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_and_clears_its_line() -> None:
    stream = Terminal()
    bar = EpochProgress("epoch 1/3", 4, stream=stream)
    bar.update(4, 1024, 2.5)
    bar.close()
    drawn = stream.getvalue()
    assert drawn.startswith("\repoch 1/3 [" + "#" * 24 + "] 4/4 loss 2.5000 ")
    assert " samples/s" in drawn
    assert drawn.endswith("\r\033[K")


def test_progress_is_silent_off_a_terminal_or_when_disabled() -> None:
    for bar in (
        EpochProgress("e", 2, stream=io.StringIO()),
        EpochProgress("e", 2, enabled=False, stream=Terminal()),
    ):
        bar.update(2, 10, 1.0)
        bar.close()
        assert bar.stream.getvalue() == ""


def test_result_table_layout_and_missing_regions() -> None:
    region = {"mae": 1.0, "mse": 2.0, "gm": 0.5, "n": 3}
    empty = {"mae": math.nan, "mse": math.nan, "gm": math.nan, "n": 0}
    table = result_table({"all": region, "many": region, "medium": empty, "few": region})
    assert table.splitlines() == [
        "| Metric | All (n=3) | Many (n=3) | Medium (n=0) | Few (n=3) |",
        "|---|---|---|---|---|",
        "| MAE | 1.000 | 1.000 | - | 1.000 |",
        "| MSE | 2.000 | 2.000 | - | 2.000 |",
        "| GM | 0.500 | 0.500 | - | 0.500 |",
    ]
    assert format_metric(None) == "-"
