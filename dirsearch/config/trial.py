"""Typed, frozen configuration of one trial, loaded from YAML with one error per problem.

Every default lives here. The loader walks the dataclass fields, so each error names the file and
the dotted key (``train.lr``), says what was found and what is allowed. Relative paths are
resolved against the YAML file's folder: nothing depends on the working directory, which Ray
changes for every trial.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dirsearch.errors import ConfigError, ConfigProblems
from dirsearch.imbalance import KERNELS, LOSS_NAMES, REWEIGHTS, Binning, loss_parameters
from dirsearch.imbalance.metrics import REGIONS, STATISTICS
from dirsearch.models import ARCHITECTURES

DATASETS = ("synthetic", "csv_images", "tabular")
SYNTHETIC_KINDS = ("image", "tabular")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "step", "cosine")
DEVICES = ("auto", "cpu", "cuda")
AMP_MODES = ("auto", "bf16", "off")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
FDS_STATISTICS = ("extra_pass", "in_pass")
LOSSES = (*LOSS_NAMES, "bmc")
SWEEP_SECTIONS = ("experiment", "search", "space")
"""Top-level keys of a search-space file that a single trial ignores."""


def unknown_key_message(key: str, allowed: typing.Iterable[str]) -> str:
    """'unknown key' with a did-you-mean hint and the allowed keys."""
    allowed = list(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key{hint}; allowed: {', '.join(allowed)}"


def choices(*allowed: str) -> dict[str, tuple[str, ...]]:
    """Field metadata: the values a string field accepts."""
    return {"choices": allowed}


@dataclass(frozen=True)
class BinsConfig:
    """Target bins shared by LDS, FDS and the shot metrics."""

    start: float = 0.0
    width: float = 1.0
    count: int = 102

    def binning(self) -> Binning:
        return Binning(self.start, self.width, self.count)


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, where it lives, and how targets are binned."""

    name: str = field(default="synthetic", metadata=choices(*DATASETS))
    kind: str = field(default="image", metadata=choices(*SYNTHETIC_KINDS))
    """synthetic only: images or feature vectors."""
    scale: float = 1.0
    """synthetic only: training set size relative to AgeDB-DIR's 12,208 samples."""
    seed: int = 0
    """synthetic only: the data's own seed, so trials with other training seeds share it."""
    csv: str | None = None
    root: str | None = None
    """csv_images only: folder the CSV's ``path`` column is relative to (default: CSV folder)."""
    target: str = "age"
    features: tuple[str, ...] | None = None
    """tabular only: feature columns (default: every column but the target and split)."""
    image_size: int = 32
    cache_dir: str | None = None
    """csv_images only: where to keep decoded, resized images (decode once, train many)."""
    num_workers: int = 0
    bins: BinsConfig = field(default_factory=BinsConfig)


@dataclass(frozen=True)
class ModelConfig:
    """Backbone by name; FDS and the linear regressor are added by the trainer."""

    arch: str = field(default="small_cnn", metadata=choices(*ARCHITECTURES))
    pretrained: str | None = None
    mlp_hidden: tuple[int, ...] = (128, 128)
    dropout: float = 0.0


@dataclass(frozen=True)
class LossConfig:
    """The regression loss and its parameters (``beta``, ``gamma``, ``activation``)."""

    name: str = field(default="l1", metadata=choices(*LOSSES))
    beta: float | None = None
    gamma: float | None = None
    activation: str | None = None
    init_noise_sigma: float = 1.0
    """bmc only: initial noise scale of Balanced MSE."""
    noise_lr: float = 1e-2
    """bmc only: learning rate of the noise scale."""

    def params(self) -> dict[str, Any]:
        """The keyword parameters ``weighted_loss`` takes for this loss (set ones only)."""
        given = {"beta": self.beta, "gamma": self.gamma, "activation": self.activation}
        return {key: value for key, value in given.items() if value is not None}


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule: none, step (x gamma at each milestone epoch) or cosine."""

    name: str = field(default="none", metadata=choices(*SCHEDULES))
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1


@dataclass(frozen=True)
class RRTConfig:
    """Regressor re-training: start from a checkpoint, train only the final linear layer."""

    checkpoint: str | None = None


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, device and model-selection settings."""

    epochs: int = 10
    batch_size: int = 256
    optimizer: str = field(default="adam", metadata=choices(*OPTIMIZERS))
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    """sgd only."""
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    device: str = field(default="auto", metadata=choices(*DEVICES))
    amp: str = field(default="auto", metadata=choices(*AMP_MODES))
    """auto: bf16 autocast on CUDA only; bf16: on any device (CPU too); off."""
    memory_format: str = field(default="auto", metadata=choices(*MEMORY_FORMATS))
    """auto: channels_last for images on CUDA only; channels_last; contiguous."""
    select_metric: str = "val/all/mae"
    """The validation metric (lower is better) that picks the best epoch."""
    divergence_limit: float = 1e6
    """A batch loss above this (or NaN/inf) stops the trial as diverged."""
    rrt: RRTConfig = field(default_factory=RRTConfig)


