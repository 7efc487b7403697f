"""``dirsearch data split|prepare|synth``: make the CSV files the dataset kinds read.

The data modules are imported inside the handlers: they pull in scipy and torch, which would make
``dirsearch --help`` and every usage error wait seconds for nothing.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from dirsearch.errors import DirsearchError

T = TypeVar("T", int, float)

RAW_DATASETS = ("imdb-wiki", "agedb")


class DefaultsFormatter(argparse.HelpFormatter):
    """Append ``(default: X)`` to the help of options that have a default.

    argparse's ArgumentDefaultsHelpFormatter also prints ``(default: None)`` for required options.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is argparse.SUPPRESS:
            return action.help
        return f"{action.help} (default: %(default)s)"


def add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``data`` and its sub-commands on the top-level ``dirsearch`` parser."""
    data = subparsers.add_parser(
        "data",
        help="make dataset CSVs: balanced DIR splits, IMDB-WIKI/AgeDB tables, synthetic data",
        description="Make the CSV files that the dataset kinds read.",
    )
    commands = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    _add_split(commands)
    _add_prepare(commands)
    _add_synth(commands)


def _add_split(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "split",
        formatter_class=DefaultsFormatter,
        help="add balanced DIR train/val/test splits to a labelled CSV",
        description=(
            "Copy IN.csv to OUT.csv with a 'split' column: per target bin of n rows, "
            "val and test get min(CAP, n // 3) rows each (a seeded shuffle picks them) and "
            "train the rest, so evaluation is balanced over the target range while training "
            "keeps the natural imbalance. An existing 'split' column is overwritten."
        ),
    )
    parser.add_argument("in_csv", type=Path, metavar="IN.csv", help="labelled CSV with a header")
    parser.add_argument("--target", required=True, help="name of the numeric target column")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT.csv", help="CSV to write")
    parser.add_argument(
        "--cap",
        type=_non_negative_int,
        default=30,
        help="most val (and test) rows per bin",
    )
    parser.add_argument(
        "--bin-width",
        type=_positive_float,
        default=1.0,
        help="bin b = floor(target / width)",
    )
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="shuffle seed")
    parser.set_defaults(handler=_run_split)


def _add_prepare(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "prepare",
        formatter_class=DefaultsFormatter,
        help="build the IMDB-WIKI-DIR or AgeDB-DIR CSV from the raw downloads",
        description=(
            "Write a path,age,split CSV (paths relative to --raw, the image root) from the raw "
            "public data. imdb-wiki: reads imdb_crop/imdb.mat and/or wiki_crop/wiki.mat, keeps "
            "single faces with face_score >= 1, val/test capped at 150 per age. "
            "agedb: reads the ages from image names ID_Name_AGE_GENDER.jpg, "
            "val/test capped at 30 per age."
        ),
    )
    parser.add_argument("dataset", choices=RAW_DATASETS, help="which raw dataset")
    parser.add_argument("--raw", type=Path, required=True, metavar="DIR", help="raw data folder")
    parser.add_argument("--out", type=Path, required=True, metavar="CSV", help="CSV to write")
    parser.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        help="split shuffle seed",
    )
    parser.set_defaults(handler=_run_prepare)


def _add_synth(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "synth",
        formatter_class=DefaultsFormatter,
        help="write the embedded synthetic dataset (AgeDB-DIR's label imbalance) to a folder",
        description=(
            "Generate the deterministic synthetic DIR dataset (training ages follow AgeDB-DIR's "
            "histogram; val/test balanced) and write it as a CSV plus PNG images (kind image) "
            "or a numeric CSV (kind tabular)."
        ),
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write")
    parser.add_argument(
        "--kind",
        choices=("image", "tabular"),
        default="image",
        help="input type",
    )
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="generator seed")
    parser.add_argument(
        "--scale",
        type=_positive_float,
        default=1.0,
        help="training-set size relative to AgeDB-DIR",
    )
    parser.add_argument(
        "--image-size",
        type=_positive_int,
        default=32,
        help="image side in pixels, for kind image",
    )
    parser.set_defaults(handler=_run_synth)


def _run_split(args: argparse.Namespace) -> int:
    from dirsearch.data.splits import split_csv

    counts = split_csv(
        args.in_csv,
        args.out,
        target=args.target,
        cap=args.cap,
        bin_width=args.bin_width,
        seed=args.seed,
    )
    print(_summary(args.out, counts))
    return 0


def _run_prepare(args: argparse.Namespace) -> int:
    from dirsearch.data.prepare import prepare_agedb, prepare_imdb_wiki

    preparer = {"imdb-wiki": prepare_imdb_wiki, "agedb": prepare_agedb}[args.dataset]
    counts = preparer(args.raw, args.out, seed=args.seed)
    print(_summary(args.out, counts))
    return 0


def _run_synth(args: argparse.Namespace) -> int:
    from dirsearch.data.csv_table import count_per_split, parse_splits, read_table
    from dirsearch.data.synthetic import write_synthetic

    try:
        written = write_synthetic(
            args.out, kind=args.kind, seed=args.seed, scale=args.scale, image_size=args.image_size
        )
    except ValueError as error:  # the generator rejects unusable sizes as API argument errors
        raise DirsearchError(f"data synth: {error}") from error
    counts = count_per_split(parse_splits(read_table(written), "split"))
    print(_summary(written, counts))
    return 0


def _summary(path: Path, counts: dict[str, int]) -> str:
    """``wrote OUT.csv: 120 rows (train 100, val 10, test 10)``."""
    splits = ", ".join(f"{name} {count}" for name, count in counts.items())
    return f"wrote {path}: {sum(counts.values())} rows ({splits})"


def _non_negative_int(text: str) -> int:
    return _checked(int, text, lambda value: value >= 0, "an integer >= 0")


def _positive_int(text: str) -> int:
    return _checked(int, text, lambda value: value > 0, "an integer > 0")


def _positive_float(text: str) -> float:
    return _checked(float, text, lambda value: math.isfinite(value) and value > 0, "a number > 0")


def _checked(parse: Callable[[str], T], text: str, accept: Callable[[T], bool], allowed: str) -> T:
    """argparse type: parse ``text`` and reject it with ``allowed`` in the usage error."""
    try:
        value = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}") from None
    if not accept(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}")
    return value
