"""``dirsearch init DATA.csv --target COL``: a space file for your own data in one step.

Reads the CSV, tells images from a table, makes balanced DIR splits when there is no split
column (written next to the input, never over it), chooses bins and shot thresholds from the
training targets, sizes a model and budget, writes a commented space file that validates, and
prints the label histogram with the shot regions and the next command. Needs no torch.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import dirsearch
from dirsearch.errors import ConfigError

SPLIT_SUFFIX = "_split"
CACHE_FOLDER = "dirsearch_cache"


def add_init_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "init",
        help="write a space file for your own CSV: splits, bins, shots and budget from the data",
        description=(
            "Write a commented space file for DATA.csv: image data (a 'path' column, or "
            "--images) or a numeric table; balanced DIR splits when the CSV has no 'split' "
            "column (written to <name>_split.csv beside it); bins and many/few-shot thresholds "
            "from the training targets; a model and budget that run in minutes on a CPU; the "
            "DIR knobs searched as in the shipped space files."
        ),
    )
    parser.add_argument("csv", type=Path, metavar="DATA.csv", help="your labelled CSV")
    parser.add_argument("--target", required=True, help="the numeric target column")
    parser.add_argument(
        "--images",
        type=Path,
        metavar="ROOT",
        help="image folder the CSV's 'path' column is relative to (default: the CSV's folder)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="SPACE.yaml",
        help="the space file to write (default: <CSV name>.yaml in this folder)",
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite --out and the split CSV init writes"
    )
    parser.set_defaults(handler=run_init_command)


def run_init_command(args: argparse.Namespace) -> int:
    from dirsearch.common.text_chart import REGION_MARKS, histogram_chart
    from dirsearch.data.splits import split_csv
    from dirsearch.sweep.own_data import read_own_data
    from dirsearch.sweep.spec_reader import load_sweep_spec
    from dirsearch.sweep.starter import SPLIT_SEED, plan_starter
    from dirsearch.sweep.starter_file import StarterRefs, starter_yaml

    csv: Path = args.csv
    out: Path = args.out or Path(f"{csv.stem}.yaml")
    _refuse_existing(out, args.force, "--out")
    if out.resolve() == csv.resolve():
        raise ConfigError(f"--out {out}: is the input CSV; choose another file")
    plan = plan_starter(read_own_data(csv, args.target, args.images))
    data_csv = csv
    if plan.cap is not None:
        data_csv = csv.with_name(f"{csv.stem}{SPLIT_SUFFIX}.csv")
        _refuse_existing(data_csv, args.force, "the split CSV")
    folder = out.resolve().parent
    refs = StarterRefs(
        command=_command(args),
        experiment=_experiment_name(csv.stem),
        csv=_relative(data_csv, folder),
        root=_relative(args.images, folder) if args.images is not None else None,
        cache_dir=_relative(csv.parent / CACHE_FOLDER, folder)
        if plan.data.kind == "csv_images"
        else None,
        schema=_schema_reference(folder),
    )
    if plan.cap is not None:
        split_csv(
            csv,
            data_csv,
            target=args.target,
            cap=plan.cap,
            bin_width=plan.binning.width,
            seed=SPLIT_SEED,
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        out.write_text(starter_yaml(plan, refs))
    except OSError as error:
        raise ConfigError(f"--out {out}: cannot write ({error.strerror or error})") from None
    spec = load_sweep_spec(out)  # what init writes must validate; a failure here is a bug

    data, bins, budget = plan.data, plan.binning, plan.budget
    kind = (
        "images"
        if data.kind == "csv_images"
        else f"a table of {len(data.features)} numeric features"
    )
    low, high = data.targets.min(), data.targets.max()
    print(f"{csv}: {len(data.targets):,} rows, {kind}; target {data.target} in [{low:g}, {high:g}]")
    counts = ", ".join(f"{name} {count:,}" for name, count in plan.split_counts().items())
    if plan.cap is None:
        print(f"splits from its split column: {counts}")
    else:
        print(
            f"wrote {data_csv}: balanced DIR splits ({counts}; per bin of n rows val = test = "
            f"min({plan.cap}, n // 3))"
        )
    marks = REGION_MARKS
    print(
        f"training rows per bin ({bins.count} bins of width {bins.width:g} from {bins.start:g}; "
        f"{marks['many']} many-shot > {plan.many}, {marks['medium']} medium, "
        f"{marks['few']} few-shot < {plan.few}):"
    )
    end = bins.start + bins.width * bins.count
    for line in histogram_chart(
        plan.train_counts.tolist(), plan.regions(), f"{bins.start:g}", f"{end:g}"
    ):
        print(f"  {line}")
    print(
        f"wrote {out}: {budget.arch}, {spec.total_trials} trials of up to {spec.epochs} epochs, "
        f"{spec.search.max_concurrent} at a time"
    )
    print(f"next: dirsearch run {out}    (dirsearch validate {out} shows what it searches)")
    return 0


def _refuse_existing(path: Path, force: bool, what: str) -> None:
    if path.exists() and not force:
        raise ConfigError(f"{path}: {what} already exists; pass --force to overwrite it")


def _command(args: argparse.Namespace) -> str:
    words = ["dirsearch init", str(args.csv), "--target", args.target]
    if args.images is not None:
        words += ["--images", str(args.images)]
    return " ".join(words)


def _experiment_name(stem: str) -> str:
    """The CSV's name as a sweep name (letters, digits, '.', '_', '-')."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).lstrip("._-")[:128]
    return name or "my-data"


def _relative(path: Path, folder: Path) -> str:
    """``path`` as the space file names it: relative to its folder (how relative paths in a
    space file are read)."""
    return os.path.relpath(Path(path).resolve(), folder)


def _schema_reference(folder: Path) -> str | None:
    """The repository's schema file (relative to ``folder`` inside the repository), when
    dirsearch runs from a source tree that has one (an installed package has none: ``dirsearch
    schema --out FILE`` writes it)."""
    from dirsearch.sweep.schema import SCHEMA_PATH

    repository = Path(dirsearch.__file__).resolve().parents[1]
    schema = repository / SCHEMA_PATH
    if not schema.is_file():
        return None
    return _relative(schema, folder) if folder.is_relative_to(repository) else str(schema)
