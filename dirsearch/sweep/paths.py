"""Dotted paths into a nested trial mapping (``imbalance.lds.sigma``): read, set, override, and
flatten. A searched dimension, a start point, a condition and an MLflow param all name a field
this way."""

from __future__ import annotations

import copy
from typing import Any

MISSING = object()
"""A path that the resolved mapping does not hold (distinct from a null value)."""


def get_path(mapping: Any, path: str) -> Any:
    """The value at a dotted path, or MISSING. A string where a mapping is expected is the
    ``name`` shorthand (``loss: l1`` is ``loss: {name: l1}``), so ``train.loss.name`` reads it."""
    value = mapping
    for key in path.split("."):
        if isinstance(value, str) and key == "name":
            return value
        if not isinstance(value, dict) or key not in value:
            return MISSING
        value = value[key]
    return value


def set_path(mapping: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path, creating mappings on the way (and expanding the name shorthand)."""
    *parents, last = path.split(".")
    node = mapping
    for key in parents:
        child = node.get(key)
        if isinstance(child, str):
            child = {"name": child}
        elif not isinstance(child, dict):
            child = {}
        node[key] = child
        node = child
    node[last] = copy.deepcopy(value)


def with_overrides(fixed: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The trial mapping: the fixed part with each dotted override applied, in order."""
    mapping = copy.deepcopy(fixed)
    for path, value in overrides.items():
        set_path(mapping, path, value)
    return mapping


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted paths to its leaves (``{"imbalance.lds.sigma": 2.0}``); an
    empty mapping is a leaf of its own."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
