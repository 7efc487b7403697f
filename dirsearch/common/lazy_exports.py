"""A package's public names, each imported from its module on first use (PEP 562).

The core packages (``dirsearch.imbalance``, ``dirsearch.models``) export torch-backed classes
next to plain names (kernel and loss names, architectures) that the config check needs. Importing
the package must not import torch for those plain names, so each name is loaded on first access.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public names live in the modules that
    ``exports`` maps them to (``{"FDS": "dirsearch.imbalance.fds"}``)."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # cached: the next access is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