@dataclass(frozen=True)
class LDSConfig:
    enabled: bool = False
    kernel: str = field(default="gaussian", metadata=choices(*KERNELS))
    ks: int = 5
    sigma: float = 2.0


@dataclass(frozen=True)
class FDSConfig:
    enabled: bool = False
    kernel: str = field(default="gaussian", metadata=choices(*KERNELS))
    ks: int = 5
    sigma: float = 2.0
    momentum: float | None = 0.9
    start_update: int = 0
    start_smooth: int = 1
    bucket_start: float | None = None
    """Targets below this pool into FDS's first bin (AgeDB-DIR uses 3); default: bins.start."""
    statistics: str = field(default="extra_pass", metadata=choices(*FDS_STATISTICS))
    """extra_pass: a no-grad pass after each epoch (the paper); in_pass: collected in training."""


@dataclass(frozen=True)
class RankSimConfig:
    enabled: bool = False
    gamma: float = 100.0
    interpolation_lambda: float = 2.0


@dataclass(frozen=True)
class ShotsConfig:
    """Shot regions by training samples per bin: many > many, few < few."""

    many: int = 100
    few: int = 20


@dataclass(frozen=True)
class ImbalanceConfig:
    reweight: str = field(default="none", metadata=choices(*REWEIGHTS))
    lds: LDSConfig = field(default_factory=LDSConfig)
    fds: FDSConfig = field(default_factory=FDSConfig)
    ranksim: RankSimConfig = field(default_factory=RankSimConfig)
    shots: ShotsConfig = field(default_factory=ShotsConfig)


@dataclass(frozen=True)
class TrialConfig:
    """Everything one training run depends on: it is a function of this and nothing else."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    imbalance: ImbalanceConfig = field(default_factory=ImbalanceConfig)

    def fds_binning(self) -> Binning:
        """The bins FDS pools by: the data bins, started at ``fds.bucket_start`` when given
        (targets below it pool into FDS's first bin, as AgeDB-DIR's ``bucket_start: 3`` does)."""
        bins, start = self.data.bins, self.imbalance.fds.bucket_start
        if start is None:
            return bins.binning()
        skipped = round((start - bins.start) / bins.width)
        return Binning(bins.start + skipped * bins.width, bins.width, bins.count - skipped)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists): for YAML dumps, checkpoints and trackers."""
        return plain_data(dataclasses.asdict(self))


def plain_data(value: Any) -> Any:
    """Nested dicts with lists for tuples: what YAML, JSON and checkpoints hold."""
    if isinstance(value, dict):
        return {key: plain_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_data(item) for item in value]
    return value


