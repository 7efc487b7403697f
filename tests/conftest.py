"""Shared test setup: this folder on sys.path, and the one-thread fixture.

pytest's default import mode already puts this folder on sys.path, but `--import-mode=importlib`
does not; inserting it here keeps `import reference_dir` / `import trial_helpers` working.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread: with busy cores, torch's spinning thread pool runs ~50x slower, and
    exact resume comparisons need the same thread count in every run anyway."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
