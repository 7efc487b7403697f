"""One trial: LDS-weighted, FDS-equipped training of one TrialConfig, in plain PyTorch.

A trial is a function of its config: ``run_trial(config, workdir, report)`` trains, evaluates the
balanced validation split every epoch, writes a checkpoint folder and hands both to ``report``
(the sweep's Ray adapter forwards them to ``tune.report``; the CLI prints them). Giving it the
folder of an earlier report resumes exactly where that epoch ended. Nothing here imports Ray or
MLflow.

Epochs count from 0 inside (FDS's ``start_update`` / ``start_smooth`` are 0-based, as in the
paper's code); reported metrics carry ``epoch`` = epochs completed.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from dirsearch.config.trial import TrialConfig
from dirsearch.data.base import DataBundle, Split, keep_batch
from dirsearch.errors import ConfigError
from dirsearch.imbalance import (
    FDS,
    REGIONS,
    BalancedMSE,
    Binning,
    bin_weights,
    flatten_metrics,
    ranksim_loss,
    shot_metrics,
    weighted_loss,
)
from dirsearch.models import DIRRegressor, build_model, feature_dim
from dirsearch.sweep.tables import format_value
from dirsearch.train import checkpoint
from dirsearch.train.datasets import load_data
from dirsearch.train.devices import autocast, resolve_device, uses_channels_last
from dirsearch.train.progress import EpochProgress

ReportFn = Callable[[dict[str, float], Path], None]
SYNC_EVERY_CUDA = 25
"""Batches between host reads of the loss on CUDA (each read waits for the GPU)."""


class TrainingDiverged(Exception):
    """The loss became NaN/inf or exceeded ``train.divergence_limit``."""


@dataclass
class TrialResult:
    """How a trial ended and where its best weights are."""

    status: str
    """"completed" or "diverged"."""
    epochs_done: int
    best_epoch: int | None
    best_metrics: dict[str, float]
    checkpoint_dir: Path | None
    message: str = ""
    history: list[dict[str, float]] = field(default_factory=list)
    test_metrics: dict[str, dict[str, float]] | None = None
    """Shot metrics of the best epoch's weights on the test split, when asked for."""


@dataclass
class _Best:
    epoch: int | None = None
    value: float = math.inf
    metrics: dict[str, float] = field(default_factory=dict)

    def improves(self, value: float) -> bool:
        """Lower is better; NaN never improves, but the first epoch always counts."""
        return self.epoch is None or (not math.isnan(value) and value < self.value)


def warn_outside_bins(data: DataBundle, binning: Binning) -> None:
    """Targets outside ``data.bins`` are counted in the edge bins: say so, once per split."""
    low, high = binning.edges[0], binning.edges[-1]
    for name in ("train", "val", "test"):
        targets = getattr(data, name).targets
        outside = int(np.count_nonzero((targets < low) | (targets >= high)))
        if outside:
            print(
                f"dirsearch: warning: {outside} {name} targets lie outside data.bins "
                f"[{low:g}, {high:g}) and count in the first or last bin",
                file=sys.stderr,
            )


