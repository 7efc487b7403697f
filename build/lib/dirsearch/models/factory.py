"""``build_model``: the one way the trainer turns a model config into a DIRRegressor."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from dirsearch.errors import ConfigError
from dirsearch.models.backbones import build_backbone, feature_dim
from dirsearch.models.pretrained import load_backbone_weights
from dirsearch.models.regressor import DIRRegressor


def build_model(
    arch: str,
    input_shape: tuple[int, ...],
    *,
    fds: nn.Module | None = None,
    pretrained: Path | None = None,
    mlp_hidden: tuple[int, ...] = (128, 128),
    dropout: float = 0.0,
) -> DIRRegressor:
    """Build backbone -> optional FDS -> linear regressor for inputs of ``input_shape``.

    ``input_shape`` is (C, H, W) for images (the model receives normalised float batches) or (F,)
    for feature vectors. ``pretrained`` names a local backbone state dict; nothing is downloaded.
    Size ``fds`` with ``feature_dim(arch, input_shape, mlp_hidden=...)``.
    """
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"model.dropout: must be in [0, 1), got {dropout}")
    dim = feature_dim(arch, input_shape, mlp_hidden=mlp_hidden)
    backbone = build_backbone(arch, input_shape, mlp_hidden=mlp_hidden)
    if pretrained is not None:
        load_backbone_weights(backbone, Path(pretrained))
    return DIRRegressor(backbone, dim, fds=fds, dropout=dropout)
