"""``dirsearch schema [--out FILE]``: the JSON Schema of space files and trial configs, for an
editor's completion and checking (the repository keeps a copy in schema/space.schema.json)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dirsearch.errors import ConfigError


def add_schema_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "schema",
        help="print the JSON Schema of space files and trial configs (for YAML editors)",
        description="Print (or write to --out) the JSON Schema generated from the config's "
        "fields: keys, types, choices, defaults and descriptions. Point an editor at it with a "
        "first line `# yaml-language-server: $schema=FILE` in the YAML file.",
    )
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the schema to FILE")
    parser.set_defaults(handler=run_schema_command)


def run_schema_command(args: argparse.Namespace) -> int:
    from dirsearch.sweep.schema import schema_text

    text = schema_text()
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    except OSError as error:
        raise ConfigError(f"--out {args.out}: cannot write ({error.strerror or error})") from None
    print(f"wrote {args.out}")
    return 0
