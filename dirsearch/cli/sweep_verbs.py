"""``dirsearch run | resume | validate | report``: the sweep verbs of the command line.

Ray and the trainer are imported inside the handlers: ``validate`` and ``report`` stay quick
and never start Ray.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from dirsearch.cli.train_verb import EXIT_INTERRUPTED
from dirsearch.errors import ConfigError


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
    run.add_argument("--address", help="Ray cluster address (default: a local Ray instance)")
    run.add_argument(
        "--storage",
        help="folder or URI (s3://, gs://, a shared path) the sweep folder goes in (default: runs)",
    )
    run.add_argument("--name", help="sweep folder name (default: <experiment>-<date-time>)")
    run.add_argument("--num-samples", type=int, help="override search.num_samples")
    _tracking_argument(run)
    run.set_defaults(handler=run_command)

    resume = commands.add_parser(
        "resume",
        help="continue a sweep whose driver stopped (Ctrl-C, a crash, a lost head node)",
        description="Continue the sweep in DIR: finished trials stay, running ones resume "
        "from their last checkpoints, nothing runs twice.",
    )
    resume.add_argument("folder", help="the sweep folder that `dirsearch run` printed")
    resume.add_argument("--address", help="Ray cluster address (default: a local Ray instance)")
    _tracking_argument(resume)
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
    validate.set_defaults(handler=validate_command)

    report = commands.add_parser(
        "report",
        help="print a sweep's leaderboard and test table from its folder (no Ray needed)",
    )
    report.add_argument("folder", help="the sweep folder")
    report.set_defaults(handler=report_command)


def _load(space: Path, num_samples: int | None = None):
    from dirsearch.sweep.spec import load_sweep_spec

    spec = load_sweep_spec(space)
    if num_samples is not None:
        if num_samples < 1:
            raise ConfigError(f"--num-samples: must be >= 1, got {num_samples}")
        search = dataclasses.replace(spec.search, num_samples=num_samples)
        spec = dataclasses.replace(spec, search=search)
    return spec


def _tracking_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking store, e.g. http://host:5000 (default: $MLFLOW_TRACKING_URI, else "
        "a sqlite file in the sweep folder; resume: the sweep's own store)",
    )


def run_command(args: argparse.Namespace) -> int:
    from dirsearch.tracking import tracker as tracking
    from dirsearch.tune import runner as sweep

    sweep.configure_driver()
    spec = _load(args.space, args.num_samples)
    _refuse_missing_data(spec)
    folder = sweep.new_folder(spec, args.storage, args.name)
    if sweep.holds_sweep(folder):
        raise ConfigError(
            f"{folder}: already holds a sweep; continue it with `dirsearch resume {folder}` or "
            f"start a new one with another --name"
        )
    # Before Ray starts: an unreachable tracking server is a one-line error, not a lost sweep.
    tracking.start_sweep_runs(spec, folder, tracking.tracking_uri(folder, args.tracking_uri))
    tracker = tracking.SweepTracker(spec, folder)
    sweep.start_ray(args.address)
    sweep.check_cluster(spec)
    text = args.space.read_text()
    return _outcome(lambda: sweep.run(spec, text, folder, callbacks=[tracker]), folder, tracker)


def resume_command(args: argparse.Namespace) -> int:
    from dirsearch.tracking import tracker as tracking
    from dirsearch.tune import runner as sweep

    sweep.configure_driver()
    folder = args.folder if "://" in args.folder else str(Path(args.folder).resolve())
    spec = sweep.load_spec(folder)
    _refuse_missing_data(spec)
    tracking.start_sweep_runs(spec, folder, args.tracking_uri)
    tracker = tracking.SweepTracker(spec, folder)
    sweep.start_ray(args.address)
    sweep.check_cluster(spec)
    return _outcome(lambda: sweep.resume(folder, callbacks=[tracker]), folder, tracker)


def _refuse_missing_data(spec) -> None:  # spec: a SweepSpec (imported lazily)
    """Missing data is found before Ray starts (seconds), not by the first trial."""
    from dirsearch.sweep.spec import environment_problems

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
        f"compare the trials in MLflow with: dirsearch ui {folder}"
    )
    return 0


def validate_command(args: argparse.Namespace) -> int:
    from dirsearch.sweep.spec import environment_problems

    spec = _load(args.space)
    if not args.no_environment:
        problems = environment_problems(spec, _local_gpus())
        if problems:
            raise ConfigError("\n".join(problems))
    print(summary(spec))
    return 0


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def summary(spec) -> str:
    """The resolved sweep in a few lines: what is fixed, what is searched, budget, resources."""
    from dirsearch.config.trial import TrialConfig
    from dirsearch.tune.runner import total_trials

    search = spec.search
    fixed = _flat(spec.fixed)
    defaults = _flat(TrialConfig().to_dict())
    changed = {key: value for key, value in fixed.items() if defaults.get(key) != value}
    lines = [f"{spec.source}: valid", f"experiment: {spec.experiment}", "fixed (non-default):"]
    lines += [f"  {key}: {value}" for key, value in changed.items()]
    lines.append(f"dimensions ({len(spec.dimensions)}):")
    lines += [f"  {dimension.describe()}" for dimension in spec.dimensions]
    scheduler = search.scheduler
    schedule = (
        f"asha (grace {scheduler.grace_period}, reduction {scheduler.reduction_factor}, "
        f"max {spec.epochs} epochs)"
        if scheduler.name == "asha"
        else "fifo"
    )
    lines += [
        f"search: {search.searcher.name}, {search.mode} {search.metric}, scheduler {schedule}",
        f"budget: {total_trials(spec)} trials x {search.repeats} seed(s) x up to {spec.epochs} "
        f"epochs, {len(spec.points)} given point(s)"
        + (
            f", confirm top {search.confirm.top_k} with {search.confirm.seeds} fresh seeds"
            if search.confirm.top_k
            else ""
        ),
        f"resources: {search.resources.cpu:g} CPU, {search.resources.gpu:g} GPU per trial, "
        f"{search.max_concurrent} at a time",
    ]
    return "\n".join(lines)


def _flat(mapping: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def report_command(args: argparse.Namespace) -> int:
    from dirsearch.sweep.records import leaderboard_rows, markdown, read_text, read_trials
    from dirsearch.tune.runner import load_spec

    folder = args.folder if "://" in args.folder else str(Path(args.folder).resolve())
    spec = load_spec(folder)
    leaderboard = read_text(f"{folder}/leaderboard.md")
    if leaderboard is None:  # still running, or stopped: read the trial folders themselves
        records = read_trials(folder)
        rows = leaderboard_rows(records, spec.search.metric, spec.search.mode, spec.epochs)
        leaderboard = markdown(rows)
    print(f"sweep {spec.experiment} ({folder})\n\nleaderboard (by {spec.search.metric}):")
    print(leaderboard.rstrip())
    for name in ("confirm.md", "results.md"):
        text = read_text(f"{folder}/{name}")
        if text is not None:
            print(f"\n{text.rstrip()}")
    if read_text(f"{folder}/results.md") is None:
        print(f"\nno test table yet: the sweep has not finished (dirsearch resume {folder})")
    return 0
