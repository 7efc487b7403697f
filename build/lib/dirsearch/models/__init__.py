"""Models for DIR: a named backbone, an optional FDS layer and a one-output linear regressor."""

from __future__ import annotations

from dirsearch.models.backbones import ARCHITECTURES, build_backbone, feature_dim
from dirsearch.models.factory import build_model
from dirsearch.models.pretrained import load_backbone_weights
from dirsearch.models.regressor import DIRRegressor, RegressorOutput

__all__ = [
    "ARCHITECTURES",
    "DIRRegressor",
    "RegressorOutput",
    "build_backbone",
    "build_model",
    "feature_dim",
    "load_backbone_weights",
]
