"""Vectorised FDS against the per-label loop of the DIR reference code, on one CPU thread.

The loop (tests/reference_dir.py, LoopFDS) has the reference's structure: a Python loop over the
unique labels of the batch, a boolean mask per label, torch.mean / torch.var per label in
`update` and a calibration per label in `smooth`. Its cost grows with the number of bins in a
batch; the vectorised FDS should not. This script measures, in one run: median wall time per
call, the number of aten ops each implementation dispatches per call (at 10 and at 100 bins
present), and the largest difference between their results.

Run: python bench/fds_bench.py
"""

from __future__ import annotations

import functools
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from dirsearch.imbalance import FDS, Binning

BINS = 100
FEATURE_DIM = 2048
SMOOTH_BATCH = 256
UPDATE_SAMPLES = 12_000
REPEATS = {"smooth": 21, "update": 5}
SEED = 0


def load_reference() -> ModuleType:
    """Import tests/reference_dir.py by path (the tests folder is not a package)."""
    path = Path(__file__).resolve().parents[1] / "tests" / "reference_dir.py"
    spec = importlib.util.spec_from_file_location("reference_dir", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the loop reference from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class OpCounter(TorchDispatchMode):
    """Counts the aten ops dispatched while active (each is at least one kernel launch)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.count += 1
        return func(*args, **(kwargs or {}))


def make_batch(
    gen: torch.Generator, n: int, bins_present: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """n feature rows whose targets cover exactly `bins_present` bins spread over the range."""
    present = torch.linspace(0, BINS - 1, bins_present).round()
    labels = present[torch.arange(n) % bins_present][torch.randperm(n, generator=gen)]
    targets = labels + torch.rand(n, generator=gen) * 0.9 + 0.05
    features = torch.randn(n, FEATURE_DIM, generator=gen) * 1.5 + labels.unsqueeze(1) / BINS
    return features, targets


def median_ms(call: Callable[[], Any], repeats: int) -> float:
    call()  # warm-up (allocator, first-call dispatch caches)
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        call()
        times.append(time.perf_counter() - begin)
    return 1000.0 * statistics.median(times)


def count_ops(call: Callable[[], Any]) -> int:
    with OpCounter() as counter:
        call()
    return counter.count


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    reference = load_reference()
    fds = FDS(FEATURE_DIM, Binning(start=0.0, width=1.0, count=BINS))
    loop = reference.LoopFDS(FEATURE_DIM, BINS, dtype=torch.float32)

    update_data = {present: make_batch(gen, UPDATE_SAMPLES, present) for present in (10, BINS)}
    smooth_data = {present: make_batch(gen, SMOOTH_BATCH, present) for present in (10, BINS)}
    first_features, first_targets = update_data[BINS]
    fds.update(first_features, first_targets, 0)  # epoch 0: statistics replace the initial ones
    loop.update(first_features, first_targets, 0)

    rows = []
    for present in (10, BINS):
        features, targets = update_data[present]
        row: dict[str, Any] = {"call": "update", "present": present, "n": UPDATE_SAMPLES}
        for name, impl in (("loop", loop), ("vec", fds)):
            step = functools.partial(impl.update, features, targets, 1)
            row[f"{name}_ms"] = median_ms(step, REPEATS["update"])
            row[f"{name}_ops"] = count_ops(step)
        rows.append(row)
    update_diff = max(
        float((getattr(fds, name) - getattr(loop, name)).abs().max())
        for name in ("running_mean", "running_var", "smoothed_mean", "smoothed_var")
    )

    smooth_diff = 0.0
    for present in (10, BINS):
        features, targets = smooth_data[present]
        row = {"call": "smooth", "present": present, "n": SMOOTH_BATCH}
        for name, impl in (("loop", loop), ("vec", fds)):
            step = functools.partial(impl.smooth, features, targets, 1)
            row[f"{name}_ms"] = median_ms(step, REPEATS["smooth"])
            row[f"{name}_ops"] = count_ops(step)
        diff = (fds.smooth(features, targets, 1) - loop.smooth(features, targets, 1)).abs().max()
        smooth_diff = max(smooth_diff, float(diff))
        rows.append(row)

    print(
        f"FDS benchmark: {BINS} bins, feature dim {FEATURE_DIM}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread, median of {REPEATS['smooth']} (smooth) / "
        f"{REPEATS['update']} (update) calls"
    )
    header = (
        f"{'call':<7}{'samples':>8}{'bins':>6}{'loop ms':>10}{'vec ms':>9}{'speed-up':>10}"
        f"{'loop ops':>10}{'vec ops':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['call']:<7}{row['n']:>8}{row['present']:>6}{row['loop_ms']:>10.2f}"
            f"{row['vec_ms']:>9.2f}{row['loop_ms'] / row['vec_ms']:>9.1f}x"
            f"{row['loop_ops']:>10}{row['vec_ops']:>9}"
        )
    print(f"max |vectorised - loop|: update statistics {update_diff:.2e}, smooth {smooth_diff:.2e}")


if __name__ == "__main__":
    main()
