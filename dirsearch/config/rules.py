"""Cross-field rules of a trial config that its types cannot express; each names its key and
what is allowed."""

from __future__ import annotations

from dirsearch.config.bounds import within_limits
from dirsearch.config.problems import Problems
from dirsearch.config.trial import LossConfig, TrialConfig
from dirsearch.imbalance.vocabulary import LOSS_NAMES, REGIONS, STATISTICS, loss_parameters


def _require(condition: bool, problems: Problems, key: str, message: str) -> None:
    if not condition:
        problems.add(key, message)


def validate(config: TrialConfig, problems: Problems) -> None:
    """Cross-field rules the types cannot express; each names its key and what is allowed.
    Numbers beyond their limits (``bounds``) are reported alone: the rules' arithmetic on them
    means nothing (or overflows)."""
    if not within_limits(config, problems):
        return
    data, train, imbalance = config.data, config.train, config.imbalance
    _require(
        data.name == "synthetic" or data.csv is not None,
        problems,
        "data.csv",
        f"required for dataset {data.name!r}",
    )
    _require(data.scale > 0, problems, "data.scale", f"must be > 0, got {data.scale}")
    _require(
        data.image_size >= 8, problems, "data.image_size", f"must be >= 8, got {data.image_size}"
    )
    _require(data.num_workers >= 0, problems, "data.num_workers", "must be >= 0")
    _require(
        data.bins.width > 0, problems, "data.bins.width", f"must be > 0, got {data.bins.width}"
    )
    _require(
        data.bins.count >= 1, problems, "data.bins.count", f"must be >= 1, got {data.bins.count}"
    )
    _require(train.epochs >= 1, problems, "train.epochs", f"must be >= 1, got {train.epochs}")
    _require(
        train.batch_size >= 2, problems, "train.batch_size", f"must be >= 2, got {train.batch_size}"
    )
    _require(train.lr > 0, problems, "train.lr", f"must be > 0, got {train.lr}")
    _require(train.weight_decay >= 0, problems, "train.weight_decay", "must be >= 0")
    _require(train.divergence_limit > 0, problems, "train.divergence_limit", "must be > 0")
    _require(
        0 <= train.momentum < 1,
        problems,
        "train.momentum",
        f"must be in [0, 1), got {train.momentum}",
    )
    parts = train.select_metric.split("/")
    _require(
        len(parts) == 3 and parts[0] == "val" and parts[1] in REGIONS and parts[2] in STATISTICS,
        problems,
        "train.select_metric",
        f"must be val/{{all,many,medium,few}}/{{mae,mse,gm}}, got {train.select_metric!r}",
    )
    _require(
        train.schedule.name != "step" or len(train.schedule.milestones) > 0,
        problems,
        "train.schedule.milestones",
        "the step schedule needs at least one milestone epoch",
    )
    _require(train.schedule.gamma > 0, problems, "train.schedule.gamma", "must be > 0 (lr factor)")
    _validate_loss(train.loss, problems)
    _require(
        train.loss.name != "bmc" or imbalance.reweight == "none",
        problems,
        "imbalance.reweight",
        "loss bmc (Balanced MSE) balances by itself and takes no sample weights: use none",
    )
    _require(
        not imbalance.lds.enabled or imbalance.reweight != "none",
        problems,
        "imbalance.lds.enabled",
        "LDS smooths the re-weighting density: set imbalance.reweight to inverse or sqrt_inv",
    )
    for section in ("lds", "fds"):
        settings = getattr(imbalance, section)
        _require(
            settings.ks >= 1 and settings.ks % 2 == 1,
            problems,
            f"imbalance.{section}.ks",
            f"must be a positive odd integer, got {settings.ks}",
        )
        _require(
            settings.sigma > 0,
            problems,
            f"imbalance.{section}.sigma",
            f"must be > 0, got {settings.sigma}",
        )
    fds = imbalance.fds
    _require(
        fds.momentum is None or 0 <= fds.momentum < 1,
        problems,
        "imbalance.fds.momentum",
        f"must be in [0, 1) or null (cumulative average), got {fds.momentum}",
    )
    if fds.enabled:
        _validate_fds_bins(config, problems)
    _require(
        fds.start_update >= 0 and fds.start_smooth >= 0,
        problems,
        "imbalance.fds",
        "start_update and start_smooth must be epochs >= 0",
    )
    _require(
        imbalance.ranksim.interpolation_lambda > 0,
        problems,
        "imbalance.ranksim.interpolation_lambda",
        "must be > 0",
    )
    conr = imbalance.conr
    for name in ("beta", "w", "t", "e", "noise_std"):
        value, positive = getattr(conr, name), name in ("w", "t")
        _require(
            value > 0 if positive else value >= 0,
            problems,
            f"imbalance.conr.{name}",
            f"must be {'>' if positive else '>='} 0, got {value}",
        )
    _require(
        0 <= imbalance.shots.few <= imbalance.shots.many,
        problems,
        "imbalance.shots",
        "need 0 <= few <= many",
    )


def _validate_fds_bins(config: TrialConfig, problems: Problems) -> None:
    bins, fds = config.data.bins, config.imbalance.fds
    if fds.bucket_start is not None:
        end = bins.start + bins.width * bins.count
        if not bins.start <= fds.bucket_start < end:
            _require(
                False,
                problems,
                "imbalance.fds.bucket_start",
                f"must lie inside data.bins [{bins.start:g}, {end:g}), got {fds.bucket_start:g}",
            )
            return  # the FDS bins below are undefined
    half = (fds.ks - 1) // 2
    _require(
        config.fds_binning().count > half,
        problems,
        "imbalance.fds.ks",
        f"FDS reflect-pads (ks-1)/2 = {half} bins at each end but has only "
        f"{config.fds_binning().count} bins: use a smaller ks or more data.bins",
    )


def _validate_loss(loss: LossConfig, problems: Problems) -> None:
    accepted = set(loss_parameters(loss.name)) if loss.name in LOSS_NAMES else set()
    extra = sorted(set(loss.params()) - accepted)
    _require(
        not extra,
        problems,
        f"train.loss.{extra[0] if extra else ''}",
        f"not a parameter of loss {loss.name!r}; it takes: {', '.join(sorted(accepted)) or 'none'}",
    )
    _require(loss.beta is None or loss.beta > 0, problems, "train.loss.beta", "must be > 0")
    _require(loss.gamma is None or loss.gamma >= 0, problems, "train.loss.gamma", "must be >= 0")
    _require(
        loss.activation in (None, "sigmoid", "tanh"),
        problems,
        "train.loss.activation",
        "allowed: sigmoid, tanh",
    )
    _require(loss.init_noise_sigma > 0, problems, "train.loss.init_noise_sigma", "must be > 0")
    _require(loss.noise_lr > 0, problems, "train.loss.noise_lr", "must be > 0")
