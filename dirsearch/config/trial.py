"""Typed, frozen configuration of one trial: every field, its default, and what it means.

Every default lives here. A field's docstring is the documentation a user reads (the README and
the schema take it from here); choices are field metadata, so the loader can name what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from dirsearch.config.loader import choices, plain_data
from dirsearch.imbalance.bins import Binning
from dirsearch.imbalance.vocabulary import KERNELS, LOSS_NAMES, REWEIGHTS
from dirsearch.models.architectures import ARCHITECTURES

DATASETS = ("synthetic", "csv_images", "tabular")


SYNTHETIC_KINDS = ("image", "tabular")


OPTIMIZERS = ("adam", "adamw", "sgd")


SCHEDULES = ("none", "step", "cosine")


DEVICES = ("auto", "cpu", "cuda")


AMP_MODES = ("auto", "bf16", "off")


MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


FDS_STATISTICS = ("extra_pass", "in_pass")


LOSSES = (*LOSS_NAMES, "bmc")


@dataclass(frozen=True)
class BinsConfig:
    """Target bins shared by LDS, FDS and the shot metrics."""

    start: float = 0.0
    """Lower edge of the first bin; ``auto``: derived from the data's targets."""
    width: float = 1.0
    """Bin width in target units; ``auto``: a readable width giving at most about 100 bins."""
    count: int = 102
    """Number of bins; a target outside them counts in the first or last bin (a warning says
    how many)."""

    def binning(self) -> Binning:
        return Binning(self.start, self.width, self.count)


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, where it lives, and how targets are binned."""

    name: str = field(default="synthetic", metadata=choices(*DATASETS))
    """synthetic (embedded, nothing downloaded), csv_images (a CSV of image paths) or tabular (a
    numeric CSV)."""
    kind: str = field(default="image", metadata=choices(*SYNTHETIC_KINDS))
    """synthetic only: images or feature vectors."""
    scale: float = 1.0
    """synthetic only: training set size relative to AgeDB-DIR's 12,208 samples."""
    seed: int = 0
    """synthetic only: the data's own seed, so trials with other training seeds share it."""
    csv: str | None = None
    """csv_images / tabular: the CSV (relative to the config file's folder)."""
    root: str | None = None
    """csv_images only: folder the CSV's ``path`` column is relative to (default: CSV folder)."""
    target: str = "age"
    """The target column of the CSV."""
    features: tuple[str, ...] | None = None
    """tabular only: feature columns (default: every column but the target and split)."""
    image_size: int = 32
    """Images are resized to this square size in pixels."""
    cache_dir: str | None = None
    """csv_images only: where to keep decoded, resized images (decode once, train many)."""
    num_workers: int = 0
    """DataLoader worker processes (0: batches are read in the training process)."""
    bins: BinsConfig = field(default_factory=BinsConfig)
    """Target bins for LDS, FDS and the shot regions: {start, width, count}, or auto (derived
    from the data's targets when the file is read)."""


@dataclass(frozen=True)
class ModelConfig:
    """Backbone by name; FDS and the linear regressor are added by the trainer."""

    arch: str = field(default="small_cnn", metadata=choices(*ARCHITECTURES))
    """The backbone: a ResNet or small_cnn for images, mlp for feature vectors."""
    pretrained: str | None = None
    """A local backbone state dict (loaded with weights_only=True; nothing is downloaded)."""
    mlp_hidden: tuple[int, ...] = (128, 128)
    """mlp only: the width of each hidden layer."""
    dropout: float = 0.0
    """Dropout on the regressor's input."""


@dataclass(frozen=True)
class LossConfig:
    """The regression loss and its parameters (``beta``, ``gamma``, ``activation``)."""

    name: str = field(default="l1", metadata=choices(*LOSSES))
    """The loss; bmc is Balanced MSE (it balances by itself: reweight none)."""
    beta: float | None = None
    """focal losses and huber: the loss's beta parameter."""
    gamma: float | None = None
    """focal losses: the exponent of the focal factor."""
    activation: str | None = None
    """focal losses: sigmoid or tanh."""
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
    """none, step (lr x gamma at each milestone) or cosine (to 0 over the epochs)."""
    milestones: tuple[int, ...] = ()
    """step only: the epochs at which the learning rate is multiplied by gamma."""
    gamma: float = 0.1
    """step only: the learning-rate factor at each milestone."""


