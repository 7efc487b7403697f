"""Target -> bin mapping shared by LDS, FDS and the shot metrics.

One object decides which bin a target falls in, so the loss weights, the FDS statistics and the
many/medium/few regions can never disagree about it. The config check builds bins too and must not
import torch, so torch is only touched for tensors (which exist only once torch is imported).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

ArrayOrTensor = TypeVar("ArrayOrTensor", "np.ndarray", "torch.Tensor")

EDGE_TOLERANCE = 1e-6
"""Fraction of a bin width by which a target may fall short of an edge and still count as on it.

``floor((0.3 - 0) / 0.1)`` is 2 in binary floating point; without the tolerance a score of 0.3
would land in the bin of 0.2. Real targets that close to an edge are indistinguishable from it.
"""


def check_finite(name: str, values: np.ndarray) -> None:
    """Raise a ValueError naming ``name`` when ``values`` holds NaN or infinity."""
    bad = ~np.isfinite(values)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} must be finite numbers; found {values[position]} at position {position}"
        )


def torch_of(values: Any) -> ModuleType | None:
    """torch, when ``values`` is a tensor; None otherwise (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch if torch is not None and isinstance(values, torch.Tensor) else None


def as_numpy(name: str, values: np.ndarray | torch.Tensor) -> np.ndarray:
    """A flat float64 copy of ``values`` (array or tensor on any device)."""
    torch = torch_of(values)
    if torch is not None:
        values = values.detach().to("cpu", torch.float64).numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim > 1 and array.size != array.shape[0]:
        raise ValueError(f"{name} must be one value per sample; got shape {array.shape}")
    return array.reshape(-1)


@dataclass(frozen=True)
class Binning:
    """Contiguous bins ``[start + k*width, start + (k+1)*width)`` for ``k = 0..count-1``.

    Targets below the first bin or above the last are clipped into it, which is also how FDS
    pools rare edge labels (AgeDB-DIR's ``bucket_start``): start the binning there.
    """

    start: float = 0.0
    width: float = 1.0
    count: int = 100

    def __post_init__(self) -> None:
        if not (np.isfinite(self.start)):
            raise ValueError(f"Binning start must be a finite number; got {self.start}")
        if not (np.isfinite(self.width) and self.width > 0):
            raise ValueError(f"Binning width must be > 0; got {self.width}")
        if int(self.count) != self.count or self.count < 1:
            raise ValueError(f"Binning count must be an integer >= 1; got {self.count}")

    @property
    def edges(self) -> np.ndarray:
        """The ``count + 1`` bin edges."""
        return self.start + self.width * np.arange(self.count + 1, dtype=np.float64)

    @property
    def centers(self) -> np.ndarray:
        """The ``count`` bin centres."""
        return self.start + self.width * (np.arange(self.count, dtype=np.float64) + 0.5)

    def index(self, targets: ArrayOrTensor) -> ArrayOrTensor:
        """Bin of each target, clipped into ``[0, count)``: int64 array, or long tensor on the
        targets' device. Never reads tensor values on the host, so it cannot stall a GPU."""
        torch = torch_of(targets)
        if torch is not None:
            scaled = (targets.to(torch.float64) - self.start) / self.width
            bins = torch.floor(scaled + EDGE_TOLERANCE).clamp_(0, self.count - 1)
            return bins.to(torch.long)
        scaled = (np.asarray(targets, dtype=np.float64) - self.start) / self.width
        return np.clip(np.floor(scaled + EDGE_TOLERANCE), 0, self.count - 1).astype(np.int64)

    def histogram(self, targets: ArrayOrTensor) -> ArrayOrTensor:
        """Number of targets per bin (int64), as an array or a tensor like the input."""
        check_finite("targets", as_numpy("targets", targets))
        torch = torch_of(targets)
        if torch is not None:
            return torch.bincount(self.index(targets.reshape(-1)), minlength=self.count)
        return np.bincount(self.index(np.ravel(targets)), minlength=self.count).astype(np.int64)
