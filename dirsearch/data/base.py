"""What every dataset kind hands to the trainer: three splits plus a batch transform.

Datasets yield whole batches (``__getitems__``) of raw inputs, uint8 images at training resolution
or float feature vectors, and float32 targets. Augmentation and normalisation run afterwards on
the batch, on the training device, so a decoded-image cache or an in-memory tensor never pays a
per-sample Python transform and a GPU does the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

Batch = tuple[torch.Tensor, torch.Tensor]
"""(inputs, targets): inputs uint8 (N, C, H, W) or float (N, F); targets float32 (N,)."""


class BatchTransform(Protocol):
    """Turns a raw batch (already on the training device) into model input."""

    def train(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment and normalise a training batch; randomness comes only from ``generator``."""
        ...

    def eval(self, inputs: torch.Tensor) -> torch.Tensor:
        """Normalise an evaluation batch (deterministic)."""
        ...

    def serving(self) -> nn.Module:
        """``eval`` as a module whose constants are buffers, for raw inputs of its
        ``input_dtype``: a served model applies it before the network, so it takes what a user
        has (a table's raw feature rows, images at the training resolution) and
        ``torch.export`` saves the preprocessing with the weights."""
        ...


class BatchDataset(Dataset[Batch]):
    """A dataset that fetches a whole batch at once; subclasses implement ``__getitems__``."""

    def __getitem__(self, index: int) -> Batch:
        inputs, targets = self.__getitems__([index])
        return inputs[0], targets[0]

    def __getitems__(self, indices: list[int]) -> Batch:
        raise NotImplementedError


def keep_batch(batch: Batch) -> Batch:
    """DataLoader ``collate_fn`` for BatchDatasets: the batch is already collated."""
    return batch


@dataclass(frozen=True)
class Split:
    """One split: its batch dataset and its targets (float64, in dataset order)."""

    dataset: BatchDataset
    targets: np.ndarray


@dataclass(frozen=True)
class DataBundle:
    """The three DIR splits of one dataset and how to turn their batches into model input."""

    train: Split
    val: Split
    test: Split
    input_shape: tuple[int, ...]
    """(C, H, W) for images, (F,) for feature vectors."""
    transform: BatchTransform
