"""``dirsearch run | resume | validate | report``: the sweep verbs of the command line.

Ray, MLflow and torch are imported inside the handlers that need them: ``validate`` checks a file
in about a second and ``report`` reads a folder, neither starting Ray.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from dirsearch.cli.exit_codes import EXIT_INTERRUPTED
from dirsearch.cli.set_argument import add_set_argument
from dirsearch.common.stop_signals import sigterm_as_ctrl_c
from dirsearch.errors import ConfigError
from dirsearch.sweep.environment import environment_problems
from dirsearch.sweep.folder import (
    ABLATION_MD,
    CONFIRM_MD,
    IMPORTANCE_MD,
    LEADERBOARD_MD,
    PARETO_MD,
    RESULTS_MD,
    holds_sweep,
    load_spec,
    new_folder,
    read_text,
)
from dirsearch.sweep.folder_lock import locked_sweep_folder
from dirsearch.sweep.leaderboard import leaderboard_rows
from dirsearch.sweep.pareto import sweep_front
from dirsearch.sweep.records import read_trials
from dirsearch.sweep.set_options import set_note
from dirsearch.sweep.settings import SEARCH_LIMITS
from dirsearch.sweep.spec import SweepSpec
from dirsearch.sweep.spec_reader import load_sweep_spec
from dirsearch.sweep.summary import summary
from dirsearch.sweep.tables import markdown

SWEEP_KEYS = "a trial path, search.<key> or experiment"


def add_sweep_commands(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run",
        help="run the sweep of a search-space file and print the winner's test table",
        description=(
            "Search the space of SPACE.yaml with Ray Tune (Optuna TPE or random or a grid; ASHA "
            "early stopping), then evaluate the best configuration on the balanced test split."
        ),
    )
    run.add_argument("space", type=Path, help="search-space YAML file")
    _cluster_arguments(run)
    run.add_argument(
        "--storage",
        help="folder or URI (s3://, gs://, a shared path) the sweep folder goes in (default: runs)",
    )
    run.add_argument("--name", help="sweep folder name (default: <experiment>-<date-time>)")
    run.add_argument("--num-samples", type=int, help="override search.num_samples")
    add_set_argument(run, SWEEP_KEYS)
    run.set_defaults(handler=run_command)

    resume = commands.add_parser(
        "resume",
        help="continue a sweep whose driver stopped (Ctrl-C, a crash, a lost head node)",
        description="Continue the sweep in DIR: finished trials stay, running ones resume "
        "from their last checkpoints, nothing runs twice.",
    )
    resume.add_argument("folder", help="the sweep folder that `dirsearch run` printed")
    _cluster_arguments(resume)
    resume.set_defaults(handler=resume_command)

    validate = commands.add_parser(
        "validate",
        help="check a search-space file without starting Ray and summarise it",
        description="Report every problem of SPACE.yaml, one line each (exit 2), or print the "
        "resolved sweep: fixed config, dimensions with conditions, budget, resources.",
    )
    validate.add_argument("space", type=Path, help="search-space YAML file")
    validate.add_argument(
        "--no-environment",
        action="store_true",
        help="check the file only, not this machine's data files and GPUs (for a cluster spec)",
    )
    add_set_argument(validate, SWEEP_KEYS)
    validate.set_defaults(handler=validate_command)

    report = commands.add_parser(
        "report",
        help="print a sweep's leaderboard, importances, test table, front and ablation from its "
        "folder (no Ray needed)",
    )
    report.add_argument("folder", help="the sweep folder")
    report.set_defaults(handler=report_command)


def _load(space: Path, num_samples: int | None = None, sets: list[str] | None = None) -> SweepSpec:
    spec = load_sweep_spec(space, sets)
    if num_samples is not None:
        if num_samples < 1:
            raise ConfigError(f"--num-samples: must be >= 1, got {num_samples}")
        if num_samples > SEARCH_LIMITS["search.num_samples"]:
            most = SEARCH_LIMITS["search.num_samples"]
            raise ConfigError(f"--num-samples: must be at most {most:,}, got {num_samples}")
        search = dataclasses.replace(spec.search, num_samples=num_samples)
        spec = dataclasses.replace(spec, search=search)
    return spec


def _cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Where a sweep's trials run and where they are tracked (run and resume)."""
    parser.add_argument("--address", help="Ray cluster address (default: a local Ray instance)")
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking store, e.g. http://host:5000 (default: $MLFLOW_TRACKING_URI, else "
        "a sqlite file in the sweep folder; resume: the sweep's own store)",
    )


def run_command(args: argparse.Namespace) -> int:
    sigterm_as_ctrl_c()  # `kill`, `timeout`, SLURM: stopped as by Ctrl-C, with the resume hint
    from dirsearch.tune.driver import configure_driver

    configure_driver()
    spec = _load(args.space, args.num_samples, args.set)
    folder = new_folder(spec, args.storage, args.name)
    _refuse_missing_data(spec)
    # Checking that the folder holds no sweep and starting one are one step: two `run --name X`
    # started together give one sweep, and the other is refused like a folder with a sweep.
    with locked_sweep_folder(
        folder,
        "dirsearch run",
        lambda holder: (
            f"{folder}: already holds a sweep, {holder}; start a new one with another --name"
        ),
    ):
        return _start_sweep(args, spec, folder)


