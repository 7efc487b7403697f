"""A trial (or search-space) YAML file -> a validated TrialConfig, paths made absolute.

Relative paths are resolved against the YAML file's folder: nothing depends on the working
directory, which Ray changes for every trial.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from dirsearch.common.formatting import shortened
from dirsearch.config.auto_bins import resolve_auto_bins
from dirsearch.config.loader import ConfigLoader
from dirsearch.config.problems import Problems
from dirsearch.config.rules import validate
from dirsearch.config.safe_yaml import MAX_FILE_BYTES, parse_yaml
from dirsearch.config.trial import TrialConfig
from dirsearch.errors import ConfigError

SWEEP_SECTIONS = ("experiment", "search", "space")
"""Top-level keys of a search-space file that a single trial ignores."""


def _resolve_path(value: str | None, base: Path) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _with_absolute_paths(config: TrialConfig, base: Path) -> TrialConfig:
    data = dataclasses.replace(
        config.data,
        csv=_resolve_path(config.data.csv, base),
        root=_resolve_path(config.data.root, base),
        cache_dir=_resolve_path(config.data.cache_dir, base),
    )
    model = dataclasses.replace(
        config.model, pretrained=_resolve_path(config.model.pretrained, base)
    )
    rrt = dataclasses.replace(
        config.train.rrt, checkpoint=_resolve_path(config.train.rrt.checkpoint, base)
    )
    train = dataclasses.replace(config.train, rrt=rrt)
    return dataclasses.replace(config, data=data, model=model, train=train)


def trial_config_from_dict(mapping: Any, source: str, base: Path) -> TrialConfig:
    """Build and validate a TrialConfig; ``source`` names the origin in errors, relative paths
    are taken relative to ``base``. Sweep-only sections (experiment, search, space) are skipped."""
    problems = Problems(source)
    if isinstance(mapping, dict):
        mapping = {key: value for key, value in mapping.items() if key not in SWEEP_SECTIONS}
    mapping = resolve_auto_bins(mapping, problems, base)  # data.bins: auto -> numbers, once
    config = _with_absolute_paths(ConfigLoader(problems).build(TrialConfig, mapping, ""), base)
    if not problems.lines:  # cross-field rules only make sense once every field is valid
        validate(config, problems)
    problems.raise_if_any()
    return config


def read_yaml(path: Path) -> Any:
    """The parsed content of a YAML file (safe loader without aliases, deep nesting or
    duplicate keys: see ``safe_yaml``); errors are one line naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    data = path.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{path}: {len(data):,} bytes is too large for a config file "
            f"(at most {MAX_FILE_BYTES:,})"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
        ) from None
    try:
        mapping = parse_yaml(text)
    except yaml.reader.ReaderError as error:  # its own message spans two lines
        raise ConfigError(
            f"{path}: not valid YAML (character #x{error.character:04x} at offset "
            f"{error.position} is not allowed)"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = shortened(" ".join(str(getattr(error, "problem", error)).split()), 160)
        raise ConfigError(f"{path}:{where} not valid YAML ({problem})") from None
    except ValueError as error:  # an integer of more digits than Python converts
        raise ConfigError(f"{path}: not valid YAML ({shortened(str(error), 160)})") from None
    return mapping


def load_trial_config(path: Path) -> TrialConfig:
    """Read a trial (or search-space) YAML file into a validated TrialConfig."""
    mapping = read_yaml(path)
    return trial_config_from_dict(mapping, str(path), Path(path).resolve().parent)
