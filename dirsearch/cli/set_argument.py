"""The ``--set KEY.PATH=VALUE`` option of ``run``, ``validate`` and ``train``."""

from __future__ import annotations

import argparse


def add_set_argument(parser: argparse.ArgumentParser, keys: str) -> None:
    """``--set``, repeatable; parsed and checked with the file (``sweep/set_options.py``), so a
    bad one is reported like a bad key of the file, one line naming it."""
    parser.add_argument(
        "--set",
        action="append",
        default=None,
        metavar="KEY.PATH=VALUE",
        help=f"set {keys} on top of the file, e.g. --set train.lr=0.01 (repeatable; the value is "
        "YAML, checked like the file's)",
    )
