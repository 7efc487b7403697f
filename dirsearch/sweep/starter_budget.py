"""The model and budget ``dirsearch init`` writes, sized so the default sweep takes minutes on a
CPU: a first look at what LDS and FDS do on the data, not the final run.

- Tabular data: an MLP (64x64 below 5,000 training rows, else 128x128); epochs so that a trial
  sees about ``TABULAR_SAMPLES`` training rows in all (10 to 50 epochs); 20 trials.
- Images: ``small_cnn`` at 32 px; epochs so that a trial sees about ``IMAGE_SAMPLES`` images
  (the demo's 6,104 images x 10 epochs; 5 to 30 epochs); 12 trials.

ASHA's grace period is a fifth of the epochs, FDS starts a third of the way in (statistics from
the first epochs track features that still change fast), and Optuna samples a third of the
trials at random before TPE models the rest. Two trials run at a time, one CPU each.
"""

from __future__ import annotations

from dataclasses import dataclass

TABULAR_SAMPLES = 200_000
IMAGE_SAMPLES = 60_000
SMALL_TABLE = 5_000


@dataclass(frozen=True)
class Budget:
    """Model, training and search settings of the written space file."""

    arch: str
    mlp_hidden: tuple[int, ...] | None
    image_size: int | None
    epochs: int
    batch_size: int
    num_samples: int
    grace_period: int
    startup_trials: int
    fds_start_update: int

    @property
    def fds_start_smooth(self) -> int:
        return self.fds_start_update + 1


def size_budget(kind: str, train_rows: int) -> Budget:
    """The budget for ``train_rows`` training rows of ``kind`` (``tabular`` or ``csv_images``)."""
    rows = max(1, train_rows)
    if kind == "tabular":
        hidden = (64, 64) if rows < SMALL_TABLE else (128, 128)
        epochs, trials, image_size = _clamp(round(TABULAR_SAMPLES / rows), 10, 50), 20, None
        arch: str = "mlp"
    else:
        hidden, arch, image_size = None, "small_cnn", 32
        epochs, trials = _clamp(round(IMAGE_SAMPLES / rows), 5, 30), 12
    return Budget(
        arch=arch,
        mlp_hidden=hidden,
        image_size=image_size,
        epochs=epochs,
        batch_size=_batch_size(rows),
        num_samples=trials,
        grace_period=max(1, epochs // 5),
        startup_trials=max(2, trials // 3),
        fds_start_update=epochs // 3,
    )


def _batch_size(rows: int) -> int:
    """A power of two near a twentieth of the training rows, 32 to 256: enough steps per epoch
    for a small table, full batches for a large one."""
    size = 32
    while size * 2 <= min(256, rows / 20):
        size *= 2
    return size


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))
