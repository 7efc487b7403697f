"""A search-space file -> a validated SweepSpec, with every problem of the file in one error.

The file is a trial YAML (``data``, ``model``, ``train``, ``imbalance``, ``seed``) plus
``experiment`` (a name), ``search`` (settings) and ``space`` (dimensions by dotted path). Each
dimension's values are checked by building the trial config they would produce, so a searched
value is held to exactly the rules of a fixed one. Nothing here imports Ray: ``dirsearch
validate`` and the tests use it without starting a cluster.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dirsearch.config.trial import (
    SWEEP_SECTIONS,
    ConfigLoader,
    TrialConfig,
    choices,
    plain_data,
    read_yaml,
    trial_config_from_dict,
    unknown_key_message,
)
from dirsearch.errors import ConfigError, ConfigProblems
from dirsearch.imbalance.metrics import REGIONS, STATISTICS
from dirsearch.sweep.dimensions import (
    KINDS,
    MISSING,
    Condition,
    Dimension,
    SearchSpace,
    format_value,
    get_path,
    grid_points,
    with_overrides,
)

SEARCHERS = ("optuna", "random", "grid")
SCHEDULERS = ("asha", "fifo")
OBJECTIVES = (*(f"val/{r}/{s}" for r in REGIONS for s in STATISTICS), "train/loss")
"""Per-epoch metrics of the trainer that a sweep can optimise."""
EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_CHECKED_INTEGERS = 64
"""An int dimension with at most this many values has each value checked (odd ks and such)."""
DIMENSION_KEYS = (*KINDS, "when", "step", "log")


@dataclass(frozen=True)
class Resources:
    """What one trial reserves on the cluster; fractional GPUs share a device (accounting only)."""

    cpu: float = 1.0
    gpu: float = 0.0


@dataclass(frozen=True)
class SearcherSettings:
    name: str = field(default="optuna", metadata=choices(*SEARCHERS))
    seed: int = 0
    """Seeds Optuna's sampler (TPE or random), so a search is reproducible."""
    startup_trials: int = 10
    """optuna: trials sampled at random before TPE models the results (Optuna's default 10)."""


@dataclass(frozen=True)
class SchedulerSettings:
    name: str = field(default="asha", metadata=choices(*SCHEDULERS))
    grace_period: int = 1
    """asha: epochs every trial gets before it can be stopped."""
    reduction_factor: int = 3
    """asha: 1 in reduction_factor trials goes on at each rung."""


@dataclass(frozen=True)
class ConfirmSettings:
    """After the search: retrain the ``top_k`` best configurations with ``seeds`` fresh seeds."""

    top_k: int = 0
    seeds: int = 3


