"""The backbone names ``model.arch`` accepts, with no torch attached (the config check reads
them; ``backbones`` builds them)."""

from __future__ import annotations

IMAGE_ARCHITECTURES = ("resnet18", "resnet34", "resnet50", "small_cnn")
VECTOR_ARCHITECTURES = ("mlp",)
ARCHITECTURES = (*IMAGE_ARCHITECTURES, *VECTOR_ARCHITECTURES)
