"""Models for DIR: a named backbone, an optional FDS layer and a one-output linear regressor.

Names are loaded on first use, so ``ARCHITECTURES`` can be read without importing torch.
"""

from dirsearch.common.lazy_exports import lazy_exports

_MODULES = {
    "architectures": ("ARCHITECTURES",),
    "backbones": ("build_backbone", "feature_dim"),
    "factory": ("build_model",),
    "pretrained": ("load_backbone_weights",),
    "regressor": ("DIRRegressor", "RegressorOutput"),
}
__all__ = sorted(name for names in _MODULES.values() for name in names)
__getattr__, __dir__ = lazy_exports(
    __name__,
    {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names},
)
