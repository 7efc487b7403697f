"""What ``dirsearch init`` writes runs: for a table and an image folder, each with and without a
split column, the written file validates and a two-trial sweep of it runs to the end on a real
local Ray (``--set`` cuts the budget, as a user trying the file would)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from init_helpers import lab_table, without_split
from sweep_helpers import local_ray

from dirsearch.cli.main import main
from dirsearch.data.csv_table import parse_numbers, read_table
from dirsearch.imbalance.bin_rule import auto_binning
from dirsearch.sweep.records import read_trials
from dirsearch.sweep.spec_reader import load_sweep_spec

pytestmark = pytest.mark.slow

QUICK = [
    "search.num_samples=2",
    "train.epochs=2",
    "search.scheduler.grace_period=1",
    "search.searcher.startup_trials=2",
]


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    with local_ray():
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[str]]]:
    """Four CSVs: name -> (CSV, extra init arguments)."""
    from dirsearch.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("own")
    table = write_synthetic(root / "table", kind="tabular", scale=0.05)
    images = write_synthetic(root / "images", kind="image", scale=0.05, image_size=16)
    labels = root / "labels" / "faces.csv"  # elsewhere than the images: --images names them
    labels.parent.mkdir()
    labels.write_text(images.read_text())
    return {
        "table with split": (table, []),
        "table without split": (lab_table(root / "lab" / "lab.csv"), []),
        "images with split": (labels, ["--images", str(images.parent)]),
        "images without split": (without_split(images, images.with_name("bare.csv")), []),
    }


def target_of(csv: Path) -> str:
    return "score" if csv.name == "lab.csv" else "age"


@pytest.mark.parametrize(
    "name", ["table with split", "table without split", "images with split", "images without split"]
)
def test_init_then_a_two_trial_sweep_runs_to_the_end(
    ray_instance: None, data: dict, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    csv, extra = data[name]
    out = tmp_path / "mine.yaml"
    assert main(["init", str(csv), "--target", target_of(csv), "--out", str(out), *extra]) == 0
    spec = load_sweep_spec(out)
    assert spec.fixed["data"]["name"] == ("csv_images" if "images" in name else "tabular")
    options = [item for option in QUICK for item in ("--set", option)]
    if name == "table without split":  # the bins again, by the auto rule at load time
        options += ["--set", "data.bins=auto"]
    code = main(["run", str(out), "--storage", str(tmp_path), "--name", "s", *options])
    assert code == 0, capsys.readouterr().err[-3000:]
    folder = tmp_path / "s"
    records = read_trials(str(folder))
    assert len(records) == 2
    assert (folder / "results.md").is_file() and "| MAE |" in (folder / "results.md").read_text()
    resolved = json.loads((folder / "sweep.json").read_text())
    if name == "table without split":
        targets = parse_numbers(read_table(Path(spec.fixed["data"]["csv"])), "score")
        binning = auto_binning(targets)
        assert resolved["fixed"]["data"]["bins"] == {
            "start": binning.start,
            "width": binning.width,
            "count": binning.count,
        }
        assert resolved["bins_from"] == "auto"
        assert resolved["fixed"]["data"]["bins"] == spec.fixed["data"]["bins"]
