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


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast on CUDA when enabled (no loss scaling needed for bf16); nothing on CPU."""
    if device.type == "cuda" and enabled:
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def uses_channels_last(device: torch.device, input_shape: tuple[int, ...]) -> bool:
    """channels_last speeds up convolutions on CUDA tensor cores; only images have channels."""
    return device.type == "cuda" and len(input_shape) == 3
