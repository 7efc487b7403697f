"""A search-space file -> a validated SweepSpec, with every problem of the file in one error.

The file is a trial YAML (``data``, ``model``, ``train``, ``imbalance``, ``seed``) plus
``experiment`` (a name), ``search`` (settings) and ``space`` (dimensions by dotted path). Nothing
here imports Ray or torch: ``dirsearch validate`` and the tests use it without starting either.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dirsearch.common.formatting import brief, format_setting, shortened
from dirsearch.config.auto_bins import auto_form
from dirsearch.config.fields import field_at
from dirsearch.config.files import SWEEP_SECTIONS, read_yaml, trial_config_from_dict
from dirsearch.config.loader import ConfigLoader, unknown_key_message
from dirsearch.config.problems import Problems
from dirsearch.config.trial import TrialConfig
from dirsearch.errors import ConfigError, ConfigProblems
from dirsearch.sweep.dimension_reader import check_dimension_values, read_dimensions, read_grid
from dirsearch.sweep.dimensions import Dimension
from dirsearch.sweep.paths import with_overrides
from dirsearch.sweep.set_options import (
    apply_options,
    check_sweep_options,
    name_options_in,
    parse_set_options,
)
from dirsearch.sweep.settings import (
    MAX_OBJECTIVES,
    OBJECTIVES,
    SearchSettings,
    search_limit_problems,
)
from dirsearch.sweep.spec import SweepSpec

EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""What may name a sweep folder (``experiment``, ``--name``): one path component, no '..',
short enough for any file system; matched whole (``fullmatch``)."""
NAME_RULE = (
    "must be a name of letters, digits, '.', '_' or '-' (it names the sweep folder; at most "
    "128 characters)"
)
MAX_POINTS = 1000
"""Start or grid points a file may list: each is checked by building its trial config."""


def load_sweep_spec(path: Path, sets: Sequence[str] | None = None) -> SweepSpec:
    """Read and validate a search-space file; raises ConfigProblems listing every problem.
    ``sets``: ``--set KEY=VALUE`` options applied on top of the file (``set_options``)."""
    path = Path(path)
    mapping = read_yaml(path)
    options = parse_set_options(sets)
    if not options:
        return _spec_from_mapping(path, mapping)
    check_sweep_options(options, mapping)
    try:
        return _spec_from_mapping(path, apply_options(mapping, options))
    except ConfigError as error:
        raise name_options_in(error, str(path), options) from None


def _spec_from_mapping(path: Path, mapping: Any) -> SweepSpec:
    source = str(path)
    problems = Problems(source)
    if not isinstance(mapping, dict):
        raise ConfigError(f"{source}: (top level): must be a mapping of sections")
    base = path.resolve().parent
    search = _read_search(mapping.get("search"), problems)
    experiment = _read_experiment(mapping.get("experiment", path.stem), problems)
    sections = [item.name for item in dataclasses.fields(TrialConfig)] + list(SWEEP_SECTIONS)
    for unknown in sorted(set(mapping) - set(sections), key=str):
        problems.add(str(unknown), unknown_key_message(str(unknown), sections))
    trial_mapping = {key: value for key, value in mapping.items() if key in sections}
    for section in SWEEP_SECTIONS:
        trial_mapping.pop(section, None)
    train = trial_mapping.get("train")
    objective = search.metrics[0] if search.metrics else ""  # none: said by _check_objectives
    if (
        objective.startswith("val/")
        and objective in OBJECTIVES
        and (not isinstance(train, dict) or "select_metric" not in train)
    ):
        # The checkpoint scored on test at the end is the epoch the search scored.
        trial_mapping = with_overrides(trial_mapping, {"train.select_metric": objective})
    given_data = trial_mapping.get("data")
    bins = given_data.get("bins") if isinstance(given_data, dict) else None
    bins_from = format_setting(bins) if auto_form(bins) is not None else ""
    try:
        fixed = trial_config_from_dict(trial_mapping, source, base).to_dict()
    except ConfigError as error:
        problems.absorb(error)
        raise ConfigProblems(problems.lines) from None
    dimensions = read_dimensions(mapping.get("space"), fixed, problems)
    check_dimension_values(dimensions, fixed, source, base, problems)
    _check_search(search, mapping.get("search"), fixed, dimensions, problems)
    points = _read_points(mapping.get("search"), search, dimensions, fixed, problems)
    problems.raise_if_any()
    return SweepSpec(source, experiment, fixed, search, tuple(dimensions), tuple(points), bins_from)


def _read_experiment(value: Any, problems: Problems) -> str:
    if not isinstance(value, str) or not EXPERIMENT_NAME.fullmatch(value):
        problems.add("experiment", f"{NAME_RULE}, got {brief(value)}")
        return "sweep"
    return value


def _read_search(raw: Any, problems: Problems) -> SearchSettings:
    settings = {}
    if raw is not None and not isinstance(raw, dict):
        problems.add("search", f"must be a mapping, got {brief(raw)}")
    elif raw is not None:
        # Start points are checked against the dimensions below, not as typed fields.
        settings = {key: value for key, value in raw.items() if key != "points"}
    try:
        return ConfigLoader(problems).build(SearchSettings, settings, "search")
    except ConfigError as error:
        problems.absorb(error)
        return SearchSettings()