def _start_sweep(args: argparse.Namespace, spec: SweepSpec, folder: str) -> int:
    """``run`` in its folder, which this process holds the lock of."""
    from dirsearch.tracking.callback import SweepTracker
    from dirsearch.tracking.run_layout import start_sweep_runs
    from dirsearch.tracking.store import tracking_uri
    from dirsearch.tune.driver import check_cluster, start_ray
    from dirsearch.tune.runner import run

    if holds_sweep(folder):
        raise ConfigError(
            f"{folder}: already holds a sweep; continue it with `dirsearch resume {folder}` or "
            f"start a new one with another --name"
        )
    # Before Ray starts: an unreachable tracking server is a one-line error, not a lost sweep.
    start_sweep_runs(spec, folder, tracking_uri(folder, args.tracking_uri))
    tracker = SweepTracker(spec, folder)
    start_ray(args.address)
    check_cluster(spec)
    text = args.space.read_text() + set_note(args.set)
    return _outcome(lambda: run(spec, text, folder, callbacks=[tracker]), folder, tracker)


def resume_command(args: argparse.Namespace) -> int:
    sigterm_as_ctrl_c()
    from dirsearch.tune.driver import configure_driver

    configure_driver()
    folder = _folder(args.folder)
    spec = load_spec(folder)
    _refuse_missing_data(spec)
    with locked_sweep_folder(
        folder,
        "dirsearch resume",
        lambda holder: f"{folder}: the sweep is {holder}; one process at a time can run it",
    ):
        return _resume_sweep(args, spec, folder)


def _resume_sweep(args: argparse.Namespace, spec: SweepSpec, folder: str) -> int:
    """``resume`` in its folder, which this process holds the lock of."""
    from dirsearch.tracking.callback import SweepTracker
    from dirsearch.tracking.run_layout import start_sweep_runs
    from dirsearch.tune.driver import check_cluster, start_ray
    from dirsearch.tune.runner import resume

    start_sweep_runs(spec, folder, args.tracking_uri)
    tracker = SweepTracker(spec, folder)
    start_ray(args.address)
    check_cluster(spec)
    return _outcome(lambda: resume(folder, callbacks=[tracker]), folder, tracker)


def _folder(given: str) -> str:
    """A sweep folder as given: a URI as it is, a local path made absolute."""
    return given if "://" in given else str(Path(given).resolve())


def _refuse_missing_data(spec: SweepSpec) -> None:
    """Missing data is found before Ray starts (seconds), not by the first trial."""
    problems = environment_problems(spec, gpus_available=None)
    if problems:
        raise ConfigError("\n".join(problems))


def _outcome(start, folder: str, tracker) -> int:
    """Run the sweep; the tracker's parent run ends FINISHED, KILLED (stopped: resume reopens
    it) or FAILED (an error), never left RUNNING."""
    try:
        outcome = start()
    except KeyboardInterrupt:  # a second Ctrl-C: Ray stops without its last save
        outcome = None
    except BaseException:
        tracker.close("FAILED")
        raise
    tracker.close("FINISHED" if outcome is not None and outcome.finished else "KILLED")
    if outcome is None or not outcome.finished:
        print(
            f"\ndirsearch: sweep stopped before it finished; continue with: "
            f"dirsearch resume {folder}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(
        f"\nsweep folder: {folder}\nsee it again with: dirsearch report {folder}\n"
        f"compare the trials in MLflow {_mlflow_page(folder, tracker.spec)}"
    )
    return 0


def _mlflow_page(folder: str, spec: SweepSpec) -> str:
    """Where to see the trials: the runs page of a store that is an MLflow server, else the
    ``ui`` command that serves the sweep's own store."""
    from dirsearch.tracking.run_map import RunMap
    from dirsearch.tracking.runs_page import served_runs_page

    runs = RunMap.load(folder)
    page = None if runs is None else served_runs_page(runs, spec.search)
    return f"at: {page}" if page else f"with: dirsearch ui {folder}"


def validate_command(args: argparse.Namespace) -> int:
    spec = _load(args.space, sets=args.set)
    if not args.no_environment:
        # Counting GPUs needs torch (seconds to import): only when the file asks for them.
        gpus = _local_gpus() if spec.search.resources.gpu > 0 else None
        problems = environment_problems(spec, gpus)
        if problems:
            raise ConfigError("\n".join(problems))
    print(summary(spec))
    return 0


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def report_command(args: argparse.Namespace) -> int:
    folder = _folder(args.folder)
    spec = load_spec(folder)
    leaderboard = read_text(f"{folder}/{LEADERBOARD_MD}")
    if leaderboard is None:  # still running, or stopped: read the trial folders themselves
        records = read_trials(folder)
        leaderboard = markdown(leaderboard_rows(records, spec, sweep_front(records, spec)))
    print(f"sweep {spec.experiment} ({folder})\n\nleaderboard (by {spec.search.objective}):")
    print(leaderboard.rstrip())
    for name in (CONFIRM_MD, RESULTS_MD, PARETO_MD, ABLATION_MD, IMPORTANCE_MD):
        text = read_text(f"{folder}/{name}")
        if text is not None:
            print(f"\n{text.rstrip()}")
    if read_text(f"{folder}/{RESULTS_MD}") is None:
        print(f"\nno test table yet: the sweep has not finished (dirsearch resume {folder})")
    return 0
