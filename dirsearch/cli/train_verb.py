"""``dirsearch train CONFIG.yaml``: one trial without Ray, with progress and the result table."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

from dirsearch.errors import ConfigError, DataError, DirsearchError

EXIT_DIVERGED = 1
EXIT_INTERRUPTED = 130
"""What shells report for a process stopped by Ctrl-C (128 + SIGINT)."""


def add_train_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train",
        help="train one configuration and print its test-set result table",
        description=(
            "Train the fixed configuration of CONFIG (a trial YAML or a search-space file, whose "
            "sweep sections are ignored), select the best epoch on the balanced validation split "
            "and print its All/Many/Medium/Few x MAE/MSE/GM table on the test split."
        ),
    )
    parser.add_argument("config", type=Path, help="trial or search-space YAML file")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: runs/<config name>); holds checkpoints and results",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    parser.set_defaults(handler=run_train_command)


def _latest_checkpoint(out: Path) -> Path | None:
    from dirsearch.train import checkpoint

    folders = sorted((out / "checkpoints").glob("epoch_*"))
    complete = [f for f in folders if (f / checkpoint.STATE_FILE).is_file()]
    return complete[-1] if complete else None


def run_train_command(args: argparse.Namespace) -> int:
    # Imported here: torch and the data stack take seconds, which `dirsearch --help` should not.
    import yaml

    from dirsearch.config.trial import load_trial_config
    from dirsearch.sweep.tables import result_table
    from dirsearch.train.trainer import run_trial

    config = load_trial_config(args.config)
    out = (args.out or Path("runs") / args.config.stem).resolve()
    latest = _latest_checkpoint(out)
    if latest is not None and not args.resume:
        raise ConfigError(
            f"{args.config}: {out} already holds a run (last checkpoint {latest.name}); pass "
            f"--resume to continue it or --out to start a new one"
        )
    if args.resume and latest is None:
        raise ConfigError(
            f"{args.config}: --resume given but {out} holds no checkpoint to resume from"
        )
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    print(f"training {args.config} -> {out}", flush=True)
    try:
        result = run_trial(
            config,
            out,
            resume_from=latest,
            progress=sys.stderr.isatty(),
            log=lambda line: print(line, flush=True),
            evaluate_test=True,
        )
    except DirsearchError as error:
        if created:  # bad input found before any epoch ended: leave nothing behind
            shutil.rmtree(out, ignore_errors=True)
        # Raised deeper, it names the key, data file or checkpoint but not the config file.
        kind = DataError if isinstance(error, DataError) else ConfigError
        raise kind(f"{args.config}: {error}") from None
    except KeyboardInterrupt:
        if _latest_checkpoint(out) is None:
            print("\ndirsearch: interrupted before the first checkpoint", file=sys.stderr)
        else:
            print(
                f"\ndirsearch: interrupted; continue with: dirsearch train {args.config} "
                f"--out {out} --resume",
                file=sys.stderr,
            )
        return EXIT_INTERRUPTED
    if result.status == "diverged":
        print(f"dirsearch: {result.message}", file=sys.stderr)
        return EXIT_DIVERGED
    assert result.test_metrics is not None
    table = result_table(result.test_metrics)
    print(f"\nbest epoch {result.best_epoch} (by {config.train.select_metric}); test split:")
    print(table)
    (out / "results.md").write_text(table + "\n")
    summary = {
        "best_epoch": result.best_epoch,
        "select_metric": config.train.select_metric,
        "test": result.test_metrics,
        "history": result.history,
    }
    (out / "results.json").write_text(json.dumps(_nan_to_null(summary), indent=2))
    return 0


def _nan_to_null(value: Any) -> Any:
    """Empty shot regions have NaN metrics; strict JSON has no NaN, so they become null."""
    if isinstance(value, dict):
        return {key: _nan_to_null(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nan_to_null(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value
