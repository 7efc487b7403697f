"""The README's main job, end to end, exactly as a user runs it (torch's default threads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dirsearch.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "search_spaces" / "synthetic.yaml"


@pytest.mark.slow
def test_default_example_trains_and_shows_the_few_shot_gap(tmp_path: Path) -> None:
    """The packaged example learns far better than predicting the training mean (test MAE
    ~25.8) and still shows the gap DIR is about: few-shot MAE above many-shot MAE."""
    out = tmp_path / "out"
    assert main(["train", str(EXAMPLE), "--out", str(out)]) == 0
    test = json.loads((out / "results.json").read_text())["test"]
    assert test["all"]["n"] == 1020
    assert test["all"]["mae"] < 10.0
    assert test["few"]["mae"] > test["many"]["mae"]
