"""What the sweep layer costs and saves, each measured within one run on a local Ray.

    python bench/sweep_bench.py overhead        # epoch time under Tune vs `dirsearch train`
    python bench/sweep_bench.py asha            # ASHA vs the same configurations run in full
    python bench/sweep_bench.py tpe             # TPE vs random search, several search seeds
    python bench/sweep_bench.py scale --trials 1000   # platform overhead per trial, driver RSS

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
        metric, mode = spec.search.metric, spec.search.mode
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
                r.score(spec.search.metric, "min") for r in sorted(records, key=lambda r: r.number)
            ]
            curves[name].append([min(scores[: n + 1]) for n in range(len(scores))])
    print(f"best val few-shot MAE after N trials, mean over search seeds {args.search_seeds}:")
    print("N   " + "  ".join(f"{name:>8}" for name in curves))
    for n in range(args.trials):
        means = [statistics.fmean(curve[n] for curve in curves[name]) for name in curves]
        print(f"{n + 1:<3} " + "  ".join(f"{value:8.3f}" for value in means))


def noop_trial(config: dict[str, Any], epochs: int) -> None:
    """Reports like a trial (a decreasing objective per epoch) but trains nothing."""
    level = 10.0 + sum(hash(str(v)) % 7 for v in config.values())
    for epoch in range(1, epochs + 1):
        tune.report({"val/few/mae": level / epoch, "epoch": epoch, "status": "running"})


def scale(args: argparse.Namespace, work: Path) -> None:
    spec = with_search(
        demo_spec(args.scale, args.epochs),
        num_samples=args.trials,
        scheduler=SchedulerSettings(name="asha", grace_period=2, reduction_factor=3),
    )
    trainable = tune.with_resources(
        tune.with_parameters(noop_trial, epochs=args.epochs), {"cpu": 1}
    )
    tuner = search_tuner(spec, str(work / "scale"), [], lambda line: None, trainable)
    started = time.perf_counter()
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
    print(f"  driver peak RSS {rss_gib:.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=["overhead", "asha", "tpe", "scale"])
    parser.add_argument("--scale", type=float, default=0.5, help="synthetic data scale")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0, help="asha: sampling seed")
    parser.add_argument("--search-seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    configure_driver()
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False)
    with tempfile.TemporaryDirectory() as folder:
        {"overhead": overhead, "asha": asha, "tpe": tpe, "scale": scale}[args.experiment](
            args, Path(folder)
        )
    ray.shutdown()


if __name__ == "__main__":
    main()
