"""One training epoch: every shuffled batch through the model, the objective and an optimiser
step, then the schedule's step; the loss is checked for divergence as it goes."""

from __future__ import annotations

import math
import time

import torch

from dirsearch.config.trial import TrainConfig
from dirsearch.train.fds_statistics import FdsStatistics
from dirsearch.train.model_setup import ModelSetup
from dirsearch.train.objective import Objective, TrainingBatch
from dirsearch.train.optimisation import Optimisation
from dirsearch.train.progress import EpochProgress
from dirsearch.train.rng_streams import RngStreams

SYNC_EVERY_CUDA = 25
"""Batches between host reads of the loss on CUDA (each read waits for the GPU)."""


class TrainingDiverged(Exception):
    """The loss became NaN/inf or exceeded ``train.divergence_limit``."""


class TrainingPass:
    """Trains ``setup.model`` for one epoch at a time; FDS statistics ``observe`` its batches."""

    def __init__(
        self,
        setup: ModelSetup,
        objective: Objective,
        optimisation: Optimisation,
        statistics: FdsStatistics,
        streams: RngStreams,
        train: TrainConfig,
        *,
        progress: bool = False,
    ) -> None:
        self.setup = setup
        self.objective = objective
        self.optimisation = optimisation
        self.statistics = statistics
        self.streams = streams
        self.epochs = train.epochs
        self.divergence_limit = train.divergence_limit
        self.progress = progress

    def run(self, epoch: int) -> dict[str, float]:
        """Train the 0-based ``epoch``; returns train/loss (and train/<term> for each term the
        objective reports on its own, ConR's), throughput and timing. Raises TrainingDiverged at
        the first loss read that is not finite or above the limit."""
        model, feeder, transform = self.setup.model, self.setup.feeder, self.setup.data.transform
        model.train()
        self.statistics.begin_epoch()
        batches = feeder.batches(self.setup.data.train, shuffle_with=self.streams.loader)
        bar = EpochProgress(f"epoch {epoch + 1}/{self.epochs}", len(batches), enabled=self.progress)
        loss_sum = torch.zeros((), dtype=torch.float64, device=feeder.device)
        term_sums = {name: torch.zeros_like(loss_sum) for name in self.objective.metrics}
        samples, started = 0, time.perf_counter()
        sync_every = SYNC_EVERY_CUDA if feeder.device.type == "cuda" else 1
        for step, (inputs, targets) in enumerate(batches, start=1):
            prepared = feeder.model_input(transform.train(inputs, self.streams.augment))
            with feeder.autocast():
                output = model(prepared, targets, epoch)
                loss, terms = self.objective(TrainingBatch(inputs, targets, epoch, output))
            self.optimisation.step(loss)
            self.statistics.observe(output.features, targets)
            loss_sum += loss.detach() * targets.shape[0]
            for name, value in terms.items():
                term_sums[name] += value * targets.shape[0]
            samples += targets.shape[0]
            if step % sync_every == 0 or step == len(batches):
                self._check_divergence(loss.detach(), epoch, step)
                shown = {name: float(total) / samples for name, total in term_sums.items()}
                bar.update(step, samples, float(loss_sum) / samples, shown)
        bar.close()
        self.optimisation.end_epoch()
        seconds = time.perf_counter() - started
        count = max(samples, 1)
        return {
            "train/loss": float(loss_sum) / count,
            **{f"train/{name}": float(total) / count for name, total in term_sums.items()},
            "train/samples_per_s": samples / max(seconds, 1e-9),
            "time/train_s": seconds,
        }

    def _check_divergence(self, loss: torch.Tensor, epoch: int, step: int) -> None:
        value = float(loss)
        if not math.isfinite(value) or value > self.divergence_limit:
            raise TrainingDiverged(
                f"training diverged at epoch {epoch + 1}, batch {step}: loss {value:.4g} "
                f"(limit train.divergence_limit={self.divergence_limit:g}); try a lower train.lr"
            )
