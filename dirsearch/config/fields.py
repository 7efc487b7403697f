"""The trial config's fields by dotted path: what type a path holds, and every path there is
(for did-you-mean hints). A searched dimension or a condition is checked against these."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from dirsearch.config.trial import TrialConfig


def field_at(path: str) -> tuple[Any, dict[str, Any]] | None:
    """(type hint, field metadata) of a dotted TrialConfig path, or None if there is none."""
    hint: Any = TrialConfig
    metadata: dict[str, Any] = {}
    for key in path.split("."):
        hint = _dataclass_in(hint)
        if hint is None:
            return None
        fields = {item.name: item for item in dataclasses.fields(hint)}
        if key not in fields:
            return None
        metadata = dict(fields[key].metadata)
        hint = typing.get_type_hints(hint)[key]
    return hint, metadata


def dataclass_in(hint: Any) -> type | None:
    """The dataclass a type hint holds (``X`` or ``X | None``), or None."""
    return _dataclass_in(hint)


def _dataclass_in(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint):
        return hint
    for argument in typing.get_args(hint):
        if dataclasses.is_dataclass(argument):
            return argument
    return None


def all_paths(cls: type = TrialConfig, prefix: str = "") -> list[str]:
    """Every dotted path of the trial config, for did-you-mean hints."""
    paths = []
    for item in dataclasses.fields(cls):
        path = f"{prefix}{item.name}"
        paths.append(path)
        inner = _dataclass_in(typing.get_type_hints(cls)[item.name])
        if inner is not None:
            paths.extend(all_paths(inner, f"{path}."))
    return paths