class ConfigLoader:
    """Builds a dataclass tree from nested mappings, naming ``source`` and the key in errors."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {message}")

    def record(self, error: ConfigError) -> None:
        """Keep a problem and go on, so one run of the loader reports every problem."""
        self.problems.extend(getattr(error, "problems", None) or [str(error)])

    def build(self, cls: type, mapping: Any, key: str) -> Any:
        """The dataclass ``cls`` from ``mapping``; a field with a problem keeps its default."""
        if mapping is None:
            mapping = {}
        if isinstance(mapping, str) and "name" in {item.name for item in dataclasses.fields(cls)}:
            mapping = {"name": mapping}  # shorthand: `loss: l1` means `loss: {name: l1}`
        if not isinstance(mapping, dict):
            raise self.fail(key or "(top level)", f"must be a mapping, got {mapping!r}")
        fields = {item.name: item for item in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        for unknown in sorted(set(mapping) - set(fields), key=str):
            where = f"{key}.{unknown}" if key else str(unknown)
            self.record(self.fail(where, unknown_key_message(str(unknown), fields)))
        values = {}
        for name in fields.keys() & mapping.keys():
            child = f"{key}.{name}" if key else name
            try:
                values[name] = self.convert(
                    hints[name], mapping[name], child, fields[name].metadata
                )
            except ConfigError as error:
                self.record(error)
        return cls(**values)

    def convert(self, hint: Any, value: Any, key: str, metadata: Any = None) -> Any:
        if dataclasses.is_dataclass(hint):
            return self.build(hint, value, key)
        origin = typing.get_origin(hint)
        arguments = typing.get_args(hint)
        if origin in (types.UnionType, typing.Union):
            if value is None and type(None) in arguments:
                return None
            (inner,) = [argument for argument in arguments if argument is not type(None)]
            return self.convert(inner, value, key, metadata)
        if origin is tuple:
            if not isinstance(value, list | tuple):
                raise self.fail(key, f"must be a list, got {value!r}")
            return tuple(
                self.convert(arguments[0], item, f"{key}[{i}]") for i, item in enumerate(value)
            )
        return self.scalar(hint, value, key, (metadata or {}).get("choices"))

    def scalar(self, hint: type, value: Any, key: str, allowed: tuple[str, ...] | None) -> Any:
        if hint is bool:
            if not isinstance(value, bool):
                raise self.fail(key, f"must be true or false, got {value!r}")
            return value
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(key, f"must be an integer, got {value!r}")
            return value
        if hint is float:
            return self.number(value, key)
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {value!r}")
        if allowed is not None and value not in allowed:
            raise self.fail(key, f"unknown value {value!r}; allowed: {', '.join(allowed)}")
        return value

    def number(self, value: Any, key: str) -> float:
        """A float; YAML 1.1 reads ``1e-3`` (no dot) as a string, so such strings are accepted."""
        if isinstance(value, bool):
            raise self.fail(key, f"must be a number, got {value!r}")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise self.fail(key, f"must be a number, got {value!r}")


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


def _require(condition: bool, loader: ConfigLoader, key: str, message: str) -> None:
    if not condition:
        loader.record(loader.fail(key, message))


def _validate(config: TrialConfig, loader: ConfigLoader) -> None:
    """Cross-field rules the types cannot express; each names its key and what is allowed."""
    data, train, imbalance = config.data, config.train, config.imbalance
    _require(
        data.name == "synthetic" or data.csv is not None,
        loader,
        "data.csv",
        f"required for dataset {data.name!r}",
    )
    _require(data.scale > 0, loader, "data.scale", f"must be > 0, got {data.scale}")
    _require(
        data.image_size >= 8, loader, "data.image_size", f"must be >= 8, got {data.image_size}"
    )
    _require(data.num_workers >= 0, loader, "data.num_workers", "must be >= 0")
    _require(data.bins.width > 0, loader, "data.bins.width", f"must be > 0, got {data.bins.width}")
    _require(
        data.bins.count >= 1, loader, "data.bins.count", f"must be >= 1, got {data.bins.count}"
    )
    _require(train.epochs >= 1, loader, "train.epochs", f"must be >= 1, got {train.epochs}")
    _require(
        train.batch_size >= 2, loader, "train.batch_size", f"must be >= 2, got {train.batch_size}"
    )
    _require(train.lr > 0, loader, "train.lr", f"must be > 0, got {train.lr}")
    _require(train.weight_decay >= 0, loader, "train.weight_decay", "must be >= 0")
    _require(train.divergence_limit > 0, loader, "train.divergence_limit", "must be > 0")
    _require(
        0 <= train.momentum < 1,
        loader,
        "train.momentum",
        f"must be in [0, 1), got {train.momentum}",
    )
    parts = train.select_metric.split("/")
    _require(
        len(parts) == 3 and parts[0] == "val" and parts[1] in REGIONS and parts[2] in STATISTICS,
        loader,
        "train.select_metric",
        f"must be val/{{all,many,medium,few}}/{{mae,mse,gm}}, got {train.select_metric!r}",
    )
    _require(
        train.schedule.name != "step" or len(train.schedule.milestones) > 0,
        loader,
        "train.schedule.milestones",
        "the step schedule needs at least one milestone epoch",
    )
    _require(train.schedule.gamma > 0, loader, "train.schedule.gamma", "must be > 0 (lr factor)")
    _validate_loss(train.loss, loader)
    _require(
        train.loss.name != "bmc" or imbalance.reweight == "none",
        loader,
        "imbalance.reweight",
        "loss bmc (Balanced MSE) balances by itself and takes no sample weights: use none",
    )
    _require(
        not imbalance.lds.enabled or imbalance.reweight != "none",
        loader,
        "imbalance.lds.enabled",
        "LDS smooths the re-weighting density: set imbalance.reweight to inverse or sqrt_inv",
    )
    for section in ("lds", "fds"):
        settings = getattr(imbalance, section)
        _require(
            settings.ks >= 1 and settings.ks % 2 == 1,
            loader,
            f"imbalance.{section}.ks",
            f"must be a positive odd integer, got {settings.ks}",
        )
        _require(
            settings.sigma > 0,
            loader,
            f"imbalance.{section}.sigma",
            f"must be > 0, got {settings.sigma}",
        )
    fds = imbalance.fds
    _require(
        fds.momentum is None or 0 <= fds.momentum < 1,
        loader,
        "imbalance.fds.momentum",
        f"must be in [0, 1) or null (cumulative average), got {fds.momentum}",
    )
    if fds.enabled:
        _validate_fds_bins(config, loader)
    _require(
        fds.start_update >= 0 and fds.start_smooth >= 0,
        loader,
        "imbalance.fds",
        "start_update and start_smooth must be epochs >= 0",
    )
    _require(
        imbalance.ranksim.interpolation_lambda > 0,
        loader,
        "imbalance.ranksim.interpolation_lambda",
        "must be > 0",
    )
    _require(
        0 <= imbalance.shots.few <= imbalance.shots.many,
        loader,
        "imbalance.shots",
        "need 0 <= few <= many",
    )


def _validate_fds_bins(config: TrialConfig, loader: ConfigLoader) -> None:
    bins, fds = config.data.bins, config.imbalance.fds
    if fds.bucket_start is not None:
        end = bins.start + bins.width * bins.count
        if not bins.start <= fds.bucket_start < end:
            _require(
                False,
                loader,
                "imbalance.fds.bucket_start",
                f"must lie inside data.bins [{bins.start:g}, {end:g}), got {fds.bucket_start:g}",
            )
            return  # the FDS bins below are undefined
    half = (fds.ks - 1) // 2
    _require(
        config.fds_binning().count > half,
        loader,
        "imbalance.fds.ks",
        f"FDS reflect-pads (ks-1)/2 = {half} bins at each end but has only "
        f"{config.fds_binning().count} bins: use a smaller ks or more data.bins",
    )


def _validate_loss(loss: LossConfig, loader: ConfigLoader) -> None:
    accepted = set(loss_parameters(loss.name)) if loss.name in LOSS_NAMES else set()
    extra = sorted(set(loss.params()) - accepted)
    _require(
        not extra,
        loader,
        f"train.loss.{extra[0] if extra else ''}",
        f"not a parameter of loss {loss.name!r}; it takes: {', '.join(sorted(accepted)) or 'none'}",
    )
    _require(loss.beta is None or loss.beta > 0, loader, "train.loss.beta", "must be > 0")
    _require(loss.gamma is None or loss.gamma >= 0, loader, "train.loss.gamma", "must be >= 0")
    _require(
        loss.activation in (None, "sigmoid", "tanh"),
        loader,
        "train.loss.activation",
        "allowed: sigmoid, tanh",
    )
    _require(loss.init_noise_sigma > 0, loader, "train.loss.init_noise_sigma", "must be > 0")
    _require(loss.noise_lr > 0, loader, "train.loss.noise_lr", "must be > 0")


def trial_config_from_dict(mapping: Any, source: str, base: Path) -> TrialConfig:
    """Build and validate a TrialConfig; ``source`` names the origin in errors, relative paths
    are taken relative to ``base``. Sweep-only sections (experiment, search, space) are skipped."""
    loader = ConfigLoader(source)
    if isinstance(mapping, dict):
        mapping = {key: value for key, value in mapping.items() if key not in SWEEP_SECTIONS}
    config = _with_absolute_paths(loader.build(TrialConfig, mapping, ""), base)
    if not loader.problems:  # cross-field rules only make sense once every field is valid
        _validate(config, loader)
    if loader.problems:
        raise ConfigProblems(loader.problems)
    return config


def read_yaml(path: Path) -> Any:
    """The parsed content of a YAML file (safe loader); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        mapping = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"{path}:{where} not valid YAML ({getattr(error, 'problem', error)})"
        ) from None
    return mapping


def load_trial_config(path: Path) -> TrialConfig:
    """Read a trial (or search-space) YAML file into a validated TrialConfig."""
    mapping = read_yaml(path)
    return trial_config_from_dict(mapping, str(path), Path(path).resolve().parent)
