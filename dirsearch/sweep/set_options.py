"""``--set key.path=value``: try one value from the command line without a copy of the file.

Each option sets a dotted path in the file's mapping before the mapping is checked, so a set
value goes through exactly the checks a value in the file does; a problem those checks find at
(or under) the set path is reported as ``--set KEY=VALUE: what is wrong``. The value is YAML
(``--set train.loss={name: focal_l1, beta: 0.2}``, ``--set data.bins=auto``), read by the same
strict reader as the files. In a space file a set trial path fixes that field for every trial:
a dimension searching it is dropped and start points no longer give it.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dirsearch.common.formatting import shortened
from dirsearch.config.fields import dataclass_in
from dirsearch.config.files import read_yaml, trial_config_from_dict
from dirsearch.config.loader import unknown_key_message
from dirsearch.config.safe_yaml import parse_yaml
from dirsearch.config.trial import TrialConfig
from dirsearch.errors import ConfigError, ConfigProblems
from dirsearch.sweep.paths import set_path
from dirsearch.sweep.settings import SearchSettings

KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
TRIAL_SECTIONS = tuple(item.name for item in dataclasses.fields(TrialConfig))
SWEEP_KEYS = ("experiment", "search")
POINTS = "points"
"""``search.points`` is a list of dotted overrides, not a typed setting."""


@dataclass(frozen=True)
class SetOption:
    """One ``--set`` as given (``text``) and parsed."""

    text: str
    path: str
    value: Any

    @property
    def label(self) -> str:
        return f"--set {shortened(self.text)}"

    @property
    def is_trial_path(self) -> bool:
        return self.path.split(".")[0] in TRIAL_SECTIONS


def parse_set_options(texts: Sequence[str] | None) -> list[SetOption]:
    """``KEY.PATH=VALUE`` texts -> options; each malformed one is a line of ConfigProblems."""
    options, problems = [], []
    for text in texts or ():
        key, equals, raw = text.partition("=")
        key = key.strip()
        if not equals or not KEY.match(key):
            problems.append(
                f"--set {shortened(text)}: expected KEY.PATH=VALUE, e.g. --set train.lr=0.01"
            )
            continue
        try:
            value = parse_yaml(raw)
        except yaml.YAMLError as error:
            problem = " ".join(str(getattr(error, "problem", None) or error).split())
            problems.append(
                f"--set {shortened(text)}: the value is not valid YAML ({shortened(problem)})"
            )
            continue
        options.append(SetOption(text, key, value))
    if problems:
        raise ConfigProblems(problems)
    return options


def key_problem(path: str, root: type) -> str | None:
    """What is wrong with a dotted path into the dataclass tree ``root``, or None: an unknown
    key (with the loader's did-you-mean) or a path that goes below a plain value."""
    hint: Any = root
    walked: list[str] = []
    for key in path.split("."):
        cls = dataclass_in(hint)
        if cls is None:
            above = ".".join(walked)
            return f"{above} is a value, not a section; set {above} itself"
        fields = [item.name for item in dataclasses.fields(cls)]
        if key not in fields:
            return unknown_key_message(key, fields)
        hint = typing.get_type_hints(cls)[key]
        walked.append(key)
    return None


def check_trial_options(options: Sequence[SetOption]) -> None:
    """For a trial config (``dirsearch train``): every key must be a trial path."""
    problems = []
    for option in options:
        head = option.path.split(".")[0]
        if head in (*SWEEP_KEYS, "space"):
            message = (
                f"train reads the trial config only; allowed: a path under "
                f"{', '.join(TRIAL_SECTIONS)}"
            )
        else:
            message = key_problem(option.path, TrialConfig)
        if message:
            problems.append(f"{option.label}: {message}")
    if problems:
        raise ConfigProblems(problems)


def check_sweep_options(options: Sequence[SetOption], mapping: Any) -> None:
    """For a space file (``run``, ``validate``): a trial path, ``search.<key>`` or
    ``experiment``; a path inside a searched field is refused (the dimension would win)."""
    space = mapping.get("space") if isinstance(mapping, dict) else None
    searched = [str(path) for path in space] if isinstance(space, dict) else []
    problems = []
    for option in options:
        head, _, rest = option.path.partition(".")
        if option.is_trial_path:
            message = key_problem(option.path, TrialConfig)
            inside = [path for path in searched if option.path.startswith(f"{path}.")]
            if message is None and inside:
                message = f"{inside[0]} is searched (space:); set {inside[0]} itself to fix it"
        elif head == "experiment":
            message = "experiment is a value, not a section" if rest else None
        elif head == "search":
            if not rest:
                message = "set one search setting at a time, e.g. --set search.num_samples=4"
            else:
                message = None if rest == POINTS else key_problem(rest, SearchSettings)
        elif head == "space":
            message = (
                "dimensions cannot be set; set the field itself to fix it for every trial "
                "(--set train.lr=0.01), or edit space: in the file"
            )
        else:
            message = unknown_key_message(head, (*TRIAL_SECTIONS, *SWEEP_KEYS))
        if message:
            problems.append(f"{option.label}: {message}")
    if problems:
        raise ConfigProblems(problems)


def apply_options(mapping: Any, options: Sequence[SetOption]) -> Any:
    """The file's mapping with each option set, in order; a set trial path is dropped from
    ``space:`` and from the start points (it is fixed for every trial now)."""
    if mapping is None:
        mapping = {}  # an empty file: the options are all there is
    if not options or not isinstance(mapping, dict):
        return mapping  # not a mapping: the loader says so
    result = copy.deepcopy(mapping)
    for option in options:
        set_path(result, option.path, option.value)
        if option.is_trial_path:
            _unsearch(result, option.path)
    return result


def _unsearch(mapping: dict[str, Any], path: str) -> None:
    def covered(key: Any) -> bool:
        return str(key) == path or str(key).startswith(f"{path}.")

    space = mapping.get("space")
    if isinstance(space, dict):
        mapping["space"] = {key: body for key, body in space.items() if not covered(key)}
    search = mapping.get("search")
    points = search.get(POINTS) if isinstance(search, dict) else None
    if isinstance(points, list):
        search[POINTS] = [
            {key: value for key, value in point.items() if not covered(key)}
            if isinstance(point, dict)
            else point
            for point in points
        ]


def name_options_in(error: ConfigError, source: str, options: Sequence[SetOption]) -> ConfigError:
    """``error`` with each problem at or under a set path told as ``--set KEY=VALUE: ...``."""
    if not options:
        return error
    lines = [
        _named(line, source, options) for line in getattr(error, "problems", None) or [str(error)]
    ]
    return ConfigProblems(lines)


def _named(line: str, source: str, options: Sequence[SetOption]) -> str:
    prefix = f"{source}: "
    if not line.startswith(prefix):
        return line
    key, separator, message = line[len(prefix) :].partition(": ")
    if not separator:
        return line
    matching = [
        option
        for option in options
        if key == option.path or key.startswith((f"{option.path}.", f"{option.path}["))
    ]
    if not matching:
        return line
    option = max(reversed(matching), key=lambda item: len(item.path))  # the last, most specific
    if key == option.path:
        return f"{option.label}: {message}"
    return f"{option.label}: {key}: {message}"


def load_trial_config_with_sets(path: Path, texts: Sequence[str] | None) -> TrialConfig:
    """``load_trial_config`` with ``--set`` options applied (``dirsearch train``)."""
    options = parse_set_options(texts)
    check_trial_options(options)
    mapping = apply_options(read_yaml(path), options)
    try:
        return trial_config_from_dict(mapping, str(path), Path(path).resolve().parent)
    except ConfigError as error:
        raise name_options_in(error, str(path), options) from None


def set_note(texts: Sequence[str] | None) -> str:
    """A comment for the copy of the space file a sweep keeps: the options it ran with."""
    if not texts:
        return ""
    return "\n# run with: " + " ".join(f"--set {text}" for text in texts) + "\n"
