"""When and from which features FDS's per-bin statistics are updated (``imbalance.fds.statistics``).

``extra_pass`` (the paper): after each training epoch, a no-grad pass over the whole training
split in train mode. ``in_pass``: the features the training batches produced anyway, collected
as they go (no extra pass; statistics of weights that moved during the epoch). The training pass
calls ``begin_epoch`` and ``observe``; the epoch calls ``end_epoch`` after it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch
from torch import nn

from dirsearch.imbalance import FDS, FeatureMoments
from dirsearch.train.model_setup import ModelSetup
from dirsearch.train.rng_streams import global_rng_from


class FdsStatistics:
    """The collector of a trial without FDS: nothing to collect. The collectors below override
    what their mode needs."""

    def begin_epoch(self) -> None:
        """A training pass starts."""

    def observe(self, features: torch.Tensor, targets: torch.Tensor) -> None:
        """A training batch's encoder features (before FDS) and targets."""

    def end_epoch(self, epoch: int) -> float:
        """Update the FDS statistics after the 0-based ``epoch``'s training pass; returns the
        seconds spent in a pass of its own (the metric ``time/fds_pass_s``)."""
        return 0.0


class InPassStatistics(FdsStatistics):
    """Moments of the training batches' features, merged batch by batch during the pass."""

    def __init__(self, fds: FDS) -> None:
        self.fds = fds
        self.moments: FeatureMoments = fds.new_moments()

    def begin_epoch(self) -> None:
        self.moments = self.fds.new_moments()

    def observe(self, features: torch.Tensor, targets: torch.Tensor) -> None:
        self.moments.add(features, self.fds.bins_of(targets))

    def end_epoch(self, epoch: int) -> float:
        self.fds.update_from(self.moments, epoch)
        return 0.0


class ExtraPassStatistics(FdsStatistics):
    """The paper's statistics pass: train-mode features of the whole training split, from
    ``fds.start_update`` on. It only observes: BatchNorm statistics stay as they are, and its
    augmentation and dropout draw from ``generator``, not from the training streams."""

    def __init__(self, setup: ModelSetup, fds: FDS, generator: torch.Generator) -> None:
        self.setup = setup
        self.fds = fds
        self.generator = generator

    @torch.no_grad()
    def end_epoch(self, epoch: int) -> float:
        if epoch < self.fds.start_update:
            return 0.0
        started = time.perf_counter()
        model, feeder, transform = self.setup.model, self.setup.feeder, self.setup.data.transform
        moments = self.fds.new_moments()
        model.train()
        with frozen_batchnorm_statistics(model), global_rng_from(self.generator, feeder.device):
            for inputs, targets in feeder.batches(self.setup.data.train):
                prepared = transform.train(inputs, self.generator)
                with feeder.autocast():
                    features = model(feeder.model_input(prepared)).features
                moments.add(features, self.fds.bins_of(targets))
        self.fds.update_from(moments, epoch)
        return time.perf_counter() - started


def fds_statistics(setup: ModelSetup, mode: str, generator: torch.Generator) -> FdsStatistics:
    """The collector for ``setup.model`` and ``imbalance.fds.statistics`` = ``mode``."""
    fds = setup.model.fds
    if fds is None:
        return FdsStatistics()
    if mode == "in_pass":
        return InPassStatistics(fds)
    return ExtraPassStatistics(setup, fds, generator)


@contextlib.contextmanager
def frozen_batchnorm_statistics(model: nn.Module) -> Iterator[None]:
    """Train-mode forward passes that leave BatchNorm running statistics untouched.

    The extra FDS pass must see train-mode features (what ``smooth`` calibrates) but should only
    observe: the reference code's pass also moved the BatchNorm statistics (we do not). ConR's
    pass on its views trains through BatchNorm but leaves the running statistics to the batch.
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
