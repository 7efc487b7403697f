"""The ``dirsearch`` command line: one sub-command per verb, user errors become exit code 2."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence

from dirsearch.cli.exit_codes import EXIT_INTERRUPTED, EXIT_USAGE
from dirsearch.errors import DirsearchError


def build_parser() -> argparse.ArgumentParser:
    """All sub-commands; each registers a ``handler(args) -> exit code`` with set_defaults."""
    from dirsearch.cli.data_verbs import add_data_commands
    from dirsearch.cli.init_verb import add_init_command
    from dirsearch.cli.schema_verb import add_schema_command
    from dirsearch.cli.sweep_verbs import add_sweep_commands
    from dirsearch.cli.train_verb import add_train_command
    from dirsearch.cli.ui_verb import add_ui_command

    parser = argparse.ArgumentParser(
        prog="dirsearch",
        description="Search LDS/FDS hyper-parameters for deep imbalanced regression.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_init_command(commands)
    add_sweep_commands(commands)
    add_train_command(commands)
    add_data_commands(commands)
    add_ui_command(commands)
    add_schema_command(commands)
    return parser


def _version() -> str:
    try:
        return importlib.metadata.version("dirsearch")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except DirsearchError as error:
        for line in str(error).splitlines():  # several problems: one line each
            print(f"dirsearch: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C (or SIGTERM) before a verb could say how to continue
        print("\ndirsearch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