@dataclass(frozen=True)
class RRTConfig:
    """Regressor re-training: start from a checkpoint, train only the final linear layer."""

    checkpoint: str | None = None
    """The stage-1 checkpoint folder to start from; null: no re-training."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, device and model-selection settings."""

    epochs: int = 10
    """Training epochs (in a sweep: the most a trial runs)."""
    batch_size: int = 256
    """Training batch size."""
    optimizer: str = field(default="adam", metadata=choices(*OPTIMIZERS))
    """adam, adamw or sgd."""
    lr: float = 1e-3
    """The (initial) learning rate."""
    weight_decay: float = 0.0
    """L2 penalty (decoupled for adamw)."""
    momentum: float = 0.9
    """sgd only."""
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    device: str = field(default="auto", metadata=choices(*DEVICES))
    """auto: CUDA when there is a GPU; cpu; cuda."""
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
    """Label distribution smoothing: loss weights from the kernel-smoothed label density (needs
    reweight inverse or sqrt_inv)."""
    kernel: str = field(default="gaussian", metadata=choices(*KERNELS))
    """The smoothing kernel: gaussian, triang or laplace."""
    ks: int = 5
    """Kernel size in bins (odd)."""
    sigma: float = 2.0
    """Kernel width in bins (gaussian, laplace)."""


@dataclass(frozen=True)
class FDSConfig:
    enabled: bool = False
    """Feature distribution smoothing: a layer re-calibrating per-bin feature statistics towards
    kernel-smoothed ones."""
    kernel: str = field(default="gaussian", metadata=choices(*KERNELS))
    """The smoothing kernel: gaussian, triang or laplace."""
    ks: int = 5
    """Kernel size in bins (odd)."""
    sigma: float = 2.0
    """Kernel width in bins (gaussian, laplace)."""
    momentum: float | None = 0.9
    """Weight of the previous statistics in each epoch's update; null: cumulative average."""
    start_update: int = 0
    """First epoch (from 0) whose features update the statistics."""
    start_smooth: int = 1
    """First epoch (from 0) whose features are smoothed."""
    bucket_start: float | None = None
    """Targets below this pool into FDS's first bin (AgeDB-DIR uses 3); default: bins.start."""
    statistics: str = field(default="extra_pass", metadata=choices(*FDS_STATISTICS))
    """extra_pass: a no-grad pass after each epoch (the paper); in_pass: collected in training."""


@dataclass(frozen=True)
class RankSimConfig:
    enabled: bool = False
    """RankSim: a loss term that aligns feature similarities with label similarities."""
    gamma: float = 100.0
    """Weight of the RankSim term."""
    interpolation_lambda: float = 2.0
    """The interpolation strength (lambda) of RankSim's blackbox ranking gradient."""


@dataclass(frozen=True)
class ConRConfig:
    enabled: bool = False
    """ConR: a contrastive loss term on two extra augmented views of every training sample:
    features of samples with labels within w of each other are pulled together, those with
    labels farther apart but predictions within w are pushed apart (Keramati et al., ICLR 2024).
    Costs one extra forward and backward pass of a batch twice the size."""
    beta: float = 4.0
    """Weight of the ConR term (the loss is the fit term + beta x ConR)."""
    w: float = 1.0
    """Window in target units: labels within w are positives; labels farther apart whose
    predictions are within w are negatives."""
    t: float = 0.2
    """Temperature of the feature similarities."""
    e: float = 0.01
    """Pushing strength: a negative pair weighs the anchor's sample weight x exp(e x label
    distance)."""
    noise_std: float = 0.1
    """Feature vectors only (they have no augmentation): each view adds Gaussian noise of this
    std to the standardised features (our extension of ConR; images use the training
    augmentation)."""


@dataclass(frozen=True)
class ShotsConfig:
    """Shot regions by training samples per bin: many > many, few < few."""

    many: int = 100
    """Bins with more training samples than this are many-shot (AgeDB-DIR: 100)."""
    few: int = 20
    """Bins with fewer training samples than this are few-shot (AgeDB-DIR: 20)."""


@dataclass(frozen=True)
class ImbalanceConfig:
    reweight: str = field(default="none", metadata=choices(*REWEIGHTS))
    """Loss weights from the label density: none, inverse or sqrt_inv (inverse square root)."""
    lds: LDSConfig = field(default_factory=LDSConfig)
    fds: FDSConfig = field(default_factory=FDSConfig)
    ranksim: RankSimConfig = field(default_factory=RankSimConfig)
    conr: ConRConfig = field(default_factory=ConRConfig)
    shots: ShotsConfig = field(default_factory=ShotsConfig)


@dataclass(frozen=True)
class TrialConfig:
    """Everything one training run depends on: it is a function of this and nothing else."""

    seed: int = 0
    """Seeds weight initialisation, batch order, augmentation and dropout."""
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
