"""A one-line progress bar per epoch (interactive terminals only) and plain summary lines."""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 24
REDRAW_SECONDS = 0.2


class EpochProgress:
    """Draws ``label [####....] done/total loss x.xxx  n samples/s`` in place on a terminal
    (``loss x.xxx conr y.yyy`` when the objective reports a term on its own).

    Redraws at most every REDRAW_SECONDS so drawing never slows training; on a non-terminal
    stream (CI logs, Ray workers) it draws nothing and the per-epoch summary line is the record.
    """

    def __init__(
        self, label: str, total: int, *, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.started = time.perf_counter()
        self.last_draw = 0.0

    def update(
        self, done: int, samples: int, loss: float, terms: dict[str, float] | None = None
    ) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last_draw < REDRAW_SECONDS and done < self.total):
            return
        self.last_draw = now
        filled = BAR_WIDTH * done // max(self.total, 1)
        rate = samples / max(now - self.started, 1e-9)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        shown = "".join(f" {name} {value:.4f}" for name, value in (terms or {}).items())
        self.stream.write(
            f"\r{self.label} [{bar}] {done}/{self.total} loss {loss:.4f}{shown} "
            f"{rate:,.0f} samples/s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
