"""What a cluster leaves in a sweep folder is read right: a trial Ray retried after losing its
node is one completed trial with each epoch once (the re-run kept), a trial whose last failure
came after its last result is errored; a --storage URI with query parameters is refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sweep_helpers import TINY_SWEEP, write_space

from dirsearch.cli.main import main
from dirsearch.sweep.records import read_trials

STAMP = "%Y-%m-%d_%H-%M-%S"


def trial_folder(root: Path, name: str, rows: list[tuple[int, float, int]], failed_at: int) -> None:
    """A trial folder as Ray Tune writes it: rows (training_iteration, metric, timestamp), and
    error.txt with one failure at ``failed_at`` (local time, to the second, as Tune has it)."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "params.json").write_text("{}")
    lines = [
        json.dumps({"training_iteration": i, "epoch": float(i), "m": m, "timestamp": t})
        for i, m, t in rows
    ]
    (folder / "result.json").write_text("\n".join(lines) + "\n")
    when = time.strftime(STAMP, time.localtime(failed_at))
    (folder / "error.txt").write_text(
        f"Failure # 1 (occurred at {when})\nThe actor is unavailable: RpcError\n"
    )


def test_a_retried_trial_is_one_completed_trial_with_each_epoch_once(tmp_path: Path) -> None:
    now = int(time.time())
    # Epoch 3 was reported, the node died before Ray had its checkpoint: epoch 3 ran again.
    rows = [
        (1, 5.0, now),
        (2, 4.0, now + 1),
        (3, 1.0, now + 2),
        (3, 3.0, now + 30),
        (4, 2.0, now + 31),
    ]
    trial_folder(tmp_path, "trial_0001_aaaa", rows, failed_at=now + 5)
    (record,) = read_trials(str(tmp_path))
    assert [row["epoch"] for row in record.history] == [1, 2, 3, 4]
    assert record.history[2]["m"] == 3.0  # the re-run, which training went on from
    assert record.status(max_epochs=4) == "completed"
    assert record.best("m", "min")["m"] == 2.0


def test_a_trial_that_failed_after_its_last_result_is_errored(tmp_path: Path) -> None:
    now = int(time.time())
    trial_folder(tmp_path, "trial_0001_bbbb", [(1, 5.0, now), (2, 4.0, now + 1)], now + 9)
    (record,) = read_trials(str(tmp_path))
    assert record.errored and record.status(max_epochs=4) == "errored"


def test_storage_with_query_parameters_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = write_space(tmp_path, TINY_SWEEP)
    storage = "s3://bucket/sweeps?endpoint_override=127.0.0.1:9000&scheme=http"
    assert main(["run", str(space), "--storage", storage]) == 2
    assert "AWS_ENDPOINT_URL" in capsys.readouterr().err
