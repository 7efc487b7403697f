"""Loading local pretrained weights into a backbone (nothing is ever downloaded).

Accepted files hold a plain state dict: either one saved from ``model.backbone.state_dict()`` or a
full torchvision ResNet state dict, whose classifier head (``fc.*``) is dropped because dirsearch
replaces it with its own regressor. Everything else must match exactly, so a checkpoint for the
wrong architecture or channel count fails loudly instead of loading half its weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dirsearch.errors import ConfigError

_HEAD_PREFIX = "fc."
_SHOWN_KEYS = 3


def load_backbone_weights(backbone: nn.Module, path: Path) -> None:
    """Copy the tensors stored at ``path`` into ``backbone``; ConfigError on any mismatch.

    ``fc.*`` entries are ignored only where the backbone's own ``fc`` head was replaced by an
    identity (the ResNets); for other backbones they are unexpected keys like any other.
    """
    state = _read_state_dict(path)
    own = backbone.state_dict()
    if isinstance(getattr(backbone, "fc", None), nn.Identity):
        state = {key: value for key, value in state.items() if not key.startswith(_HEAD_PREFIX)}
    problems = _key_problems(own, state)
    if problems:
        raise ConfigError(f"model.pretrained: {path} does not fit the backbone: {problems}")
    backbone.load_state_dict(state, strict=True)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read ``path`` with the safe loader and check that it is a dict of names to tensors."""
    if not path.is_file():
        raise ConfigError(f"model.pretrained: file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe pickles
        # torch's own message suggests weights_only=False, which would execute arbitrary
        # pickled code: only the exception type is passed on.
        raise ConfigError(
            f"model.pretrained: cannot read {path} as a weights-only state dict "
            f"({type(exc).__name__}); save it with torch.save(model.state_dict(), path)"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
    ):
        raise ConfigError(
            f"model.pretrained: {path} holds a {type(state).__name__}, not a state dict "
            "(a dict of parameter names to tensors, e.g. saved from model.backbone.state_dict())"
        )
    return state


def _key_problems(own: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> str:
    """Describe missing, unexpected and wrongly shaped entries (first few of each), or ''."""
    missing = [key for key in own if key not in given]
    unexpected = [key for key in given if key not in own]
    reshaped = [
        f"{key} file {tuple(given[key].shape)} vs model {tuple(own[key].shape)}"
        for key in own
        if key in given and given[key].shape != own[key].shape
    ]
    groups = {"missing keys": missing, "unexpected keys": unexpected, "wrong shapes": reshaped}
    found = [(label, keys) for label, keys in groups.items() if keys]
    return "; ".join(f"{len(keys)} {label}: {_first_few(keys)}" for label, keys in found)


def _first_few(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN_KEYS])
    return shown + (", ..." if len(items) > _SHOWN_KEYS else "")
