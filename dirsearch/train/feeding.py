"""How batches reach the model: DataLoaders over a split, the copy to the device, and the memory
layout and precision the model runs in. Training, the FDS pass and evaluation all feed the model
through one ``Feeder`` so they see the same batches in the same form."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from dirsearch.config.trial import TrialConfig
from dirsearch.data.base import Split, keep_batch
from dirsearch.train.devices import autocast, uses_channels_last


@dataclass(frozen=True)
class Feeder:
    """The device settings of a trial and the batches they imply."""

    device: torch.device
    amp: str
    channels_last: bool
    batch_size: int
    num_workers: int

    @classmethod
    def for_trial(
        cls, config: TrialConfig, device: torch.device, input_shape: tuple[int, ...]
    ) -> Feeder:
        """The feeder of ``config`` on ``device`` (``train.memory_format`` resolved for inputs
        of ``input_shape``)."""
        train = config.train
        return cls(
            device,
            train.amp,
            uses_channels_last(device, input_shape, train.memory_format),
            train.batch_size,
            config.data.num_workers,
        )

    def batches(self, split: Split, *, shuffle_with: torch.Generator | None = None) -> Batches:
        """``split`` in batches of ``batch_size``: shuffled by ``shuffle_with`` when given (then
        a partial last batch is dropped), else every sample in dataset order."""
        shuffle = shuffle_with is not None
        loader = DataLoader(
            split.dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(split.dataset) > self.batch_size,
            generator=shuffle_with,
            num_workers=self.num_workers,
            collate_fn=keep_batch,
            pin_memory=self.device.type == "cuda",
        )
        return Batches(loader, self.device)

    def model_input(self, prepared: torch.Tensor) -> torch.Tensor:
        """A transformed batch in the memory layout the model's weights use."""
        if self.channels_last:
            return prepared.contiguous(memory_format=torch.channels_last)
        return prepared

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """The precision forward passes (and the loss) run in."""
        return autocast(self.device, self.amp)


@dataclass(frozen=True)
class Batches:
    """A DataLoader whose ``(inputs, targets)`` arrive on the device, the targets as float32."""

    loader: DataLoader
    device: torch.device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for inputs, targets in self.loader:
            yield (
                inputs.to(self.device, non_blocking=True),
                targets.to(self.device, non_blocking=True).to(torch.float32),
            )
