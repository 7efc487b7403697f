"""Make the slow reference implementations in this folder importable as `reference_dir`.

pytest's default import mode already puts this folder on sys.path, but `--import-mode=importlib`
does not; inserting it here keeps `import reference_dir` working whatever mode is used.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)
