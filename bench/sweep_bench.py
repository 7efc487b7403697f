"""What the sweep layer costs and saves, each measured within one run on a local Ray.

    python bench/sweep_bench.py overhead        # epoch time under Tune vs `dirsearch train`
    python bench/sweep_bench.py asha            # ASHA vs the same configurations run in full
    python bench/sweep_bench.py tpe             # TPE vs random search, several search seeds
    python bench/sweep_bench.py history --trials 2000   # TPE on a bounded history, at scale
    python bench/sweep_bench.py scale --trials 1000   # driver cost per trial by slices, RSS

Every experiment starts from search_spaces/demo.yaml (synthetic AgeDB-DIR-shaped images), so
the numbers speak of the demo's trials; ``--scale`` and ``--epochs`` shrink them.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import resource
import statistics
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import optuna
import ray
import torch
from ray import tune

from dirsearch.sweep.paths import with_overrides
from dirsearch.sweep.records import read_trials
from dirsearch.sweep.settings import SchedulerSettings, SearcherSettings
from dirsearch.sweep.spec import SweepSpec
from dirsearch.sweep.spec_reader import load_sweep_spec
from dirsearch.train.loop import run_trial
from dirsearch.tune.driver import configure_driver
from dirsearch.tune.runner import run
from dirsearch.tune.search.bounded_tpe import BoundedHistoryTPESampler
from dirsearch.tune.tuners import search_tuner

DEMO = Path(__file__).resolve().parents[1] / "search_spaces" / "demo.yaml"


def demo_spec(scale: float, epochs: int) -> SweepSpec:
    spec = load_sweep_spec(DEMO)
    fixed = with_overrides(spec.fixed, {"data.scale": scale, "train.epochs": epochs})
    return dataclasses.replace(spec, fixed=fixed)


def with_search(spec: SweepSpec, **changes: Any) -> SweepSpec:
    return dataclasses.replace(spec, search=dataclasses.replace(spec.search, **changes))


def as_grid(spec: SweepSpec, points: list[dict[str, Any]], scheduler: str) -> SweepSpec:
    """The same configurations in order, with ASHA (the demo's settings) or run in full."""
    settings = dataclasses.replace(spec.search.scheduler, name=scheduler)
    spec = with_search(spec, searcher=SearcherSettings(name="grid"), scheduler=settings)
    return dataclasses.replace(spec, points=tuple(points), dimensions=())


def sample_points(spec: SweepSpec, count: int, seed: int) -> list[dict[str, Any]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    points = []
    for _ in range(count):
        trial = study.ask()
        points.append(spec.space()(trial))
        study.tell(trial, 0.0)
    return points


def run_sweep(spec: SweepSpec, folder: Path) -> tuple[float, list[Any], str]:
    started = time.perf_counter()
    outcome = run(spec, DEMO.read_text(), str(folder), say=lambda line: None)
    return time.perf_counter() - started, read_trials(outcome.folder), outcome.table


def test_few_mae(folder: Path) -> float:
    for line in (folder / "results.csv").read_text().splitlines():
        fields = line.split(",")
        if fields[:2] == ["mae", "few"]:
            return float(fields[2])
    return math.nan


def overhead(args: argparse.Namespace, work: Path) -> None:
    spec = demo_spec(args.scale, args.epochs)
    config = spec.trial_config({})
    torch.set_num_threads(1)  # what a 1-CPU trial gets under Tune
    direct = run_trial(config, work / "direct")
    direct_epochs = [row["time/epoch_s"] for row in direct.history][1:]
    grid = as_grid(spec, [{}], "fifo")
    _, (record,), _ = run_sweep(grid, work / "tune")
    tune_epochs = [row["time/epoch_s"] for row in record.history][1:]
    a, b = statistics.median(direct_epochs), statistics.median(tune_epochs)
    print(f"epoch time, median of epochs 2..{args.epochs} (1 thread, scale {args.scale}):")
    print(f"  dirsearch train  {a:.3f} s")
    print(f"  under Ray Tune   {b:.3f} s   ratio {b / a:.3f} ({(b / a - 1) * 100:+.1f}%)")


def asha(args: argparse.Namespace, work: Path) -> None:
    spec = demo_spec(args.scale, args.epochs)
    points = sample_points(spec, args.trials, seed=args.seed)
    rows = []
    for scheduler in ("asha", "fifo"):
        seconds, records, _ = run_sweep(as_grid(spec, points, scheduler), work / scheduler)
        metric, mode = spec.search.objective, spec.search.objective_mode
        best = min(records, key=lambda r: r.score(metric, mode))
        epochs = sum(r.epochs for r in records)
        rows.append((scheduler, epochs, best.score(metric, mode), test_few_mae(work / scheduler)))
        rows[-1] += (seconds,)
    print(f"{args.trials} random configurations (seed {args.seed}), up to {args.epochs} epochs:")
    print("scheduler  epochs  best val few MAE  its test few MAE  wall s")
    for name, epochs, val, test, seconds in rows:
        print(f"{name:9} {epochs:7d} {val:17.3f} {test:17.3f} {seconds:7.0f}")
    (_, asha_epochs, asha_val, _, _), (_, full_epochs, full_val, _, _) = rows
    print(
        f"ASHA used {asha_epochs / full_epochs:.0%} of the epochs; its best val few-shot MAE is "
        f"{(asha_val / full_val - 1) * 100:+.1f}% from the full-budget best"
    )


def tpe(args: argparse.Namespace, work: Path) -> None:
    spec = with_search(demo_spec(args.scale, args.epochs), num_samples=args.trials)
    spec = dataclasses.replace(spec, points=())  # start points would hand both the same trials
    curves: dict[str, list[list[float]]] = {"optuna": [], "random": []}
    for seed in args.search_seeds:
        for name in curves:
            searcher = dataclasses.replace(spec.search.searcher, name=name, seed=seed)
            _, records, _ = run_sweep(with_search(spec, searcher=searcher), work / f"{name}{seed}")
            scores = [
                r.score(spec.search.objective, "min")
                for r in sorted(records, key=lambda r: r.number)
            ]
            curves[name].append([min(scores[: n + 1]) for n in range(len(scores))])
    print(f"best val few-shot MAE after N trials, mean over search seeds {args.search_seeds}:")
    print("N   " + "  ".join(f"{name:>8}" for name in curves))
    for n in range(args.trials):
        means = [statistics.fmean(curve[n] for curve in curves[name]) for name in curves]
        print(f"{n + 1:<3} " + "  ".join(f"{value:8.3f}" for value in means))


def synthetic_objective(overrides: dict[str, Any]) -> float:
    """A smooth stand-in for the demo's few-shot MAE with its conditional structure (minimum
    6.8: sqrt_inv + LDS gaussian ks 5 sigma 1.7 + FDS momentum 0.8 + lr 1.5e-3)."""
    value = 8.0 + 2.0 * math.log(overrides["train.lr"] / 1.5e-3) ** 2
    value += {"none": 1.5, "inverse": 0.8, "sqrt_inv": 0.0}[overrides["imbalance.reweight"]]
    if overrides.get("imbalance.lds.enabled"):
        value += -0.8 + 0.5 * math.log(overrides["imbalance.lds.sigma"] / 1.7) ** 2
        value += {"gaussian": 0.0, "triang": 0.2, "laplace": 0.1}[overrides["imbalance.lds.kernel"]]
        value += 0.05 * abs(overrides["imbalance.lds.ks"] - 5)
    if overrides["imbalance.fds.enabled"]:
        value += -0.4 + 3.0 * (overrides["imbalance.fds.momentum"] - 0.8) ** 2
    return value


def simulated_study(sampler: optuna.samplers.BaseSampler, spec: SweepSpec, trials: int) -> Any:
    """``trials`` suggestions over the demo's space, 2 running at a time, each told like the
    sweep tells Optuna: a trial whose value is among the best ninth so far completes (10
    epochs), the others are pruned after 2 (ASHA's first rung). Returns the values in trial
    order and the driver CPU seconds per suggestion for each trial."""
    study = optuna.create_study(sampler=sampler)
    space, running, values, seconds = spec.space(), [], [], []
    for _ in range(trials):
        started = time.process_time()
        trial = study.ask()
        running.append((trial, synthetic_objective(space(trial))))
        seconds.append(time.process_time() - started)
        if len(running) < 2:
            continue
        trial, value = running.pop(0)
        epochs = 10 if sum(v < value for v in values) < len(values) / 9 else 2
        for epoch in range(1, epochs + 1):
            trial.report(value * (1 + 2 / epoch), epoch)
        if epochs == 10:
            study.tell(trial, value)
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        values.append(value)
    return values, seconds


def history(args: argparse.Namespace, work: Path) -> None:
    spec = demo_spec(args.scale, args.epochs)
    startup = spec.search.searcher.startup_trials
    kinds: dict[str, Any] = {
        "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
        "TPE, all trials": lambda seed: optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=startup, multivariate=True, group=True
        ),
    }
    for recent in args.recent:
        kinds[f"TPE, recent {recent}"] = lambda seed, recent=recent: BoundedHistoryTPESampler(
            recent=recent, seed=seed, n_startup_trials=startup
        )
    marks = [n for n in (100, 250, 500, 1000, 2000, 3000, 5000, 10000) if n < args.trials]
    marks.append(args.trials)
    tail = min(500, args.trials // 2)
    print(
        f"synthetic objective over the demo space (minimum 6.8), {args.trials} trials, "
        f"search seeds {args.search_seeds}; best value after N trials, mean over the seeds:"
    )
    print(
        f"{'sampler':18}"
        + "".join(f"{f'N={n}':>9}" for n in marks)
        + f"  mean of last {tail}  CPU ms/suggestion (first {tail}, last {tail})"
    )
    for name, make in kinds.items():
        runs = [simulated_study(make(seed), spec, args.trials) for seed in args.search_seeds]
        best = [statistics.fmean(min(values[:n]) for values, _ in runs) for n in marks]
        last = statistics.fmean(statistics.fmean(values[-tail:]) for values, _ in runs)
        first_ms = statistics.fmean(statistics.fmean(s[:tail]) for _, s in runs) * 1000
        last_ms = statistics.fmean(statistics.fmean(s[-tail:]) for _, s in runs) * 1000
        print(
            f"{name:18}"
            + "".join(f"{value:9.3f}" for value in best)
            + f"  {last:17.3f}  {first_ms:8.1f} {last_ms:8.1f}",
            flush=True,
        )


def noop_trial(config: dict[str, Any], epochs: int) -> None:
    """Reports like a trial (a decreasing objective per epoch) but trains nothing."""
    level = 10.0 + sum(hash(str(v)) % 7 for v in config.values())
    for epoch in range(1, epochs + 1):
        tune.report({"val/few/mae": level / epoch, "epoch": epoch, "status": "running"})


class DriverClock(tune.Callback):
    """The driver's wall clock, CPU time and RSS each time a trial ends, in order of ending:
    the cost of the trials between two marks is the driver's cost per trial at that size. It
    also notes when Ray's experiment state in ``folder`` changed (a save reached the storage):
    the longest gap is the most trial starts a killed driver could lose."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.marks: list[tuple[float, float, int]] = []
        self.saves: list[float] = []
        self.state_file: Path | None = None

    def start(self) -> None:
        self.marks = [self._now()]

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._mark()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._mark()

    def _mark(self) -> None:
        self.marks.append(self._now())
        if self.state_file is None:
            self.state_file = next(iter(self.folder.glob("experiment_state-*.json")), None)
        if self.state_file is not None:
            saved = self.state_file.stat().st_mtime
            if not self.saves or saved != self.saves[-1]:
                self.saves.append(saved)

    @staticmethod
    def _now() -> tuple[float, float, int]:
        return time.perf_counter(), time.process_time(), rss_bytes()


def rss_bytes() -> int:
    """The driver's resident set now (Linux); ru_maxrss gives only the peak."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def slice_rows(marks: list[tuple[float, float, int]], size: int) -> list[str]:
    """One row per ``size`` trials: wall and driver-CPU seconds per trial, RSS at its end."""
    rows = ["trials        wall s/trial  driver CPU s/trial  RSS GiB"]
    for first in range(0, len(marks) - 1, size):
        last = min(first + size, len(marks) - 1)
        (wall_a, cpu_a, _), (wall_b, cpu_b, rss) = marks[first], marks[last]
        count = last - first
        rows.append(
            f"{first + 1:>5}-{last:<6} {(wall_b - wall_a) / count:12.3f} "
            f"{(cpu_b - cpu_a) / count:19.3f} {rss / 2**30:8.2f}"
        )
    return rows


def scale(args: argparse.Namespace, work: Path) -> None:
    spec = with_search(
        demo_spec(args.scale, args.epochs),
        num_samples=args.trials,
        scheduler=SchedulerSettings(name="asha", grace_period=2, reduction_factor=3),
    )
    trainable = tune.with_resources(
        tune.with_parameters(noop_trial, epochs=args.epochs), {"cpu": 1}
    )
    clock = DriverClock(work / "scale")
    tuner = search_tuner(spec, str(work / "scale"), [clock], lambda line: None, trainable)
    started = time.perf_counter()
    clock.start()
    results = tuner.fit()
    seconds = time.perf_counter() - started
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"{len(results)} no-op trials x up to {args.epochs} reports, Optuna TPE + ASHA, "
        "2 at a time:"
    )
    reports = sum(
        len(result.metrics_dataframe) for result in results if result.metrics_dataframe is not None
    )
    print(f"  {results.num_terminated} finished, {results.num_errors} errored, {reports} reports")
    print(f"  {seconds:.0f} s in all, {seconds / len(results):.3f} s per trial")
    print(
        f"  driver peak RSS {rss_gib:.2f} GiB ({clock.marks[-1][2] / 2**30:.2f} GiB when the "
        "last trial ended; Tune then loads every trial's results for its ResultGrid)"
    )
    print(f"  after the last trial ended: {seconds - (clock.marks[-1][0] - started):.1f} s")
    gaps = [b - a for a, b in pairwise(clock.saves)]
    if gaps:
        print(
            f"  experiment state saved {len(clock.saves)} times while trials ran; longest gap "
            f"between saves {max(gaps):.1f} s, the last one {gaps[-1]:.1f} s"
        )
    print("\n".join(f"  {row}" for row in slice_rows(clock.marks, args.slice)))
    first, last = clock.marks[: args.slice + 1], clock.marks[-args.slice - 1 :]
    ratio = ((last[-1][0] - last[0][0]) / (len(last) - 1)) / (
        (first[-1][0] - first[0][0]) / (len(first) - 1)
    )
    print(f"  last {len(last) - 1} trials cost {ratio:.2f}x the first {len(first) - 1} per trial")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=["overhead", "asha", "tpe", "history", "scale"])
    parser.add_argument("--scale", type=float, default=0.5, help="synthetic data scale")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0, help="asha: sampling seed")
    parser.add_argument("--search-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--slice", type=int, default=500, help="scale: trials per row")
    parser.add_argument(
        "--recent", type=int, nargs="+", default=[250, 1000], help="history: TPE views"
    )
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    configure_driver()
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False)
    with tempfile.TemporaryDirectory() as folder:
        experiments = {"overhead": overhead, "asha": asha, "tpe": tpe, "scale": scale}
        experiments["history"] = history
        experiments[args.experiment](args, Path(folder))
    ray.shutdown()


if __name__ == "__main__":
    main()