@dataclass(frozen=True)
class SearchSettings:
    metric: str = "val/few/mae"
    mode: str = field(default="min", metadata=choices("min", "max"))
    num_samples: int = 16
    max_concurrent: int = 2
    resources: Resources = field(default_factory=Resources)
    searcher: SearcherSettings = field(default_factory=SearcherSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    repeats: int = 1
    """Seeds per sampled configuration, trained in lockstep; the search optimises their mean."""
    confirm: ConfirmSettings = field(default_factory=ConfirmSettings)
    max_failures: int = 2
    """Retries of a trial that fails (a lost node, say), each from its last checkpoint."""


@dataclass(frozen=True)
class SweepSpec:
    """Everything one sweep depends on, resolved: paths absolute, the fixed trial validated."""

    source: str
    experiment: str
    fixed: dict[str, Any]
    """The fixed trial mapping (every key, paths absolute): overrides apply on top of it."""
    search: SearchSettings
    dimensions: tuple[Dimension, ...]
    points: tuple[dict[str, Any], ...]
    """Start points (optuna, random) or the grid's points (grid), as dotted overrides."""

    def trial_config(self, overrides: dict[str, Any], seed: int | None = None) -> TrialConfig:
        """The TrialConfig of one trial (``seed`` replaces the fixed seed, for repeats)."""
        mapping = with_overrides(self.fixed, overrides)
        if seed is not None:
            mapping["seed"] = seed
        return trial_config_from_dict(mapping, self.source, Path(self.source).parent)

    def space(self) -> SearchSpace:
        return SearchSpace(self.fixed, list(self.dimensions))

    @property
    def epochs(self) -> int:
        return int(self.fixed["train"]["epochs"])

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for the sweep folder), read back by ``spec_from_dict``."""
        return plain_data(dataclasses.asdict(self))


def spec_from_dict(data: dict[str, Any]) -> SweepSpec:
    """Inverse of ``SweepSpec.to_dict`` (the sweep folder's copy, already validated)."""
    loader = ConfigLoader(data["source"])
    dimensions = tuple(
        Dimension(
            **{
                **item,
                "values": tuple(item["values"]),
                "conditions": tuple(
                    Condition(c["path"], tuple(c["values"])) for c in item["conditions"]
                ),
            }
        )
        for item in data["dimensions"]
    )
    return SweepSpec(
        source=data["source"],
        experiment=data["experiment"],
        fixed=data["fixed"],
        search=loader.build(SearchSettings, data["search"], "search"),
        dimensions=dimensions,
        points=tuple(data["points"]),
    )


def field_at(path: str) -> tuple[Any, dict[str, Any]] | None:
    """(type hint, field metadata) of a dotted TrialConfig path, or None if there is none."""
    hint: Any = TrialConfig
    metadata: dict[str, Any] = {}
    for key in path.split("."):
        hint = _dataclass_in(hint)
        if hint is None:
            return None
        fields = {item.name: item for item in dataclasses.fields(hint)}
        if key not in fields:
            return None
        metadata = dict(fields[key].metadata)
        hint = typing.get_type_hints(hint)[key]
    return hint, metadata


def _dataclass_in(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint):
        return hint
    for argument in typing.get_args(hint):
        if dataclasses.is_dataclass(argument):
            return argument
    return None


def all_paths(cls: type = TrialConfig, prefix: str = "") -> list[str]:
    """Every dotted path of the trial config, for did-you-mean hints."""
    paths = []
    for item in dataclasses.fields(cls):
        path = f"{prefix}{item.name}"
        paths.append(path)
        inner = _dataclass_in(typing.get_type_hints(cls)[item.name])
        if inner is not None:
            paths.extend(all_paths(inner, f"{path}."))
    return paths


class _SpecReader:
    """Reads one file, collecting one line per problem instead of stopping at the first."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.source}: {key}: {message}")

    def absorb(self, error: ConfigError, prefix: str = "") -> None:
        """Keep the lines of a config error, optionally explained by ``prefix``."""
        for line in getattr(error, "problems", None) or [str(error)]:
            inner = line.removeprefix(f"{self.source}: ")
            self.problems.append(f"{self.source}: {prefix}{inner}")


def load_sweep_spec(path: Path) -> SweepSpec:
    """Read and validate a search-space file; raises ConfigProblems listing every problem."""
    path = Path(path)
    mapping = read_yaml(path)
    source = str(path)
    reader = _SpecReader(source)
    if not isinstance(mapping, dict):
        raise ConfigError(f"{source}: (top level): must be a mapping of sections")
    base = path.resolve().parent
    search = _read_search(mapping.get("search"), reader)
    experiment = _read_experiment(mapping.get("experiment", path.stem), reader)
    sections = [item.name for item in dataclasses.fields(TrialConfig)] + list(SWEEP_SECTIONS)
    for unknown in sorted(set(mapping) - set(sections), key=str):
        reader.problem(str(unknown), unknown_key_message(str(unknown), sections))
    trial_mapping = {key: value for key, value in mapping.items() if key in sections}
    for section in SWEEP_SECTIONS:
        trial_mapping.pop(section, None)
    train = trial_mapping.get("train")
    if (
        search.metric.startswith("val/")
        and search.metric in OBJECTIVES
        and (not isinstance(train, dict) or "select_metric" not in train)
    ):
        # The checkpoint scored on test at the end is the epoch the search scored.
        trial_mapping = with_overrides(trial_mapping, {"train.select_metric": search.metric})
    try:
        fixed = trial_config_from_dict(trial_mapping, source, base).to_dict()
    except ConfigError as error:
        reader.absorb(error)
        raise ConfigProblems(reader.problems) from None
    dimensions = _read_dimensions(mapping.get("space"), fixed, reader)
    _check_dimension_values(dimensions, fixed, source, base, reader)
    _check_search(search, mapping.get("search"), fixed, dimensions, reader)
    points = _read_points(mapping.get("search"), search, dimensions, fixed, reader)
    if reader.problems:
        raise ConfigProblems(reader.problems)
    return SweepSpec(source, experiment, fixed, search, tuple(dimensions), tuple(points))


def _read_experiment(value: Any, reader: _SpecReader) -> str:
    if not isinstance(value, str) or not EXPERIMENT_NAME.match(value):
        reader.problem(
            "experiment",
            f"must be a name of letters, digits, '.', '_' or '-' (it names the sweep "
            f"folder), got {value!r}",
        )
        return "sweep"
    return value


def _read_search(raw: Any, reader: _SpecReader) -> SearchSettings:
    loader = ConfigLoader(reader.source)
    settings = {}
    if raw is not None and not isinstance(raw, dict):
        reader.problem("search", f"must be a mapping, got {raw!r}")
    elif raw is not None:
        # Start points are checked against the dimensions below, not as typed fields.
        settings = {key: value for key, value in raw.items() if key != "points"}
    try:
        search = loader.build(SearchSettings, settings, "search")
    except ConfigError as error:
        reader.absorb(error)
        return SearchSettings()
    for line in loader.problems:
        reader.absorb(ConfigError(line))
    return search


def _parse_condition(raw: Any, key: str, reader: _SpecReader) -> list[Condition]:
    if isinstance(raw, str):
        return [Condition(raw, (True,))]
    if isinstance(raw, dict) and raw:
        return [
            Condition(str(path), tuple(value) if isinstance(value, list) else (value,))
            for path, value in raw.items()
        ]
    reader.problem(
        key,
        f"must be a path that must be true (when: imbalance.fds.enabled) or a mapping of paths "
        f"to the value(s) they must equal (when: {{imbalance.reweight: [inverse, sqrt_inv]}}), "
        f"got {raw!r}",
    )
    return []


def _read_dimensions(raw: Any, fixed: dict[str, Any], reader: _SpecReader) -> list[Dimension]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        reader.problem("space", "must be a mapping of dotted trial paths to dimensions")
        return []
    dimensions: list[Dimension] = []
    for path, body in raw.items():
        key = f"space.{path}"
        if field_at(str(path)) is None:
            close = difflib.get_close_matches(str(path), all_paths(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            reader.problem(key, f"not a field of the trial config{hint}")
            continue
        dimension = _read_dimension(str(path), body, key, reader)
        if dimension is None:
            continue
        conditions = _parse_condition(body["when"], f"{key}.when", reader) if "when" in body else []
        if all(_check_condition(c, f"{key}.when", dimensions, fixed, reader) for c in conditions):
            dimensions.append(dataclasses.replace(dimension, conditions=tuple(conditions)))
    return dimensions


def _read_dimension(path: str, body: Any, key: str, reader: _SpecReader) -> Dimension | None:
    kinds = [kind for kind in KINDS if isinstance(body, dict) and kind in body]
    if len(kinds) != 1:
        reader.problem(
            key, f"must be a mapping with exactly one of {', '.join(KINDS)} (and optional when)"
        )
        return None
    for unknown in sorted(set(body) - set(DIMENSION_KEYS)):
        reader.problem(f"{key}.{unknown}", unknown_key_message(unknown, DIMENSION_KEYS))
    (kind,) = kinds
    value = body[kind]
    if kind == "choice":
        if not isinstance(value, list) or not value:
            reader.problem(f"{key}.choice", f"must be a non-empty list of values, got {value!r}")
            return None
        return Dimension(path, kind, values=tuple(value))
    numbers = isinstance(value, list) and len(value) == 2
    numbers = numbers and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    if not numbers:
        reader.problem(f"{key}.{kind}", f"must be [low, high], got {value!r}")
        return None
    low, high = value
    problem = None
    if low >= high:
        problem = f"low must be below high, got [{low}, {high}]"
    elif kind == "loguniform" and low <= 0:
        problem = f"loguniform needs low > 0, got {low}"
    elif kind == "int" and not all(isinstance(v, int) for v in value):
        problem = f"int bounds must be integers, got {value!r}"
    if problem:
        reader.problem(f"{key}.{kind}", problem)
        return None
    step, log = body.get("step", 1), body.get("log", False)
    if kind != "int" and ("step" in body or "log" in body):
        reader.problem(key, "step and log belong to int dimensions (use loguniform for floats)")
        return None
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        reader.problem(f"{key}.step", f"must be an integer >= 1, got {step!r}")
        return None
    if not isinstance(log, bool) or (log and (step != 1 or low < 1)):
        reader.problem(f"{key}.log", "must be true or false; log needs step 1 and low >= 1")
        return None
    return Dimension(path, kind, low=float(low), high=float(high), step=step, log=log)


def _check_condition(
    condition: Condition,
    key: str,
    earlier: list[Dimension],
    fixed: dict[str, Any],
    reader: _SpecReader,
) -> bool:
    """A condition reads a boolean or choice field, fixed or searched by an earlier dimension,
    and compares it with values that field can take."""
    searched = next((d for d in earlier if d.path == condition.path), None)
    found = field_at(condition.path)
    if found is None:
        reader.problem(key, f"{condition.path} is not a field of the trial config")
        return False
    hint, metadata = found
    if searched is not None and searched.kind == "choice":
        allowed = [get_path({"v": value}, "v") for value in searched.values]
    elif hint is bool:
        allowed = [True, False]
    elif metadata.get("choices"):
        allowed = list(metadata["choices"])
    else:
        reader.problem(
            key,
            f"{condition.path} is neither a boolean nor a choice field, nor a choice dimension "
            f"defined above; a condition must read one",
        )
        return False
    later = get_path(fixed, condition.path) is MISSING
    if later:
        reader.problem(key, f"{condition.path} is not a field of the trial config")
        return False
    wrong = [value for value in condition.values if value not in allowed]
    if wrong:
        shown = ", ".join(format_value(value) for value in allowed)
        reader.problem(
            key, f"{condition.path} never equals {format_value(wrong[0])} (allowed: {shown})"
        )
        return False
    return True


def _satisfying(
    dimension: Dimension, dimensions: list[Dimension], fixed: dict[str, Any]
) -> dict[str, Any]:
    """Overrides that make ``dimension`` active: each condition's first allowed value, and
    recursively the conditions of the dimensions those values come from."""
    overrides: dict[str, Any] = {}
    for condition in dimension.conditions:
        parent = next((d for d in dimensions if d.path == condition.path), None)
        if parent is not None:
            overrides.update(_satisfying(parent, dimensions, fixed))
        overrides[condition.path] = condition.values[0]
    return overrides


def _check_dimension_values(
    dimensions: list[Dimension],
    fixed: dict[str, Any],
    source: str,
    base: Path,
    reader: _SpecReader,
) -> None:
    """Each value (or bound) a dimension can take must give a valid trial config when its
    conditions hold: the same rules as a fixed value, including impossible combinations."""
    for dimension in dimensions:
        values = dimension.bounds()
        if dimension.kind == "int":
            count = (dimension.high - dimension.low) // dimension.step + 1
            if count <= MAX_CHECKED_INTEGERS and not dimension.log:
                values = list(range(int(dimension.low), int(dimension.high) + 1, dimension.step))
        context = _satisfying(dimension, dimensions, fixed)
        for value in values:
            mapping = with_overrides(fixed, {**context, dimension.path: value})
            try:
                trial_config_from_dict(mapping, source, base)
            except ConfigError as error:
                reader.absorb(
                    error, f"space.{dimension.path}: value {format_value(value)} is refused: "
                )
                break  # one line per dimension is enough to act on


def _check_search(
    search: SearchSettings,
    raw: Any,
    fixed: dict[str, Any],
    dimensions: list[Dimension],
    reader: _SpecReader,
) -> None:
    epochs = int(fixed["train"]["epochs"])
    if search.metric not in OBJECTIVES:
        reader.problem(
            "search.metric",
            f"{search.metric!r} is not a metric the trainer reports per epoch (allowed: "
            f"val/{{all,many,medium,few}}/{{mae,mse,gm}}, train/loss)",
        )
    positive = {
        "search.num_samples": search.num_samples,
        "search.max_concurrent": search.max_concurrent,
        "search.repeats": search.repeats,
        "search.confirm.seeds": search.confirm.seeds,
    }
    for key, value in positive.items():
        if value < 1:
            reader.problem(key, f"must be >= 1, got {value}")
    if search.searcher.startup_trials < 1:
        reader.problem("search.searcher.startup_trials", "must be >= 1")
    if search.confirm.top_k < 0 or search.max_failures < 0:
        reader.problem("search", "confirm.top_k and max_failures must be >= 0")
    resources = search.resources
    if resources.cpu <= 0:
        reader.problem("search.resources.cpu", f"must be > 0, got {resources.cpu:g}")
    if resources.gpu < 0 or (resources.gpu > 1 and not float(resources.gpu).is_integer()):
        reader.problem(
            "search.resources.gpu",
            f"must be 0, a fraction below 1 (trials share a GPU) or a whole number, "
            f"got {resources.gpu:g}",
        )
    scheduler = search.scheduler
    if scheduler.name == "asha":
        if not 1 <= scheduler.grace_period <= epochs:
            reader.problem(
                "search.scheduler.grace_period",
                f"must be between 1 and train.epochs ({epochs}), got {scheduler.grace_period}",
            )
        if scheduler.reduction_factor < 2:
            reader.problem("search.scheduler.reduction_factor", "must be >= 2")
    if search.searcher.name == "grid":
        if isinstance(raw, dict) and "num_samples" in raw:
            reader.problem(
                "search.num_samples",
                "a grid runs each of its points once: leave num_samples out (use repeats for "
                "seeds)",
            )
        for dimension in dimensions:
            if dimension.kind != "choice":
                reader.problem(
                    f"space.{dimension.path}",
                    f"a grid takes choice dimensions only, got {dimension.kind}",
                )
    elif not dimensions:
        reader.problem("space", f"the {search.searcher.name} searcher needs at least one dimension")


def _read_points(
    raw: Any,
    search: SearchSettings,
    dimensions: list[Dimension],
    fixed: dict[str, Any],
    reader: _SpecReader,
) -> list[dict[str, Any]]:
    """``search.points``: start points for optuna/random, or the grid's explicit points (a
    grid without them is the product of its choice dimensions)."""
    given = raw.get("points") if isinstance(raw, dict) else None
    if given is None:
        if search.searcher.name == "grid":
            return grid_points(dimensions, fixed)
        return []
    if not isinstance(given, list) or not all(isinstance(point, dict) for point in given):
        reader.problem("search.points", "must be a list of mappings {dotted path: value}")
        return []
    if search.searcher.name == "grid":
        return _read_grid_points(given, dimensions, fixed, reader)
    by_path = {dimension.path: dimension for dimension in dimensions}
    for index, point in enumerate(given):
        key = f"search.points[{index}]"
        mapping = with_overrides(fixed, {})
        for path, value in point.items():
            dimension = by_path.get(path)
            if dimension is None:
                reader.problem(f"{key}.{path}", "not a dimension of space:")
            elif not dimension.active(mapping):
                reader.problem(f"{key}.{path}", "its when condition does not hold in this point")
            elif not dimension.contains(value):
                reader.problem(
                    f"{key}.{path}", f"{format_value(value)} is outside {dimension.describe()}"
                )
            mapping = with_overrides(mapping, {path: value})
    return [dict(point) for point in given]


def _read_grid_points(
    given: list[dict[str, Any]],
    dimensions: list[Dimension],
    fixed: dict[str, Any],
    reader: _SpecReader,
) -> list[dict[str, Any]]:
    """A grid's explicit points override any trial fields (a table of methods, say); each must
    give a valid trial config."""
    if dimensions:
        reader.problem("search.points", "a grid takes either points or choice dimensions, not both")
    for index, point in enumerate(given):
        key = f"search.points[{index}]"
        unknown = [path for path in point if field_at(str(path)) is None]
        for path in unknown:
            reader.problem(f"{key}.{path}", "not a field of the trial config")
        if unknown:
            continue
        try:
            trial_config_from_dict(
                with_overrides(fixed, point), reader.source, Path(reader.source).resolve().parent
            )
        except ConfigError as error:
            reader.absorb(error, f"{key}: ")
    return [dict(point) for point in given]


def environment_problems(spec: SweepSpec, gpus_available: int | None) -> list[str]:
    """What this machine lacks for the sweep: data files (with how to get them) and GPUs.

    Separate from the file's own checks so a sweep meant for a cluster can be validated on a
    laptop (``dirsearch validate --no-environment``). ``gpus_available`` None skips the GPUs."""
    problems = []
    data, source = spec.fixed["data"], spec.source
    needed = []
    if data["name"] != "synthetic":
        needed.append(("data.csv", data["csv"]))
    if data["name"] == "csv_images" and data["root"]:
        needed.append(("data.root", data["root"]))
    needed.append(("model.pretrained", spec.fixed["model"]["pretrained"]))
    needed.append(("train.rrt.checkpoint", spec.fixed["train"]["rrt"]["checkpoint"]))
    for key, value in needed:
        if value is not None and not Path(value).exists():
            problems.append(f"{source}: {key}: {value} does not exist; {_how_to_get(key, data)}")
    gpu = spec.search.resources.gpu
    if gpus_available is not None and gpu > gpus_available:
        problems.append(
            f"{source}: search.resources.gpu: each trial asks for {gpu:g} GPU but there "
            f"{'is' if gpus_available == 1 else 'are'} {gpus_available}; lower it, or run on "
            f"a cluster with GPUs (--address)"
        )
    return problems


def _how_to_get(key: str, data: dict[str, Any]) -> str:
    if key in ("data.csv", "data.root") and data["name"] == "csv_images":
        return (
            "build the DIR CSV from the raw download with `dirsearch data prepare imdb-wiki "
            "--raw DIR --out CSV` (or `agedb`), or point data.csv/data.root at your copy "
            "(README: Data)"
        )
    if key == "data.csv":
        return (
            "point data.csv at your numeric CSV (features, target, split; `dirsearch data split` "
            "adds the split column), or write an example with `dirsearch data synth --kind "
            "tabular --out DIR` (README: Data)"
        )
    return "fix the path (relative paths are relative to the space file's folder)"