@contextlib.contextmanager
def frozen_batchnorm_statistics(model: nn.Module) -> Iterator[None]:
    """Train-mode forward passes that leave BatchNorm running statistics untouched.

    The extra FDS pass must see train-mode features (what ``smooth`` calibrates) but should only
    observe: the reference code's pass also moved the BatchNorm statistics (we do not).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    # The batch counter is a statistic too: a BatchNorm with momentum None averages by it.
    counters = [
        None if n.num_batches_tracked is None else n.num_batches_tracked.clone() for n in norms
    ]
    for norm in norms:
        norm.momentum = 0.0
    try:
        yield
    finally:
        for norm, momentum, counter in zip(norms, momenta, counters, strict=True):
            norm.momentum = momentum
            if counter is not None:
                norm.num_batches_tracked.copy_(counter)


@contextlib.contextmanager
def global_rng_from(generator: torch.Generator, device: torch.device) -> Iterator[None]:
    """Run a block on the global CPU (and ``device``'s CUDA) RNG freshly seeded from
    ``generator``, and put the global streams back afterwards.

    Dropout and each DataLoader iterator's base seed draw from the global RNG, which is also the
    training stream: a side pass that drew from it would change every later epoch. Restoring alone
    is not enough either, since the pass would then replay the next epoch's dropout masks.
    """
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


class Trainer:
    """Holds one trial's data, model, optimiser and RNG streams; trains and evaluates epochs."""

    def __init__(self, config: TrialConfig, *, progress: bool = False) -> None:
        self.config = config
        self.progress = progress
        self.device = resolve_device(config.train.device)
        torch.manual_seed(config.seed)
        self.data: DataBundle = load_data(config.data)
        self.binning = config.data.bins.binning()
        self.train_targets = self.data.train.targets
        warn_outside_bins(self.data, self.binning)
        self.model = self._build_model()
        self.channels_last = uses_channels_last(
            self.device, self.data.input_shape, config.train.memory_format
        )
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.balanced_mse = self._build_balanced_mse()
        self.optimizer = self._build_optimizer()
        self.scheduler = self._build_scheduler()
        self.weight_table = self._build_weight_table()
        self.loss_params = config.train.loss.params()  # fixed for the trial: not rebuilt per batch
        self.loader_generator = torch.Generator().manual_seed(config.seed)
        self.augment_generator = torch.Generator().manual_seed(config.seed + 1)
        self.ranksim_generator = torch.Generator().manual_seed(config.seed + 2)
        # The FDS extra pass's own stream (augmentation, and seeds for its dropout): enabling
        # FDS must not shift the training streams before smoothing starts.
        self.fds_generator = torch.Generator().manual_seed(config.seed + 3)

    # ----- construction -------------------------------------------------------------------
    def _build_model(self) -> DIRRegressor:
        model_config, fds_config = self.config.model, self.config.imbalance.fds
        fds = None
        if fds_config.enabled:
            dim = feature_dim(
                model_config.arch, self.data.input_shape, mlp_hidden=model_config.mlp_hidden
            )
            fds = FDS(
                dim,
                self.config.fds_binning(),
                kernel=fds_config.kernel,
                ks=fds_config.ks,
                sigma=fds_config.sigma,
                momentum=fds_config.momentum,
                start_update=fds_config.start_update,
                start_smooth=fds_config.start_smooth,
            )
        model = build_model(
            model_config.arch,
            self.data.input_shape,
            fds=fds,
            pretrained=Path(model_config.pretrained) if model_config.pretrained else None,
            mlp_hidden=model_config.mlp_hidden,
            dropout=model_config.dropout,
        ).to(self.device)
        rrt = self.config.train.rrt.checkpoint
        if rrt is not None:
            self._load_stage_one(model, Path(rrt))
        return model

    def _load_stage_one(self, model: DIRRegressor, path: Path) -> None:
        """RRT stage 2: weights from a stage-1 checkpoint, then only the regressor trains."""
        if not path.exists():
            raise ConfigError(
                f"train.rrt.checkpoint: {path} not found; give a stage-1 checkpoint folder "
                f"or its {checkpoint.BEST_MODEL_FILE}"
            )
        if path.is_dir():
            path = path / checkpoint.BEST_MODEL_FILE
        weights = checkpoint.load(path)
        if isinstance(weights, dict) and "model" in weights:
            weights = weights["model"]
        try:
            model.load_state_dict(weights)
        except (RuntimeError, TypeError, AttributeError) as error:
            first_line = str(error).strip().splitlines()[0]
            raise ConfigError(
                f"train.rrt.checkpoint: {path} does not fit this model "
                f"(same model.arch and imbalance.fds needed): {first_line}"
            ) from None
        model.freeze_all_but_regressor()

    def _build_balanced_mse(self) -> BalancedMSE | None:
        loss = self.config.train.loss
        if loss.name != "bmc":
            return None
        return BalancedMSE(init_noise_sigma=loss.init_noise_sigma).to(self.device)

    def _build_optimizer(self) -> torch.optim.Optimizer:
        train = self.config.train
        groups: list[dict[str, Any]] = [
            {"params": [p for p in self.model.parameters() if p.requires_grad]}
        ]
        if self.balanced_mse is not None:
            groups.append(
                {
                    "params": list(self.balanced_mse.parameters()),
                    "lr": train.loss.noise_lr,
                    "weight_decay": 0.0,
                }
            )
        if train.optimizer == "sgd":
            return torch.optim.SGD(
                groups, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay
            )
        optimizer_class = torch.optim.AdamW if train.optimizer == "adamw" else torch.optim.Adam
        return optimizer_class(groups, lr=train.lr, weight_decay=train.weight_decay)

    def _build_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler | None:
        schedule = self.config.train.schedule
        if schedule.name == "step":
            return torch.optim.lr_scheduler.MultiStepLR(
                self.optimizer, milestones=list(schedule.milestones), gamma=schedule.gamma
            )
        if schedule.name == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=self.config.train.epochs
            )
        return None

    def _build_weight_table(self) -> torch.Tensor:
        """Per-bin LDS / re-weighting loss weights, looked up on the device by batch bins."""
        imbalance = self.config.imbalance
        table = bin_weights(
            self.train_targets,
            self.binning,
            reweight=imbalance.reweight,
            lds=imbalance.lds.enabled,
            kernel=imbalance.lds.kernel,
            ks=imbalance.lds.ks,
            sigma=imbalance.lds.sigma,
        )
        return torch.tensor(table, dtype=torch.float32, device=self.device)

    # ----- data -------------------------------------------------------------------------------
    def _loader(self, split: Split, *, shuffle: bool) -> DataLoader:
        size = self.config.train.batch_size
        return DataLoader(
            split.dataset,
            batch_size=size,
            shuffle=shuffle,
            drop_last=shuffle and len(split.dataset) > size,
            generator=self.loader_generator if shuffle else None,
            num_workers=self.config.data.num_workers,
            collate_fn=keep_batch,
            pin_memory=self.device.type == "cuda",
        )

    def _to_device(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs = inputs.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True).to(torch.float32)
        return inputs, targets

    def _model_input(self, prepared: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return prepared.contiguous(memory_format=torch.channels_last)
        return prepared

    # ----- one epoch --------------------------------------------------------------------------
    def _loss(self, output: Any, targets: torch.Tensor) -> torch.Tensor:
        preds = output.preds.float()
        if self.balanced_mse is not None:
            loss = self.balanced_mse(preds, targets)
        else:
            weights = self.weight_table.index_select(0, self.binning.index(targets))
            loss = weighted_loss(
                self.config.train.loss.name, preds, targets, weights, **self.loss_params
            )
        ranksim = self.config.imbalance.ranksim
        if ranksim.enabled:
            loss = loss + ranksim.gamma * ranksim_loss(
                output.features.float(),
                targets,
                interpolation_lambda=ranksim.interpolation_lambda,
                generator=self.ranksim_generator,
            )
        return loss

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training split; returns train/loss, throughput and timing."""
        self.model.train()
        fds_in_pass = (
            self.model.fds is not None and self.config.imbalance.fds.statistics == "in_pass"
        )
        moments = self.model.fds.new_moments() if fds_in_pass else None
        loader = self._loader(self.data.train, shuffle=True)
        label = f"epoch {epoch + 1}/{self.config.train.epochs}"
        bar = EpochProgress(label, len(loader), enabled=self.progress)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        samples, started = 0, time.perf_counter()
        sync_every = SYNC_EVERY_CUDA if self.device.type == "cuda" else 1
        for step, (raw_inputs, raw_targets) in enumerate(loader, start=1):
            inputs, targets = self._to_device(raw_inputs, raw_targets)
            prepared = self._model_input(self.data.transform.train(inputs, self.augment_generator))
            with autocast(self.device, self.config.train.amp):
                output = self.model(prepared, targets, epoch)
                loss = self._loss(output, targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if moments is not None:
                moments.add(output.features, self.model.fds.bins_of(targets))
            loss_sum += loss.detach() * targets.shape[0]
            samples += targets.shape[0]
            if step % sync_every == 0 or step == len(loader):
                self._check_divergence(loss.detach(), epoch, step)
                bar.update(step, samples, float(loss_sum) / samples)
        bar.close()
        if moments is not None:
            self.model.fds.update_from(moments, epoch)
        seconds = time.perf_counter() - started
        return {
            "train/loss": float(loss_sum) / max(samples, 1),
            "train/samples_per_s": samples / max(seconds, 1e-9),
            "time/train_s": seconds,
        }

    def _check_divergence(self, loss: torch.Tensor, epoch: int, step: int) -> None:
        value = float(loss)
        if not math.isfinite(value) or value > self.config.train.divergence_limit:
            raise TrainingDiverged(
                f"training diverged at epoch {epoch + 1}, batch {step}: loss {value:.4g} "
                f"(limit train.divergence_limit={self.config.train.divergence_limit:g}); "
                f"try a lower train.lr"
            )

    @torch.no_grad()
    def update_fds_extra_pass(self, epoch: int) -> float:
        """The paper's FDS statistics pass: train-mode features of the whole training split."""
        fds = self.model.fds
        if (
            fds is None
            or self.config.imbalance.fds.statistics != "extra_pass"
            or epoch < fds.start_update
        ):
            return 0.0
        started = time.perf_counter()
        moments = fds.new_moments()
        self.model.train()
        with (
            frozen_batchnorm_statistics(self.model),
            global_rng_from(self.fds_generator, self.device),
        ):
            for raw_inputs, raw_targets in self._loader(self.data.train, shuffle=False):
                inputs, targets = self._to_device(raw_inputs, raw_targets)
                prepared = self.data.transform.train(inputs, self.fds_generator)
                with autocast(self.device, self.config.train.amp):
                    features = self.model(self._model_input(prepared)).features
                moments.add(features, fds.bins_of(targets))
        fds.update_from(moments, epoch)
        return time.perf_counter() - started

    @torch.no_grad()
    def predict(self, split: Split) -> np.ndarray:
        """Predictions for a whole split, in dataset order (eval mode: FDS is inactive)."""
        self.model.eval()
        chunks = []
        for raw_inputs, raw_targets in self._loader(split, shuffle=False):
            inputs, _ = self._to_device(raw_inputs, raw_targets)
            with autocast(self.device, self.config.train.amp):
                preds = self.model(self._model_input(self.data.transform.eval(inputs))).preds
            chunks.append(preds.float())
        # One copy to the host at the end: a per-batch .cpu() would wait on the GPU every batch.
        return torch.cat(chunks).cpu().numpy().astype(np.float64)

    def evaluate(self, split_name: str) -> dict[str, dict[str, float]]:
        """Shot metrics (all / many / medium / few x MAE, MSE, GM) of one split."""
        split = getattr(self.data, split_name)
        shots = self.config.imbalance.shots
        return shot_metrics(
            self.predict(split),
            split.targets,
            self.train_targets,
            self.binning,
            many=shots.many,
            few=shots.few,
        )

    # ----- state ------------------------------------------------------------------------------
    def state(self, epochs_done: int, best: _Best, history: list[dict[str, float]]) -> dict:
        return {
            "epochs_done": epochs_done,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "balanced_mse": self.balanced_mse.state_dict() if self.balanced_mse else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "loader": self.loader_generator.get_state(),
                "augment": self.augment_generator.get_state(),
                "ranksim": self.ranksim_generator.get_state(),
                "fds": self.fds_generator.get_state(),
            },
            "best": {"epoch": best.epoch, "value": best.value, "metrics": best.metrics},
            "history": history,
        }

    def restore(self, state: dict, source: Path) -> tuple[int, _Best, list[dict[str, float]]]:
        """Load a ``state`` saved by ``state``; the config must be the one it was saved with."""
        saved, current = state["config"], self.config.to_dict()
        if saved != current:
            key = _first_difference(saved, current)
            raise ConfigError(
                f"{source}: checkpoint was written with a different config (first difference: "
                f"{key}); resume with the same config"
            )
        self.model.load_state_dict(state["model"])
        if self.balanced_mse is not None:
            self.balanced_mse.load_state_dict(state["balanced_mse"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.loader_generator.set_state(rng["loader"])
        self.augment_generator.set_state(rng["augment"])
        self.ranksim_generator.set_state(rng["ranksim"])
        self.fds_generator.set_state(rng["fds"])
        best = _Best(**state["best"])
        return int(state["epochs_done"]), best, list(state["history"])


def _first_difference(saved: Any, current: Any, prefix: str = "") -> str:
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in sorted(set(saved) | set(current)):
            if saved.get(key) != current.get(key):
                return _first_difference(saved.get(key), current.get(key), f"{prefix}{key}.")
    return prefix.rstrip(".") or "(top level)"


@dataclass
class EpochReport:
    """What one finished epoch hands to its caller: metrics, the checkpoint folder, and whether
    it is the best epoch so far (by ``train.select_metric``)."""

    metrics: dict[str, float]
    checkpoint_dir: Path
    improved: bool


def trial_epochs(
    config: TrialConfig,
    workdir: Path,
    *,
    resume_from: Path | None = None,
    progress: bool = False,
    evaluate_test: bool = False,
) -> Generator[EpochReport, None, TrialResult]:
    """Train ``config`` one epoch per ``next()``: each yields the epoch's report after its
    checkpoint folder is complete; the generator returns the TrialResult.

    A generator rather than a callback so that a caller can advance several trials in lockstep
    (the sweep trains repeats of one configuration with several seeds and reports their mean each
    epoch). ``resume_from`` (a reported folder) continues from the end of that epoch;
    ``evaluate_test`` scores the best epoch's weights on the test split at the end."""
    trainer = Trainer(config, progress=progress)
    checkpoints = Path(workdir) / "checkpoints"
    epochs_done, best, history = 0, _Best(), []
    previous: Path | None = None
    if resume_from is not None:
        epochs_done, best, history = trainer.restore(
            checkpoint.load(Path(resume_from) / checkpoint.STATE_FILE), Path(resume_from)
        )
        previous = Path(resume_from)
    select = config.train.select_metric
    for epoch in range(epochs_done, config.train.epochs):
        started = time.perf_counter()
        try:
            metrics = trainer.train_epoch(epoch)
        except TrainingDiverged as diverged:
            return TrialResult(
                "diverged", epoch, best.epoch, best.metrics, previous, str(diverged), history
            )
        metrics["time/fds_pass_s"] = trainer.update_fds_extra_pass(epoch)
        metrics.update(flatten_metrics(trainer.evaluate("val"), "val"))
        if trainer.scheduler is not None:
            trainer.scheduler.step()
        metrics["lr"] = trainer.optimizer.param_groups[0]["lr"]
        metrics["epoch"] = epoch + 1
        metrics["time/epoch_s"] = time.perf_counter() - started
        improved = best.improves(metrics[select])
        if improved:
            best = _Best(epoch + 1, metrics[select], dict(metrics))
        history.append(metrics)
        previous = checkpoint.write_epoch(
            checkpoints,
            epoch + 1,
            trainer.state(epoch + 1, best, history),
            trainer.model.state_dict() if improved else None,
            previous,
        )
        yield EpochReport(metrics, previous, improved)
    result = TrialResult(
        "completed", config.train.epochs, best.epoch, best.metrics, previous, "", history
    )
    if evaluate_test and previous is not None:
        best_weights = checkpoint.load(previous / checkpoint.BEST_MODEL_FILE)
        trainer.model.load_state_dict(best_weights)
        result.test_metrics = trainer.evaluate("test")
    return result


def run_trial(
    config: TrialConfig,
    workdir: Path,
    report: ReportFn | None = None,
    *,
    resume_from: Path | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    evaluate_test: bool = False,
) -> TrialResult:
    """Train ``config`` for ``train.epochs`` epochs, calling ``report(metrics, folder)`` and
    ``log(summary line)`` after each (see ``trial_epochs`` for the other arguments)."""
    epochs = trial_epochs(
        config, workdir, resume_from=resume_from, progress=progress, evaluate_test=evaluate_test
    )
    while True:
        try:
            epoch = next(epochs)
        except StopIteration as finished:
            return finished.value
        if log is not None:
            log(epoch_summary(epoch.metrics, config.train.epochs, epoch.improved))
        if report is not None:
            report(epoch.metrics, epoch.checkpoint_dir)


def evaluate_checkpoint(
    config: TrialConfig, checkpoint_dir: Path, split: str = "test"
) -> dict[str, dict[str, float]]:
    """Shot metrics of the best weights in ``checkpoint_dir`` on ``split`` (default: test)."""
    trainer = Trainer(config)
    trainer.model.load_state_dict(
        checkpoint.load(Path(checkpoint_dir) / checkpoint.BEST_MODEL_FILE)
    )
    return trainer.evaluate(split)


def epoch_summary(metrics: dict[str, float], epochs: int, improved: bool) -> str:
    """One line per epoch: loss, validation MAE per region, time and throughput."""
    regions = " ".join(
        f"{region} {format_value(metrics[f'val/{region}/mae'])}" for region in REGIONS
    )
    return (
        f"epoch {int(metrics['epoch'])}/{epochs}  train/loss {metrics['train/loss']:.4f}  "
        f"val MAE {regions}  {metrics['time/epoch_s']:.1f}s "
        f"{metrics['train/samples_per_s']:,.0f} samples/s{'  *best' if improved else ''}"
    )
