"""The DIR numerical core: binning, LDS weights, the FDS layer, losses and shot metrics.

Pure torch / numpy / scipy, importable without Ray or MLflow.
"""

from dirsearch.imbalance.bins import Binning
from dirsearch.imbalance.fds import FDS, FeatureMoments
from dirsearch.imbalance.kernels import KERNELS, kernel_window
from dirsearch.imbalance.lds import REWEIGHTS, LabelDensity, bin_weights, label_density, lds_weights
from dirsearch.imbalance.losses import (
    LOSS_NAMES,
    BalancedMSE,
    loss_parameters,
    ranksim_loss,
    weighted_loss,
)
from dirsearch.imbalance.metrics import (
    REGIONS,
    PerBinErrors,
    flatten_metrics,
    per_bin_errors,
    shot_metrics,
)

__all__ = [
    "FDS",
    "KERNELS",
    "LOSS_NAMES",
    "REGIONS",
    "REWEIGHTS",
    "BalancedMSE",
    "Binning",
    "FeatureMoments",
    "LabelDensity",
    "PerBinErrors",
    "bin_weights",
    "flatten_metrics",
    "kernel_window",
    "label_density",
    "lds_weights",
    "loss_parameters",
    "per_bin_errors",
    "ranksim_loss",
    "shot_metrics",
    "weighted_loss",
]
