"""Image augmentation and normalisation applied to whole uint8 batches on the training device.

The paper's 224 px recipe is Resize(224), RandomCrop(224, padding=16), RandomHorizontalFlip,
Normalize(0.5, 0.5). Datasets already deliver images at training resolution, so what is left runs
here, vectorised over the batch: one gather replaces a per-sample Python loop, and the random
numbers come from a CPU generator so a given generator state gives the same batch on CPU and GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

PAPER_IMAGE_SIZE = 224
PAPER_CROP_PADDING = 16


def default_crop_padding(image_size: int) -> int:
    """The paper's 16 px crop padding at 224 px, scaled to ``image_size`` (2 px at 32 px)."""
    return round(PAPER_CROP_PADDING * image_size / PAPER_IMAGE_SIZE)


def normalised(inputs: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 pixels scaled to [0, 1] and normalised per channel (``mean``/``std``: (1, C, 1, 1)).

    Always a contiguous (N, C, H, W) result: datasets may hand over channels-last views, and
    convolutions on channels-last tensors round differently, which would make the same pixels
    train differently depending on where they were loaded from."""
    scaled = inputs.to(torch.float32, memory_format=torch.contiguous_format) / 255.0
    return (scaled - mean.to(inputs.device)) / std.to(inputs.device)


class ImageInput(nn.Module):
    """uint8 images ``(N, C, S, S)`` at the training resolution -> normalised float32 model
    input, the evaluation transform as a module (mean and std as buffers) that an exported
    model carries with its weights."""

    input_dtype = torch.uint8
    """What a served model takes: RGB pixels as a dataset yields them (resized to S already)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return normalised(inputs, self.mean, self.std)


class ImageBatchTransform:
    """Random padded crop + horizontal flip for training, then scale to [0, 1] and normalise.

    Inputs are uint8 (N, C, H, W) on any device; outputs are float32 of the same shape.
    """

    def __init__(
        self,
        crop_padding: int,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        flip: bool = True,
    ) -> None:
        if crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
        if len(mean) != len(std):
            raise ValueError(f"mean and std need one value per channel, got {mean} and {std}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std values must be > 0, got {std}")
        self.crop_padding = crop_padding
        self.flip = flip
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def train(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Per-sample random crop (zero padding) and flip, drawn from ``generator``."""
        self._check(inputs)
        n, _, height, width = inputs.shape
        pad = self.crop_padding
        # Offsets of the crop window inside the padded image, one pair per sample.
        shift_y = torch.randint(0, 2 * pad + 1, (n,), generator=generator) - pad
        shift_x = torch.randint(0, 2 * pad + 1, (n,), generator=generator) - pad
        flipped = (
            torch.randint(0, 2, (n,), generator=generator).bool()
            if self.flip
            else torch.zeros(n, dtype=torch.bool)
        )
        rows = torch.arange(height).unsqueeze(0) + shift_y.unsqueeze(1)  # (N, H)
        out_cols = torch.arange(width).unsqueeze(0).expand(n, width)
        # The flip acts on the crop, so output column x reads crop column W-1-x when flipped.
        crop_cols = torch.where(flipped.unsqueeze(1), width - 1 - out_cols, out_cols)
        cols = crop_cols + shift_x.unsqueeze(1)  # (N, W)
        inside = ((rows >= 0) & (rows < height)).unsqueeze(2) & (
            (cols >= 0) & (cols < width)
        ).unsqueeze(1)  # (N, H, W): False where the crop reads the zero padding

        device = inputs.device
        rows = rows.clamp(0, height - 1).to(device)
        cols = cols.clamp(0, width - 1).to(device)
        batch_index = torch.arange(n, device=device).view(n, 1, 1, 1)
        channel_index = torch.arange(inputs.shape[1], device=device).view(1, -1, 1, 1)
        cropped = inputs[
            batch_index, channel_index, rows.view(n, 1, height, 1), cols.view(n, 1, 1, width)
        ]
        cropped = cropped * inside.to(device).unsqueeze(1)
        return self._normalise(cropped)

    def eval(self, inputs: torch.Tensor) -> torch.Tensor:
        """Scale to [0, 1] and normalise; no randomness."""
        self._check(inputs)
        return self._normalise(inputs)

    def serving(self) -> ImageInput:
        """The module a served model applies to uint8 images before the network (``eval``)."""
        return ImageInput(self._mean, self._std)

    def _normalise(self, inputs: torch.Tensor) -> torch.Tensor:
        return normalised(inputs, self._mean, self._std)

    def _check(self, inputs: torch.Tensor) -> None:
        if inputs.dtype != torch.uint8 or inputs.dim() != 4:
            raise ValueError(
                "image batches must be uint8 (N, C, H, W), "
                f"got {inputs.dtype} {tuple(inputs.shape)}"
            )
        if inputs.shape[1] != self._mean.shape[1]:
            raise ValueError(
                f"batch has {inputs.shape[1]} channels but mean/std have {self._mean.shape[1]}"
            )
