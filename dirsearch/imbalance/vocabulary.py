"""The names the DIR core accepts (kernels, re-weighting schemes, losses and their parameters,
shot regions and statistics), with no numerics attached.

The config layer checks a file against these without importing torch or scipy: checking a file
is an editor-loop action and must answer in about a second. The numerical modules take their
names from here, so the two can never disagree.
"""

from __future__ import annotations

KERNELS = ("gaussian", "triang", "laplace")
REWEIGHTS = ("none", "inverse", "sqrt_inv")
REGIONS = ("all", "many", "medium", "few")
STATISTICS = ("mae", "mse", "gm")

FOCAL_DEFAULTS: dict[str, object] = {"beta": 0.2, "gamma": 1.0, "activation": "sigmoid"}
LOSS_DEFAULTS: dict[str, dict[str, object]] = {
    "mse": {},
    "l1": {},
    "huber": {"beta": 1.0},
    "focal_mse": FOCAL_DEFAULTS,
    "focal_l1": FOCAL_DEFAULTS,
}
"""Each weighted point loss by name, with the default of every keyword parameter it takes."""
LOSS_NAMES: tuple[str, ...] = tuple(LOSS_DEFAULTS)


def loss_parameters(name: str) -> tuple[str, ...]:
    """The keyword parameters loss ``name`` accepts (for config validation)."""
    return tuple(LOSS_DEFAULTS[name])
