"""The DIR model: encoder -> optional FDS layer -> one linear regressor.

Unlike the DIR reference code, ``forward`` returns the same ``RegressorOutput`` in training and
evaluation mode, so callers never branch on the mode to unpack it, and the pre-FDS features the
FDS statistics are computed from are always at hand.
"""

from __future__ import annotations

from typing import NamedTuple, Self

import torch
from torch import nn


class RegressorOutput(NamedTuple):
    """Predictions ``(N,)`` and the encoder features ``(N, d)`` they came from (before FDS)."""

    preds: torch.Tensor
    features: torch.Tensor


class DIRRegressor(nn.Module):
    """A backbone, an optional FDS layer and a linear regressor with one output.

    The FDS module is a submodule, so its running statistics (buffers) travel in ``state_dict()``
    and therefore in every checkpoint; an FDS exposing ``feature_dim`` is checked against the
    backbone here rather than failing at the first smoothed batch. Dropout, when asked for, acts
    on the regressor's input.
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        *,
        fds: nn.Module | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        fds_dim = getattr(fds, "feature_dim", feature_dim)
        if fds_dim != feature_dim:
            raise ValueError(f"FDS feature_dim is {fds_dim}; the backbone gives {feature_dim}")
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.fds = fds
        self.dropout = nn.Dropout(dropout)
        self.regressor = nn.Linear(feature_dim, 1)
        self._backbone_frozen = False

    def forward(
        self,
        x: torch.Tensor,
        targets: torch.Tensor | None = None,
        epoch: int | None = None,
    ) -> RegressorOutput:
        """Predict one value per sample.

        FDS smoothing needs the batch targets and the current epoch, and only applies while
        training; without them (or in eval mode, or without FDS) the regressor reads the raw
        features.
        """
        features = self.backbone(x)
        regressor_input = features
        if self.fds is not None and self.training and targets is not None and epoch is not None:
            regressor_input = self.fds.smooth(features, targets, epoch)
        preds = self.regressor(self.dropout(regressor_input)).squeeze(-1)
        return RegressorOutput(preds, features)

    def freeze_all_but_regressor(self) -> list[nn.Parameter]:
        """Prepare regressor re-training (RRT): only the final linear layer keeps learning.

        Besides ``requires_grad``, the backbone is pinned to eval mode from now on (see
        ``train``): otherwise BatchNorm running statistics would keep drifting in stage 2 and the
        "frozen" encoder would change under the re-trained regressor. Returns the parameters left
        trainable, ready for an optimizer.
        """
        for param in self.parameters():
            param.requires_grad_(False)
        for param in self.regressor.parameters():
            param.requires_grad_(True)
        self._backbone_frozen = True
        self.backbone.eval()
        return list(self.regressor.parameters())

    def train(self, mode: bool = True) -> Self:
        """Switch modes as usual, except that a frozen backbone always stays in eval mode."""
        super().train(mode)
        if self._backbone_frozen:
            self.backbone.eval()
        return self