def _check_objectives(search: SearchSettings, problems: Problems) -> None:
    """Each metric one the trainer reports, none twice, and one mode per metric."""
    metrics = search.metrics
    listed = not isinstance(search.metric, str)
    for index, metric in enumerate(metrics):
        if metric not in OBJECTIVES:
            problems.add(
                f"search.metric[{index}]" if listed else "search.metric",
                f"{brief(metric)} is not a metric the trainer reports per epoch (allowed: "
                f"val/{{all,many,medium,few}}/{{mae,mse,gm}}, train/loss)",
            )
    if not 1 <= len(metrics) <= MAX_OBJECTIVES:
        problems.add(
            "search.metric", f"must list 1 to {MAX_OBJECTIVES} metrics, got {len(metrics)}"
        )
    elif len(set(metrics)) < len(metrics):
        problems.add("search.metric", f"lists a metric twice: {', '.join(metrics)}")
    if not isinstance(search.mode, str) and len(search.mode) != len(metrics):
        problems.add(
            "search.mode",
            f"gives {len(search.mode)} modes for {len(metrics)} metrics: give one per metric, "
            f"or a single one for all",
        )


def _check_search(
    search: SearchSettings,
    raw: Any,
    fixed: dict[str, Any],
    dimensions: list[Dimension],
    problems: Problems,
) -> None:
    epochs = int(fixed["train"]["epochs"])
    _check_objectives(search, problems)
    positive = {
        "search.num_samples": search.num_samples,
        "search.max_concurrent": search.max_concurrent,
        "search.repeats": search.repeats,
        "search.confirm.seeds": search.confirm.seeds,
    }
    for key, value in positive.items():
        if value < 1:
            problems.add(key, f"must be >= 1, got {value}")
    for key, problem in search_limit_problems(search):
        problems.add(key, problem)
    if search.searcher.startup_trials < 1:
        problems.add("search.searcher.startup_trials", "must be >= 1")
    if search.confirm.top_k < 0 or search.max_failures < 0:
        problems.add("search", "confirm.top_k and max_failures must be >= 0")
    resources = search.resources
    if resources.cpu <= 0:
        problems.add("search.resources.cpu", f"must be > 0, got {resources.cpu:g}")
    if resources.gpu < 0 or (resources.gpu > 1 and not float(resources.gpu).is_integer()):
        problems.add(
            "search.resources.gpu",
            f"must be 0, a fraction below 1 (trials share a GPU) or a whole number, "
            f"got {resources.gpu:g}",
        )
    scheduler = search.scheduler
    if scheduler.name == "asha":
        if not 1 <= scheduler.grace_period <= epochs:
            problems.add(
                "search.scheduler.grace_period",
                f"must be between 1 and train.epochs ({epochs}), got {scheduler.grace_period}",
            )
        if scheduler.reduction_factor < 2:
            problems.add("search.scheduler.reduction_factor", "must be >= 2")
    if search.searcher.name == "grid":
        if isinstance(raw, dict) and "num_samples" in raw:
            problems.add(
                "search.num_samples",
                "a grid runs each of its points once: leave num_samples out (use repeats for "
                "seeds)",
            )
        for dimension in dimensions:
            if dimension.kind != "choice":
                problems.add(
                    f"space.{dimension.path}",
                    f"a grid takes choice dimensions only, got {dimension.kind}",
                )
    elif not dimensions:
        problems.add("space", f"the {search.searcher.name} searcher needs at least one dimension")


def _read_points(
    raw: Any,
    search: SearchSettings,
    dimensions: list[Dimension],
    fixed: dict[str, Any],
    problems: Problems,
) -> list[dict[str, Any]]:
    """``search.points``: start points for optuna/random, or the grid's explicit points (a
    grid without them is the product of its choice dimensions)."""
    given = raw.get("points") if isinstance(raw, dict) else None
    if given is None:
        if search.searcher.name == "grid":
            return read_grid(dimensions, fixed, problems)
        return []
    if not isinstance(given, list) or not all(isinstance(point, dict) for point in given):
        problems.add("search.points", "must be a list of mappings {dotted path: value}")
        return []
    if len(given) > MAX_POINTS:
        problems.add("search.points", f"{len(given):,} points; at most {MAX_POINTS:,} are allowed")
        return []
    if search.searcher.name == "grid":
        return _read_grid_points(given, dimensions, fixed, problems)
    by_path = {dimension.path: dimension for dimension in dimensions}
    for index, point in enumerate(given):
        key = f"search.points[{index}]"
        mapping = with_overrides(fixed, {})
        for path, value in point.items():
            dimension = by_path.get(path)
            if dimension is None:
                problems.add(f"{key}.{shortened(str(path), 60)}", "not a dimension of space:")
            elif not dimension.active(mapping):
                problems.add(f"{key}.{path}", "its when condition does not hold in this point")
            elif not dimension.contains(value):
                problems.add(
                    f"{key}.{path}",
                    f"{shortened(format_setting(value), 60)} is outside "
                    f"{shortened(dimension.describe(), 200)}",
                )
            mapping = with_overrides(mapping, {path: value})
    return [dict(point) for point in given]


def _read_grid_points(
    given: list[dict[str, Any]],
    dimensions: list[Dimension],
    fixed: dict[str, Any],
    problems: Problems,
) -> list[dict[str, Any]]:
    """A grid's explicit points override any trial fields (a table of methods, say); each must
    give a valid trial config."""
    if dimensions:
        problems.add("search.points", "a grid takes either points or choice dimensions, not both")
    for index, point in enumerate(given):
        key = f"search.points[{index}]"
        unknown = [path for path in point if field_at(str(path)) is None]
        for path in unknown:
            problems.add(f"{key}.{shortened(str(path), 60)}", "not a field of the trial config")
        if unknown:
            continue
        try:
            trial_config_from_dict(
                with_overrides(fixed, point),
                problems.source,
                Path(problems.source).resolve().parent,
            )
        except ConfigError as error:
            problems.absorb(error, f"{key}: ")
    return [dict(point) for point in given]
