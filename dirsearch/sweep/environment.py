"""What this machine lacks for a sweep: data files (with how to get them) and GPUs.

Separate from the file's own checks so a sweep meant for a cluster can be validated on a laptop
(``dirsearch validate --no-environment``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dirsearch.sweep.spec import SweepSpec


def environment_problems(spec: SweepSpec, gpus_available: int | None) -> list[str]:
    """What this machine lacks for the sweep: data files (with how to get them) and GPUs.

    Separate from the file's own checks so a sweep meant for a cluster can be validated on a
    laptop (``dirsearch validate --no-environment``). ``gpus_available`` None skips the GPUs."""
    problems = []
    data, source = spec.fixed["data"], spec.source
    needed = []
    if data["name"] != "synthetic":
        needed.append(("data.csv", data["csv"]))
    if data["name"] == "csv_images" and data["root"]:
        needed.append(("data.root", data["root"]))
    needed.append(("model.pretrained", spec.fixed["model"]["pretrained"]))
    needed.append(("train.rrt.checkpoint", spec.fixed["train"]["rrt"]["checkpoint"]))
    for key, value in needed:
        if value is not None and not Path(value).exists():
            problems.append(f"{source}: {key}: {value} does not exist; {_how_to_get(key, data)}")
    gpu = spec.search.resources.gpu
    if gpus_available is not None and gpu > gpus_available:
        problems.append(
            f"{source}: search.resources.gpu: each trial asks for {gpu:g} GPU but there "
            f"{'is' if gpus_available == 1 else 'are'} {gpus_available}; lower it, or run on "
            f"a cluster with GPUs (--address)"
        )
    return problems


def _how_to_get(key: str, data: dict[str, Any]) -> str:
    if key in ("data.csv", "data.root") and data["name"] == "csv_images":
        return (
            "build the DIR CSV from the raw download with `dirsearch data prepare imdb-wiki "
            "--raw DIR --out CSV` (or `agedb`), or point data.csv/data.root at your copy "
            "(README: Data)"
        )
    if key == "data.csv":
        return (
            "point data.csv at your numeric CSV (features, target, split; `dirsearch data split` "
            "adds the split column), or write an example with `dirsearch data synth --kind "
            "tabular --out DIR` (README: Data)"
        )
    return "fix the path (relative paths are relative to the space file's folder)"
