"""Checkpoints survive what a shared cluster does to them: each file is written to a temporary
file of its own and synced before it is renamed into place, and an unreadable newest
``state.pt`` makes ``train --resume`` and a resumed Tune trial continue from the checkpoint
before it (kept for that) instead of stopping.

The Tune trainable runs here without Ray: ``tune.get_checkpoint`` and ``tune.report`` are
replaced by a stand-in that persists each reported checkpoint as Ray does
(``<trial>/checkpoint_<index>``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from ray import tune
from sweep_helpers import TINY_SWEEP, write_space
from trial_helpers import TABULAR, merged

from dirsearch.cli.main import main
from dirsearch.sweep.spec_reader import load_sweep_spec
from dirsearch.train import checkpoint
from dirsearch.tune import trainable

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_checkpoint_file_is_synced_under_a_temporary_name_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced, renamed = [], []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    monkeypatch.setattr(
        os, "replace", lambda a, b: renamed.append((Path(a).name, Path(b))) or real_replace(a, b)
    )
    target = tmp_path / "state.pt"
    checkpoint.save_atomically({"x": torch.ones(3)}, target)
    checkpoint.save_atomically({"x": torch.zeros(3)}, target)
    assert torch.equal(checkpoint.load(target)["x"], torch.zeros(3))
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]  # no temporary file left
    (first, _), (second, _) = renamed
    assert first != second and {first, second}.isdisjoint({"state.pt", ".state.pt.partial"})
    assert len(synced) >= 4  # each file, and the folder its rename is in


def without_times(report: dict[str, Any]) -> dict[str, Any]:
    """Metrics that a rerun reproduces exactly (not its timings)."""
    return {k: v for k, v in report.items() if not k.startswith("time/") and "per_s" not in k}


def corrupt(path: Path) -> None:
    """A state.pt cut short (a copy that did not finish, a disk that lied)."""
    path.write_bytes(path.read_bytes()[:100])


def test_train_resume_falls_back_to_the_epoch_before_an_unreadable_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump(merged(TABULAR, {"train": {"epochs": 3}})))
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert main(["train", str(config), "--out", str(whole)]) == 0
    shutil.copytree(whole, resumed)
    corrupt(resumed / "checkpoints" / "epoch_0003" / "state.pt")
    capsys.readouterr()
    assert main(["train", str(config), "--out", str(resumed), "--resume"]) == 0
    (warning,) = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    bad = resumed / "checkpoints" / "epoch_0003" / "state.pt"
    assert warning.startswith(f"dirsearch: warning: {bad}: not a readable dirsearch checkpoint")
    assert warning.endswith("resuming from epoch_0002 instead")
    # Epoch 3 was trained again from epoch 2's state, exactly as the first time.
    first, again = (json.loads((out / "results.json").read_text()) for out in (whole, resumed))
    assert [without_times(epoch) for epoch in again["history"]] == [
        without_times(epoch) for epoch in first["history"]
    ]
    assert again["test"] == first["test"]
    assert checkpoint.state_problem(resumed / "checkpoints" / "epoch_0003") is None


def test_train_resume_with_no_readable_state_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump(merged(TABULAR, {"train": {"epochs": 2}})))
    out = tmp_path / "out"
    assert main(["train", str(config), "--out", str(out)]) == 0
    for folder in (out / "checkpoints").glob("epoch_*"):
        corrupt(folder / "state.pt")
    capsys.readouterr()
    assert main(["train", str(config), "--out", str(out), "--resume"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "epoch_0002/state.pt: not a readable dirsearch checkpoint" in line
    assert line.endswith("no earlier checkpoint is readable either")


class NodeLost(Exception):
    """The trial's process went away (after its last report was persisted)."""


class FakeTune:
    """``tune.get_checkpoint`` / ``tune.report`` of one trial whose folder is ``trial``: each
    reported checkpoint is copied to ``checkpoint_<index>`` (the trial's last two kept), and
    the run stops (as a killed node would) after ``stop_after`` reports."""

    def __init__(self, trial: Path, stop_after: int | None = None) -> None:
        self.trial, self.stop_after = trial, stop_after
        self.reports: list[dict[str, Any]] = []
        self.latest: tune.Checkpoint | None = None

    def get_checkpoint(self) -> tune.Checkpoint | None:
        return self.latest

    def report(self, metrics: dict[str, Any], checkpoint: tune.Checkpoint | None = None) -> None:
        self.reports.append(metrics)
        if checkpoint is not None:
            index = len(list(self.trial.glob("checkpoint_*")))
            while (self.trial / f"checkpoint_{index:06d}").exists():
                index += 1
            target = self.trial / f"checkpoint_{index:06d}"
            shutil.copytree(checkpoint.path, target)
            self.latest = tune.Checkpoint.from_directory(str(target))
            for old in sorted(self.trial.glob("checkpoint_*"))[:-2]:
                shutil.rmtree(old)
        if self.stop_after is not None and len(self.reports) >= self.stop_after:
            raise NodeLost


