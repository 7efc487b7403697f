"""Where a trial runs: the configured device, and the GPU-only speed-ups that go with it."""

from __future__ import annotations

import contextlib

import torch

from dirsearch.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when there is a GPU, else the CPU; ``cuda`` without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: cuda was asked for but no CUDA GPU is visible; use auto")
    return torch.device(name)


def autocast(device: torch.device, mode: str) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast (no loss scaling needed for bf16): ``auto`` on CUDA only, ``bf16`` on any
    device (so the mixed-precision path also runs, and is tested, on CPU), ``off`` never."""
    if mode == "bf16" or (mode == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def uses_channels_last(device: torch.device, input_shape: tuple[int, ...], mode: str) -> bool:
    """channels_last speeds up convolutions on CUDA tensor cores: ``auto`` uses it there for
    images; ``channels_last`` forces it for images on any device; ``contiguous`` never."""
    is_image = len(input_shape) == 3
    if mode == "auto":
        return is_image and device.type == "cuda"
    return is_image and mode == "channels_last"
