"""Nested YAML mappings -> a tree of frozen dataclasses, one problem line per bad key.

The loader walks the dataclass fields, so each error names the file and the dotted key
(``train.lr``), says what was found and what is allowed, and a field with a problem keeps its
default so the rest of the file is still checked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import types
import typing
from typing import Any

from dirsearch.common.formatting import brief, shortened
from dirsearch.config.problems import Problems
from dirsearch.errors import ConfigError


def unknown_key_message(key: str, allowed: typing.Iterable[str]) -> str:
    """'unknown key' with a did-you-mean hint and the allowed keys."""
    allowed = list(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key{hint}; allowed: {', '.join(allowed)}"


def choices(*allowed: str) -> dict[str, tuple[str, ...]]:
    """Field metadata: the values a string field accepts."""
    return {"choices": allowed}


def plain_data(value: Any) -> Any:
    """Nested dicts with lists for tuples: what YAML, JSON and checkpoints hold."""
    if isinstance(value, dict):
        return {key: plain_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_data(item) for item in value]
    return value


class ConfigLoader:
    """Builds a dataclass tree from nested mappings, naming ``source`` and the key in errors."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems

    def build(self, cls: type, mapping: Any, key: str) -> Any:
        """The dataclass ``cls`` from ``mapping``; a field with a problem keeps its default."""
        if mapping is None:
            mapping = {}
        if isinstance(mapping, str) and "name" in {item.name for item in dataclasses.fields(cls)}:
            mapping = {"name": mapping}  # shorthand: `loss: l1` means `loss: {name: l1}`
        if not isinstance(mapping, dict):
            raise self.problems.error(
                key or "(top level)", f"must be a mapping, got {brief(mapping)}"
            )
        fields = {item.name: item for item in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        for unknown in sorted(set(mapping) - set(fields), key=str):
            name = shortened(str(unknown), 60)
            self.problems.add(f"{key}.{name}" if key else name, unknown_key_message(name, fields))
        values = {}
        for name in fields.keys() & mapping.keys():
            child = f"{key}.{name}" if key else name
            try:
                values[name] = self.convert(
                    hints[name], mapping[name], child, fields[name].metadata
                )
            except ConfigError as error:  # keep the problem and go on: report every one
                self.problems.absorb(error)
        return cls(**values)

    def convert(self, hint: Any, value: Any, key: str, metadata: Any = None) -> Any:
        if dataclasses.is_dataclass(hint):
            return self.build(hint, value, key)
        origin = typing.get_origin(hint)
        arguments = typing.get_args(hint)
        if origin in (types.UnionType, typing.Union):
            if value is None and type(None) in arguments:
                return None
            inner = [argument for argument in arguments if argument is not type(None)]
            # ``str | tuple[str, ...]``: one value, or a list of them.
            listed = isinstance(value, list | tuple)
            chosen = [a for a in inner if (typing.get_origin(a) is tuple) == listed] or inner
            return self.convert(chosen[0], value, key, metadata)
        if origin is tuple:
            if not isinstance(value, list | tuple):
                raise self.problems.error(key, f"must be a list, got {brief(value)}")
            return tuple(
                self.convert(arguments[0], item, f"{key}[{i}]", metadata)
                for i, item in enumerate(value)
            )
        return self.scalar(hint, value, key, (metadata or {}).get("choices"))

    def scalar(self, hint: type, value: Any, key: str, allowed: tuple[str, ...] | None) -> Any:
        if hint is bool:
            if not isinstance(value, bool):
                raise self.problems.error(key, f"must be true or false, got {brief(value)}")
            return value
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.problems.error(key, f"must be an integer, got {brief(value)}")
            return value
        if hint is float:
            return self.number(value, key)
        if not isinstance(value, str):
            raise self.problems.error(key, f"must be a string, got {brief(value)}")
        if allowed is not None and value not in allowed:
            raise self.problems.error(
                key, f"unknown value {brief(value)}; allowed: {', '.join(allowed)}"
            )
        return value

    def number(self, value: Any, key: str) -> float:
        """A finite float; YAML 1.1 reads ``1e-3`` (no dot) as a string, so such strings are
        accepted. inf and NaN (``.inf``, ``1e309``) are refused: no knob means them, and every
        bound check downstream passes them unseen."""
        number = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer with hundreds of digits
                number = math.inf
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):  # not a number: said below
                number = float(value)
        if number is None:
            raise self.problems.error(key, f"must be a number, got {brief(value)}")
        if not math.isfinite(number):
            raise self.problems.error(key, f"must be a finite number, got {brief(value)}")
        return number