def run_trial(
    monkeypatch: pytest.MonkeyPatch, fake: FakeTune, spec: Any, repeats: int, workdir: Path
) -> None:
    monkeypatch.setattr(trainable.tune, "get_checkpoint", fake.get_checkpoint)
    monkeypatch.setattr(trainable.tune, "report", fake.report)
    workdir.mkdir(exist_ok=True)
    with contextlib.suppress(NodeLost):
        trainable._train_in(spec, {"train.lr": 0.003}, repeats, False, workdir)


@pytest.mark.parametrize("bad_seed", [0, 1])
def test_a_tune_trial_continues_from_the_checkpoint_before_an_unreadable_one(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    bad_seed: int,
) -> None:
    space = merged(TINY_SWEEP, {"train": {"epochs": 4}})
    spec = load_sweep_spec(write_space(tmp_path, space))
    whole = FakeTune(tmp_path / "whole")
    (tmp_path / "whole").mkdir()
    run_trial(monkeypatch, whole, spec, 2, tmp_path / "work_whole")
    assert [r["training_iteration"] for r in whole.reports] == [1, 2, 3, 4]

    trial = tmp_path / "trial"
    trial.mkdir()
    crashed = FakeTune(trial, stop_after=3)  # the driver or node died after epoch 3's report
    run_trial(monkeypatch, crashed, spec, 2, tmp_path / "work_1")
    assert sorted(p.name for p in trial.iterdir()) == ["checkpoint_000001", "checkpoint_000002"]
    corrupt(trial / "checkpoint_000002" / f"seed_{bad_seed}" / "state.pt")
    capsys.readouterr()
    resumed = FakeTune(trial)
    resumed.latest = crashed.latest
    run_trial(monkeypatch, resumed, spec, 2, tmp_path / "work_2")

    (warning,) = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    bad = trial / "checkpoint_000002" / f"seed_{bad_seed}" / "state.pt"
    assert warning.startswith(f"dirsearch: warning: {bad}: not a readable dirsearch checkpoint")
    assert warning.endswith(f"resuming from {trial / 'checkpoint_000001'} instead")
    # Epoch 3 is trained again from epoch 2 and reported as iteration 3 (Tune would count 4),
    # with the metrics of the run that was never interrupted.
    assert [r["epoch"] for r in resumed.reports] == [3, 4]
    assert [r["training_iteration"] for r in resumed.reports] == [3, 4]
    assert [without_times(r) for r in resumed.reports] == [
        without_times(r) for r in whole.reports[2:]
    ]


def test_a_tune_trial_with_no_readable_checkpoint_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_sweep_spec(write_space(tmp_path, merged(TINY_SWEEP, {"train": {"epochs": 3}})))
    trial = tmp_path / "trial"
    trial.mkdir()
    crashed = FakeTune(trial, stop_after=2)
    run_trial(monkeypatch, crashed, spec, 1, tmp_path / "work_1")
    for folder in trial.glob("checkpoint_*"):
        corrupt(folder / "seed_0" / "state.pt")
    resumed = FakeTune(trial)
    resumed.latest = crashed.latest
    with pytest.raises(checkpoint.DataError, match="no earlier checkpoint is readable either"):
        run_trial(monkeypatch, resumed, spec, 1, tmp_path / "work_2")


class Saboteur(tune.Callback):
    """When the checkpoint of epoch 3 is registered, cut its state.pt short and kill the
    trial's process: Tune retries the trial from exactly that checkpoint."""

    def __init__(self) -> None:
        self.corrupted: list[str] = []

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        if trial.last_result.get("training_iteration") == 3 and not self.corrupted:
            corrupt(Path(checkpoint.path) / "seed_0" / "state.pt")
            self.corrupted.append(checkpoint.path)
            os.kill(trial.last_result["pid"], signal.SIGKILL)


@pytest.mark.slow
def test_a_real_tune_retry_from_an_unreadable_checkpoint_continues_from_the_one_before(
    tmp_path: Path,
) -> None:
    from sweep_helpers import local_ray

    from dirsearch.tune.tuners import trainable_for

    spec = load_sweep_spec(write_space(tmp_path, merged(TINY_SWEEP, {"train": {"epochs": 5}})))
    saboteur = Saboteur()
    with local_ray():
        tuner = tune.Tuner(
            trainable_for(spec, repeats=1, evaluate_test=False),
            param_space={"train.lr": 0.003},
            tune_config=tune.TuneConfig(num_samples=1, metric="val/few/mae", mode="min"),
            run_config=tune.RunConfig(
                name="fallback",
                storage_path=str(tmp_path / "runs"),
                callbacks=[saboteur],
                failure_config=tune.FailureConfig(max_failures=1),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                verbose=0,
            ),
        )
        (result,) = tuner.fit()
    # Restoring the corrupted checkpoint alone would fail the retry, and with it the trial.
    assert saboteur.corrupted and saboteur.corrupted[0].endswith("checkpoint_000002")
    assert result.error is None and (Path(result.path) / "error.txt").is_file()
    assert (result.metrics["epoch"], result.metrics["training_iteration"]) == (5, 5)
    lines = (Path(result.path) / "result.json").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert all(row["training_iteration"] == row["epoch"] for row in rows)
    assert sorted({int(row["epoch"]) for row in rows}) == [1, 2, 3, 4, 5]
