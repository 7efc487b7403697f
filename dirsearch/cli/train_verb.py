"""``dirsearch train CONFIG.yaml``: one trial without Ray, with progress and the result table."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dirsearch.cli.exit_codes import EXIT_DIVERGED, EXIT_INTERRUPTED
from dirsearch.cli.set_argument import add_set_argument
from dirsearch.common.files import write_atomically
from dirsearch.common.stop_signals import sigterm_as_ctrl_c
from dirsearch.errors import ConfigError, DataError, DirsearchError

if TYPE_CHECKING:
    from dirsearch.config.trial import TrialConfig


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
    add_set_argument(parser, "a trial path")
    parser.set_defaults(handler=run_train_command)


def _complete_checkpoints(out: Path) -> list[Path]:
    """The epoch folders that have a ``state.pt`` (it is written last), oldest first."""
    from dirsearch.train import checkpoint

    folders = sorted((out / "checkpoints").glob("epoch_*"))
    return [f for f in folders if (f / checkpoint.STATE_FILE).is_file()]


def _latest_checkpoint(out: Path) -> Path | None:
    complete = _complete_checkpoints(out)
    return complete[-1] if complete else None


def _resume_point(out: Path) -> Path:
    """The newest epoch folder whose ``state.pt`` loads: an unreadable newest one falls back
    to the folder before it (kept for that), with a warning."""
    from dirsearch.train import checkpoint

    return checkpoint.newest_usable(
        reversed(_complete_checkpoints(out)), checkpoint.state_problem, lambda folder: folder.name
    )


def run_train_command(args: argparse.Namespace) -> int:
    sigterm_as_ctrl_c()  # `kill`, `timeout`, SLURM: stopped as by Ctrl-C, with the resume hint
    from dirsearch.sweep.folder_lock import locked_folder
    from dirsearch.sweep.set_options import load_trial_config_with_sets

    config = load_trial_config_with_sets(args.config, args.set)
    out = (args.out or Path("runs") / args.config.stem).resolve()
    created = not out.exists()
    # One process per output folder: the check for a run in it and the run are one step, and a
    # failing train cannot remove a folder another one is writing.
    with locked_folder(
        out,
        "dirsearch train",
        lambda holder: f"{args.config}: {out} is {holder}; wait for it or pass another --out",
        remove_if_unused=created,
    ):
        return _train(args, config, out, created)


def _train(args: argparse.Namespace, config: TrialConfig, out: Path, created: bool) -> int:
    """``train`` in ``out``, which this process holds the lock of (``created``: by this run)."""
    # Imported here: torch and the data stack take seconds, which `dirsearch --help` should not.
    import yaml

    from dirsearch.sweep.tables import result_table
    from dirsearch.train.loop import run_trial

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
    if latest is not None:
        try:
            latest = _resume_point(out)
        except DataError as error:  # no readable state.pt at all
            raise DataError(f"{args.config}: {error}") from None
    # Whole files or none (a crash must not leave a torn config or result behind).
    write_atomically(
        out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False).encode()
    )
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
    write_atomically(out / "results.md", (table + "\n").encode())
    summary = {
        "best_epoch": result.best_epoch,
        "select_metric": config.train.select_metric,
        "test": result.test_metrics,
        "history": result.history,
    }
    write_atomically(out / "results.json", json.dumps(_nan_to_null(summary), indent=2).encode())
    return 0


def _nan_to_null(value: Any) -> Any:
    """Empty shot regions have NaN metrics; strict JSON has no NaN, so they become null."""
    if isinstance(value, dict):
        return {key: _nan_to_null(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nan_to_null(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value
