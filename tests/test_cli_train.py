"""``dirsearch train``: output folder, resume, exit codes and one-line errors.

Most tests call ``dirsearch.cli.main`` in-process on the tiny tabular trial of test_trainer; one
runs the installed console script as a real subprocess.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from PIL import Image
from trial_helpers import TABULAR, merged, nested_stable, stable

from dirsearch.cli.main import main
from dirsearch.config.files import load_trial_config
from dirsearch.sweep.tables import result_table
from dirsearch.train.evaluator import evaluate_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

EPOCH_LINE = re.compile(
    r"epoch (\d+)/(\d+)  train/loss \d+\.\d{4}  val MAE all \S+ many \S+ medium \S+ few \S+  "
    r"\d+\.\ds [\d,]+ samples/s(  \*best)?"
)


def write_config(path: Path, override: dict[str, Any] | None = None) -> Path:
    """The tiny tabular trial (2 epochs) with ``override`` merged in, as a YAML file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(merged(TABULAR, override or {})))
    return path


def train(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run ``dirsearch train ARGS`` in-process: (exit code, stdout, stderr)."""
    code = main(["train", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    assert err.startswith("dirsearch: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def read_results(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text())


# ----- a run and its output folder ----------------------------------------------------------------


def test_train_writes_config_results_and_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = write_config(tmp_path / "configs" / "trial.yaml")
    out = tmp_path / "out"
    code, stdout, stderr = train(capsys, config_path, "--out", out)
    assert code == 0
    assert stderr == ""
    assert {path.name for path in out.iterdir()} == {
        "checkpoints",
        "config.yaml",
        "results.md",
        "results.json",
    }
    config = load_trial_config(config_path)
    assert load_trial_config(out / "config.yaml") == config

    results = read_results(out)
    assert results["select_metric"] == "val/all/mae"
    assert [metrics["epoch"] for metrics in results["history"]] == [1, 2]
    maes = [metrics["val/all/mae"] for metrics in results["history"]]
    assert results["best_epoch"] == 1 + maes.index(min(maes))
    test = results["test"]
    assert set(test) == {"all", "many", "medium", "few"}
    final = out / "checkpoints" / "epoch_0002"
    assert nested_stable(evaluate_checkpoint(config, final)) == nested_stable(test)
    table = result_table(test)
    assert (out / "results.md").read_text() == table + "\n"
    assert table.splitlines()[0].startswith("| Metric | All (n=1020) | Many (n=")

    lines = stdout.splitlines()
    assert lines[0] == f"training {config_path} -> {out}"
    assert [EPOCH_LINE.fullmatch(line) is not None for line in lines[1:3]] == [True, True]
    assert [line.split()[1] for line in lines[1:3]] == ["1/2", "2/2"]
    assert lines[3:5] == ["", f"best epoch {results['best_epoch']} (by val/all/mae); test split:"]
    assert "\n".join(lines[5:]) == table


def test_default_out_folder_is_runs_slash_config_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path = write_config(tmp_path / "configs" / "small.yaml", {"train": {"epochs": 1}})
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    code, stdout, _ = train(capsys, config_path)
    assert code == 0
    assert (cwd / "runs" / "small" / "results.json").is_file()
    assert f"-> {cwd / 'runs' / 'small'}" in stdout


def test_second_run_into_the_same_folder_needs_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = write_config(tmp_path / "trial.yaml")
    out = tmp_path / "out"
    assert train(capsys, config_path, "--out", out)[0] == 0
    before = (out / "results.json").read_text()
    code, _, stderr = train(capsys, config_path, "--out", out)
    assert code == 2
    assert stderr == (
        f"dirsearch: error: {config_path}: {out} already holds a run (last checkpoint "
        "epoch_0002); pass --resume to continue it or --out to start a new one\n"
    )
    assert (out / "results.json").read_text() == before


def test_resume_without_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fresh"
    config_path = write_config(tmp_path / "trial.yaml")
    code, _, stderr = train(capsys, config_path, "--out", out, "--resume")
    assert code == 2
    assert stderr == (
        f"dirsearch: error: {config_path}: --resume given but {out} holds no checkpoint to "
        "resume from\n"
    )


@pytest.mark.parametrize("removed", ["folder", "state.pt"])
def test_resume_finishes_the_missing_epoch_identically(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], removed: str
) -> None:
    """The last epoch's folder is gone, or incomplete (a crash before state.pt, which is written
    last): --resume continues from the epoch before it."""
    config_path = write_config(tmp_path / "trial.yaml")
    out = tmp_path / "out"
    assert train(capsys, config_path, "--out", out)[0] == 0
    first = read_results(out)
    last = out / "checkpoints" / "epoch_0002"
    (last / "state.pt").unlink()
    if removed == "folder":
        for path in last.iterdir():
            path.unlink()
        last.rmdir()
    code, stdout, _ = train(capsys, config_path, "--out", out, "--resume")
    assert code == 0
    epochs = [line.split()[1] for line in stdout.splitlines() if EPOCH_LINE.fullmatch(line)]
    assert epochs == ["2/2"]
    resumed = read_results(out)
    assert stable(resumed["history"]) == stable(first["history"])
    assert resumed["best_epoch"] == first["best_epoch"]
    assert nested_stable(resumed["test"]) == nested_stable(first["test"])


def test_resume_refuses_when_no_state_file_is_readable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreadable newest state.pt falls back to the epoch before (test_checkpoint_fallback);
    when none loads, resume stops with one line naming the newest."""
    config_path = write_config(tmp_path / "trial.yaml")
    out = tmp_path / "out"
    assert train(capsys, config_path, "--out", out)[0] == 0
    before = (out / "results.json").read_text()
    state = out / "checkpoints" / "epoch_0002" / "state.pt"
    for folder in ("epoch_0001", "epoch_0002"):
        (out / "checkpoints" / folder / "state.pt").write_bytes(b"PK\x03\x04 cut by a full disk")
    code, stdout, stderr = train(capsys, config_path, "--out", out, "--resume")
    assert code == 2
    assert_one_line_error(
        stderr,
        f"dirsearch: error: {config_path}: {state}: not a readable dirsearch checkpoint",
        "no earlier checkpoint is readable either",
    )
    assert not EPOCH_LINE.search(stdout)
    assert (out / "results.json").read_text() == before


