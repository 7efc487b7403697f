"""The DIR numerical core: binning, LDS weights, the FDS layer, losses and shot metrics.

Pure torch / numpy / scipy, importable without Ray or MLflow. Names are loaded on first use, so
reading the plain ones (``KERNELS``, ``LOSS_NAMES``, ``Binning``) does not import torch.
"""

from dirsearch.common.lazy_exports import lazy_exports

_MODULES = {
    "bins": ("Binning",),
    "conr": ("conr_loss",),
    "fds": ("FDS", "FeatureMoments"),
    "kernels": ("kernel_window",),
    "lds": ("LabelDensity", "bin_weights", "label_density", "lds_weights"),
    "losses": ("BalancedMSE", "ranksim_loss", "weighted_loss"),
    "metrics": (
        "PerBinErrors",
        "flatten_metrics",
        "nested_metrics",
        "per_bin_errors",
        "shot_metrics",
    ),
    "vocabulary": ("KERNELS", "LOSS_NAMES", "REGIONS", "REWEIGHTS", "loss_parameters"),
}
__all__ = sorted(name for names in _MODULES.values() for name in names)
__getattr__, __dir__ = lazy_exports(
    __name__,
    {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names},
)
