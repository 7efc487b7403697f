"""The layer rules hold and can fail: import-linter's contracts (pyproject.toml) on the tree as
it is, each broken once in a scratch copy; and ``dirsearch validate`` imports neither Ray nor
torch (checking a file is an editor-loop action: torch alone costs seconds)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS = {
    "layers": "Layers: cli > tracking > tune",
    "ray_mlflow": "Only tune, tracking and cli import Ray",
    "tune_mlflow": "tune never imports MLflow",
    "torch": "A space file is checked without torch",
}


def lint_imports(root: Path) -> str:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.stdout + result.stderr


def test_every_contract_is_kept() -> None:
    output = lint_imports(ROOT)
    for title in CONTRACTS.values():
        assert any(
            line.startswith(title) and line.endswith("KEPT") for line in output.splitlines()
        ), output


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        ("config/trial.py", "from dirsearch.cli import main as _main", "layers"),
        ("sweep/paths.py", "import ray", "ray_mlflow"),
        ("train/checkpoint.py", "import mlflow", "ray_mlflow"),
        ("tune/console.py", "import mlflow", "tune_mlflow"),
        ("config/loader.py", "import torch", "torch"),
        ("sweep/summary.py", "import torch", "torch"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, statement: str, contract: str
) -> None:
    shutil.copytree(ROOT / "dirsearch", tmp_path / "dirsearch")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "dirsearch" / module).open("a") as file:
        file.write(f"\n{statement}\n")
    output = lint_imports(tmp_path)
    title = CONTRACTS[contract]
    assert any(
        line.startswith(title) and line.endswith("BROKEN") for line in output.splitlines()
    ), output


def test_validate_imports_neither_ray_nor_torch() -> None:
    probe = (
        "import sys\n"
        "from dirsearch.cli.main import main\n"
        "code = main(['validate', '--no-environment', sys.argv[1]])\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'torch', 'mlflow'})\n"
        "print('heavy:', ','.join(heavy))\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(ROOT / "search_spaces" / "demo.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "heavy: \n" in result.stdout, result.stdout