def test_results_json_is_strict_when_a_shot_region_is_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No bin has over 10^6 or under 0 training samples: many- and few-shot regions are empty,
    their metrics missing. results.json says null, never NaN (which strict JSON has no word for)."""
    shots = {"imbalance": {"shots": {"many": 1_000_000, "few": 0}}}
    config_path = write_config(tmp_path / "trial.yaml", shots)
    out = tmp_path / "out"
    assert train(capsys, config_path, "--out", out)[0] == 0

    def refuse(constant: str) -> None:
        raise AssertionError(f"results.json holds {constant}")

    results = json.loads((out / "results.json").read_text(), parse_constant=refuse)
    for region in ("many", "few"):
        assert results["test"][region] == {"mae": None, "mse": None, "gm": None, "n": 0}
        for epoch in results["history"]:
            assert epoch[f"val/{region}/mae"] is None
    assert results["test"]["medium"]["n"] == results["test"]["all"]["n"] > 0


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["train", "--help"])
    assert caught.value.code == 0
    assert "--resume" in capsys.readouterr().out


# ----- bad input: exit 2, one line naming the file and key or row ---------------------------------


def png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (120, 30, 200)).save(path)


def image_rows(folder: Path, rows: list[str], header: str = "path,age,split") -> Path:
    """A csv_images CSV under ``folder`` whose existing ``img*.png`` paths get real images."""
    for row in rows:
        name = row.split(",")[0]
        if name.startswith("img"):
            png(folder / name)
    csv = folder / "faces.csv"
    csv.write_text("\n".join([header, *rows]) + "\n")
    return csv


IMAGE_ROWS = ["img0.png,20,train", "img1.png,30,train", "img2.png,40,val", "img3.png,50,test"]


def csv_images_config(csv: Path) -> dict[str, Any]:
    return {"data": {"name": "csv_images", "csv": csv.name, "image_size": 8}, "model": {}}


def missing_config(folder: Path) -> tuple[Path, list[str]]:
    path = folder / "absent.yaml"
    return path, [f"{path}: config file not found"]


def unknown_key(folder: Path) -> tuple[Path, list[str]]:
    path = write_config(folder / "trial.yaml", {"train": {"lrr": 0.1}})
    return path, [
        f"{path}: train.lrr: unknown key (did you mean 'lr'?); allowed: epochs, batch_size,"
    ]


def missing_data_csv(folder: Path) -> tuple[Path, list[str]]:
    path = write_config(folder / "trial.yaml", {"data": {"name": "tabular", "csv": "gone.csv"}})
    return path, [f"{folder / 'gone.csv'}: CSV file not found"]


def tabular_text_target(folder: Path) -> tuple[Path, list[str]]:
    rows = ["x,age,split", "0.5,20,train", "0.7,thirty,train", "0.1,5,val", "0.2,6,test"]
    (folder / "table.csv").write_text("\n".join(rows) + "\n")
    path = write_config(folder / "trial.yaml", {"data": {"name": "tabular", "csv": "table.csv"}})
    return path, [f"{folder / 'table.csv'}: row 3, column 'age': 'thirty' is not a number"]


def csv_images_without_path_column(folder: Path) -> tuple[Path, list[str]]:
    csv = image_rows(folder, ["a.png,20,train"], header="file,age,split")
    path = write_config(folder / "trial.yaml", csv_images_config(csv))
    return path, [f"{csv}: no column 'path'; available columns: file, age, split"]


def csv_images_missing_image(folder: Path) -> tuple[Path, list[str]]:
    csv = image_rows(folder, [*IMAGE_ROWS[:2], "lost.png,35,train", *IMAGE_ROWS[2:]])
    path = write_config(folder / "trial.yaml", csv_images_config(csv))
    return path, [f"{csv}: row 4, column 'path': ", "lost.png", "not found"]


def csv_images_text_target(folder: Path) -> tuple[Path, list[str]]:
    csv = image_rows(folder, [*IMAGE_ROWS, "img4.png,forty,train"])
    path = write_config(folder / "trial.yaml", csv_images_config(csv))
    return path, [f"{csv}: row 6, column 'age': 'forty' is not a number"]


def unknown_arch(folder: Path) -> tuple[Path, list[str]]:
    path = write_config(folder / "trial.yaml", {"model": {"arch": "resnet99"}})
    return path, [f"{path}: model.arch: unknown value 'resnet99'; allowed: resnet18,"]


def image_arch_for_vectors(folder: Path) -> tuple[Path, list[str]]:
    path = write_config(folder / "trial.yaml", {"model": {"arch": "small_cnn"}})
    return path, ["small_cnn", "mlp"]


def pretrained_list(folder: Path) -> tuple[Path, list[str]]:
    torch.save([1, 2, 3], folder / "weights.pt")
    path = write_config(folder / "trial.yaml", {"model": {"pretrained": "weights.pt"}})
    return path, [f"model.pretrained: {folder / 'weights.pt'} holds a list, not a state dict"]


def pretrained_text(folder: Path) -> tuple[Path, list[str]]:
    (folder / "weights.pt").write_text("definitely not weights\n")
    path = write_config(folder / "trial.yaml", {"model": {"pretrained": "weights.pt"}})
    return path, [f"model.pretrained: cannot read {folder / 'weights.pt'} as a weights-only"]


def pretrained_other_shapes(folder: Path) -> tuple[Path, list[str]]:
    torch.save({"0.weight": torch.zeros(4, 2)}, folder / "weights.pt")
    path = write_config(folder / "trial.yaml", {"model": {"pretrained": "weights.pt"}})
    return path, [f"model.pretrained: {folder / 'weights.pt'} does not fit the backbone: "]


def fds_bucket_start_outside(folder: Path) -> tuple[Path, list[str]]:
    fds = {"enabled": True, "bucket_start": 200}
    path = write_config(folder / "trial.yaml", {"imbalance": {"fds": fds}})
    return path, ["trial.yaml: imbalance.fds.bucket_start: must lie inside data.bins [0, 102)"]


def missing_rrt_checkpoint(folder: Path) -> tuple[Path, list[str]]:
    path = write_config(folder / "trial.yaml", {"train": {"rrt": {"checkpoint": "stage1"}}})
    return path, [f"train.rrt.checkpoint: {folder / 'stage1'} not found; give a stage-1"]


def unreadable_rrt_checkpoint(folder: Path) -> tuple[Path, list[str]]:
    (folder / "stage1").mkdir()
    (folder / "stage1" / "best_model.pt").write_text("not a checkpoint\n")
    path = write_config(folder / "trial.yaml", {"train": {"rrt": {"checkpoint": "stage1"}}})
    best = folder / "stage1" / "best_model.pt"
    return path, [f"{best}: not a readable dirsearch checkpoint"]


BAD_INPUTS: list[Callable[[Path], tuple[Path, list[str]]]] = [
    missing_config,
    unknown_key,
    missing_data_csv,
    tabular_text_target,
    csv_images_without_path_column,
    csv_images_missing_image,
    csv_images_text_target,
    unknown_arch,
    image_arch_for_vectors,
    pretrained_list,
    pretrained_text,
    pretrained_other_shapes,
    fds_bucket_start_outside,
    missing_rrt_checkpoint,
    unreadable_rrt_checkpoint,
]


@pytest.mark.parametrize("make", BAD_INPUTS, ids=[make.__name__ for make in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], tuple[Path, list[str]]],
) -> None:
    """The line names the config file first (errors found while training name the key, data
    file or checkpoint too), and the output folder the command created is removed again."""
    config_path, fragments = make(tmp_path)
    code, _, stderr = train(capsys, config_path, "--out", tmp_path / "out")
    assert code == 2
    assert_one_line_error(stderr, f"dirsearch: error: {config_path}: ", *fragments)
    assert not (tmp_path / "out").exists()


def test_bad_input_keeps_an_output_folder_it_did_not_create(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path, _ = missing_rrt_checkpoint(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    assert train(capsys, config_path, "--out", out)[0] == 2
    assert (out / "notes.txt").read_text() == "mine\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = write_config(tmp_path / "trial.yaml", {"train": {"device": "cuda"}})
    code, _, stderr = train(capsys, config_path, "--out", tmp_path / "out")
    assert code == 2
    assert_one_line_error(stderr, "train.device: cuda")


def test_diverging_run_exits_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    override = {"train": {"optimizer": "sgd", "lr": 1e6}}
    out = tmp_path / "out"
    code, _, stderr = train(capsys, write_config(tmp_path / "trial.yaml", override), "--out", out)
    assert code == 1
    assert_one_line_error(
        stderr, "dirsearch: training diverged at epoch 1, batch ", "try a lower train.lr"
    )
    assert not (out / "results.json").exists()
    assert not (out / "results.md").exists()


# ----- the installed command ----------------------------------------------------------------------


@pytest.mark.slow
def test_console_script_runs_a_trial(tmp_path: Path) -> None:
    """The real ``dirsearch`` executable next to this Python: exit codes, summary lines and table.

    One intra-op thread keeps it fast on busy CI cores (see test_trainer's ``one_thread``)."""
    command = Path(sys.executable).with_name("dirsearch")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    config_path = write_config(tmp_path / "trial.yaml")
    out = tmp_path / "out"

    def train() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [command, "train", config_path, "--out", out],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
            check=False,
        )

    done = train()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    summaries = [line for line in lines if EPOCH_LINE.fullmatch(line)]
    assert [line.split()[1] for line in summaries] == ["1/2", "2/2"]
    assert "best epoch" in done.stdout
    assert done.stdout.endswith((out / "results.md").read_text())
    assert "Traceback" not in done.stderr

    again = train()
    assert again.returncode == 2
    assert_one_line_error(again.stderr, "already holds a run")


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path: Path) -> None:
    """SIGINT during training: exit 130, one hint line with the resume command, no traceback,
    and the checkpoints written so far are complete."""
    command = Path(sys.executable).with_name("dirsearch")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    config_path = write_config(tmp_path / "trial.yaml", {"train": {"epochs": 400}})
    out = tmp_path / "out"
    process = subprocess.Popen(
        [command, "train", config_path, "--out", out],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # A shell's background job inherits SIGINT ignored, and Python then never raises
        # KeyboardInterrupt: give the child the terminal's default, as a user at a prompt has.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not list((out / "checkpoints").glob("epoch_*/state.pt")):  # a complete folder
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 2 minutes"
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        f"dirsearch: interrupted; continue with: dirsearch train {config_path} --out {out} --resume"
    )
    folders = sorted((out / "checkpoints").glob("epoch_*"))
    assert 0 < int(folders[-1].name.removeprefix("epoch_")) < 400
    complete = [folder for folder in folders if (folder / "state.pt").is_file()]
    assert complete and all((folder / "best_model.pt").is_file() for folder in complete)
