"""Does DIR help here? Vanilla vs SQINV vs SQINV+LDS vs SQINV+LDS+FDS on the synthetic images.

Every method trains the same model with the same budget (the default example config, only the
``imbalance`` section changes) for several seeds; the test split's MAE per shot region is printed
as mean +- std. Two more rows vary FDS: statistics collected during the training pass instead
of an extra pass (time saving vs effect on few-shot MAE), and FDS started only half-way through
training, once the features have settled. One row adds RankSim (paper defaults) to SQINV+LDS,
one ConR (paper defaults beta 4, w 1, t 0.2, e 0.01), with its cost per epoch against SQINV+LDS.

    python bench/dir_effect.py                 # 3 seeds, the example config (~30 min, 2 cores)
    python bench/dir_effect.py --seeds 0 --epochs 2 --scale 0.2   # a quick look
    python bench/dir_effect.py --methods SQINV+LDS SQINV+LDS+ConR  # ConR and its cost
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

from dirsearch.config.files import load_trial_config
from dirsearch.config.trial import TrialConfig
from dirsearch.train.loop import run_trial

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "search_spaces" / "synthetic.yaml"
REGIONS = ("all", "many", "medium", "few")


def method_configs(base: TrialConfig) -> dict[str, TrialConfig]:
    """The compared methods: only the imbalance section differs from ``base``."""
    # RankSim only where a row asks for it, whatever the base config says.
    ranksim_off = dataclasses.replace(base.imbalance.ranksim, enabled=False)
    conr_off = dataclasses.replace(base.imbalance.conr, enabled=False)
    imbalance = dataclasses.replace(base.imbalance, ranksim=ranksim_off, conr=conr_off)
    half_way = max(base.train.epochs // 2, 1)
    off = dataclasses.replace(imbalance.lds, enabled=False)
    fds_off = dataclasses.replace(imbalance.fds, enabled=False)
    lds_on = dataclasses.replace(imbalance.lds, enabled=True)
    # The paper's FDS schedule, whatever the base config says: statistics from the first epoch.
    fds_on = dataclasses.replace(
        imbalance.fds, enabled=True, statistics="extra_pass", start_update=0, start_smooth=1
    )
    variants = {
        "Vanilla": dataclasses.replace(imbalance, reweight="none", lds=off, fds=fds_off),
        "SQINV": dataclasses.replace(imbalance, reweight="sqrt_inv", lds=off, fds=fds_off),
        "SQINV+LDS": dataclasses.replace(imbalance, reweight="sqrt_inv", lds=lds_on, fds=fds_off),
        "SQINV+LDS+FDS": dataclasses.replace(
            imbalance, reweight="sqrt_inv", lds=lds_on, fds=fds_on
        ),
        "SQINV+LDS+FDS in-pass": dataclasses.replace(
            imbalance,
            reweight="sqrt_inv",
            lds=lds_on,
            fds=dataclasses.replace(fds_on, statistics="in_pass"),
        ),
        # RankSim (paper defaults gamma 100, lambda 2) on top of the re-weighting, without FDS.
        "SQINV+LDS+RankSim": dataclasses.replace(
            imbalance,
            reweight="sqrt_inv",
            lds=lds_on,
            fds=fds_off,
            ranksim=dataclasses.replace(ranksim_off, enabled=True),
        ),
        # ConR (paper defaults beta 4, w 1, t 0.2, e 0.01) on top of the re-weighting, without FDS.
        "SQINV+LDS+ConR": dataclasses.replace(
            imbalance,
            reweight="sqrt_inv",
            lds=lds_on,
            fds=fds_off,
            conr=dataclasses.replace(conr_off, enabled=True),
        ),
        # FDS statistics only from mid-training on, once the features have settled.
        "SQINV+LDS+FDS late": dataclasses.replace(
            imbalance,
            reweight="sqrt_inv",
            lds=lds_on,
            fds=dataclasses.replace(fds_on, start_update=half_way - 1, start_smooth=half_way),
        ),
    }
    return {name: dataclasses.replace(base, imbalance=value) for name, value in variants.items()}


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} +- {statistics.stdev(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    parser.add_argument("--scale", type=float, default=None, help="override data.scale")
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    parser.add_argument(
        "--methods", nargs="+", default=None, help="run only these methods (default: all)"
    )
    args = parser.parse_args()

    base = load_trial_config(args.config)
    if args.epochs is not None:
        base = dataclasses.replace(base, train=dataclasses.replace(base.train, epochs=args.epochs))
    if args.scale is not None:
        base = dataclasses.replace(base, data=dataclasses.replace(base.data, scale=args.scale))
    print(
        f"config {args.config.name}: {base.model.arch}, {base.train.epochs} epochs, "
        f"data scale {base.data.scale}, seeds {args.seeds}, select {base.train.select_metric}",
        flush=True,
    )
    methods = method_configs(base)
    unknown = set(args.methods or ()) - set(methods)
    if unknown:
        parser.error(f"unknown --methods {sorted(unknown)}; choose from {list(methods)}")
    raw: dict[str, list[dict]] = {}
    for name, config in methods.items():
        if args.methods is not None and name not in args.methods:
            continue
        for seed in args.seeds:
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as workdir:
                result = run_trial(
                    dataclasses.replace(config, seed=seed), Path(workdir), evaluate_test=True
                )
            assert result.test_metrics is not None, result.message
            epochs = result.history
            raw.setdefault(name, []).append(
                {
                    "seed": seed,
                    "test": result.test_metrics,
                    "best_epoch": result.best_epoch,
                    "seconds": time.perf_counter() - started,
                    "train_s_per_epoch": statistics.mean(e["time/train_s"] for e in epochs),
                    "fds_pass_s_per_epoch": statistics.mean(e["time/fds_pass_s"] for e in epochs),
                }
            )
            few = result.test_metrics["few"]["mae"]
            print(f"  {name:<22} seed {seed}: test few MAE {few:.2f}", flush=True)

    print("\nTest MAE (mean +- std over seeds)")
    print("| Method | All | Many | Medium | Few |\n|---|---|---|---|---|")
    for name, runs in raw.items():
        cells = [mean_std([run["test"][r]["mae"] for run in runs]) for r in REGIONS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    fds_rows = {name: runs for name, runs in raw.items() if "FDS" in name}
    if fds_rows:
        print("\nFDS statistics: extra pass vs in-pass (seconds per epoch, mean over seeds)")
        print("| Method | train pass s | FDS pass s | total s/run | few MAE |")
        print("|---|---|---|---|---|")
    for name, runs in fds_rows.items():
        print(
            f"| {name} | {statistics.mean(r['train_s_per_epoch'] for r in runs):.2f} | "
            f"{statistics.mean(r['fds_pass_s_per_epoch'] for r in runs):.2f} | "
            f"{statistics.mean(r['seconds'] for r in runs):.1f} | "
            f"{mean_std([r['test']['few']['mae'] for r in runs])} |"
        )
    if "SQINV+LDS" in raw and "SQINV+LDS+ConR" in raw:
        print("\nConR's cost: training pass seconds per epoch (mean over seeds and epochs)")
        print("| Method | train pass s/epoch | total s/run | few MAE |\n|---|---|---|---|")
        for name in ("SQINV+LDS", "SQINV+LDS+ConR"):
            runs = raw[name]
            print(
                f"| {name} | {statistics.mean(r['train_s_per_epoch'] for r in runs):.2f} | "
                f"{statistics.mean(r['seconds'] for r in runs):.1f} | "
                f"{mean_std([r['test']['few']['mae'] for r in runs])} |"
            )
    if args.json is not None:
        args.json.write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    main()
