"""A sweep or train folder survives crashes and neighbours: files are replaced whole, a torn
file is one error line (or, for a trial's results, a warning), one process at a time writes a
folder, and the project's own state is JSON that loading cannot turn into code.

The two-processes-at-once race itself, with real sweeps, is in tests/test_shared_machine.py.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from sweep_helpers import TINY_SWEEP, write_space
from trial_helpers import TABULAR

from dirsearch.cli.main import main
from dirsearch.errors import ConfigError
from dirsearch.sweep.folder import SPEC_FILE, load_spec, read_text, write_text
from dirsearch.sweep.folder_lock import LOCK_FILE, locked_folder, locked_sweep_folder
from dirsearch.sweep.records import read_trials
from dirsearch.sweep.spec_reader import load_sweep_spec
from dirsearch.tune.search.point_searcher import PointSearcher


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_write_text_replaces_the_file_whole(tmp_path: Path) -> None:
    """A reader (or a crash) sees the old file or the new one: the new one is a new file
    renamed over the old, nothing is left beside it, and its permissions are open()'s."""
    target = tmp_path / "folder" / "sweep.json"
    write_text(str(target), "old")
    before = target.stat().st_ino
    write_text(str(target), "new")
    assert target.read_text() == "new"
    assert target.stat().st_ino != before  # renamed over, not truncated and rewritten
    assert [p.name for p in target.parent.iterdir()] == ["sweep.json"]
    umask = os.umask(0o022)
    try:
        write_text(str(target), "again")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_write_that_fails_halfway_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "leaderboard.md"
    write_text(str(target), "old")
    with pytest.raises(UnicodeEncodeError):  # fails after the file was opened for writing
        write_text(str(target), "\ud800")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["leaderboard.md"]


def test_train_writes_its_config_and_results_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dirsearch.cli.train_verb as train_verb

    written: list[str] = []
    atomic = train_verb.write_atomically

    def recorded(path: Path, data: bytes) -> None:
        written.append(Path(path).name)
        atomic(path, data)

    monkeypatch.setattr(train_verb, "write_atomically", recorded)
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump(TABULAR))
    out = tmp_path / "out"
    assert main(["train", str(config), "--out", str(out)]) == 0
    capsys.readouterr()
    assert written == ["config.yaml", "results.md", "results.json"]
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoints",
        "config.yaml",
        "results.json",
        "results.md",
    ]


def sweep_folder(tmp_path: Path) -> tuple[Path, str]:
    """A folder with the sweep.json of TINY_SWEEP (no trials), and that file's text."""
    spec = load_sweep_spec(write_space(tmp_path, TINY_SWEEP))
    folder = tmp_path / "runs" / "tiny"
    folder.mkdir(parents=True)
    text = json.dumps(spec.to_dict(), indent=2)
    (folder / SPEC_FILE).write_text(text)
    return folder, text


@pytest.mark.parametrize(
    "damage",
    ["torn", "not utf-8", "deeply nested", "a list", "a missing key"],
)
def test_a_torn_sweep_json_is_one_line_for_report_and_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    folder, text = sweep_folder(tmp_path)
    broken = {
        "torn": text[: len(text) // 2].encode(),
        "not utf-8": text.encode()[:100] + b"\xff\xfe",
        "deeply nested": b"[" * 100_000,
        "a list": b"[]",
        "a missing key": text.replace('"fixed"', '"fixd"').encode(),
    }[damage]
    (folder / SPEC_FILE).write_bytes(broken)
    for verb in ("report", "resume"):
        assert main([verb, str(folder)]) == 2, verb
        (line,) = error_lines(capsys)
        assert line.startswith(f"dirsearch: error: {folder}/{SPEC_FILE}: unreadable ("), line
        assert line.endswith("the sweep in this folder cannot be read"), line
        assert len(line) < 400


def test_load_spec_reads_what_the_sweep_wrote(tmp_path: Path) -> None:
    folder, _ = sweep_folder(tmp_path)
    assert load_spec(str(folder)).experiment == "tiny"


def write_trial(folder: Path, name: str, params: str, lines: list[str]) -> None:
    trial = folder / name
    trial.mkdir()
    (trial / "params.json").write_text(params)
    (trial / "result.json").write_text("".join(f"{line}\n" for line in lines))


def report_row(epoch: int, mae: float) -> str:
    metrics = {f"val/{region}/mae": mae for region in ("all", "many", "medium", "few")}
    return json.dumps({"epoch": epoch, "training_iteration": epoch, **metrics})


def test_report_skips_a_torn_result_line_and_stray_folders_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = sweep_folder(tmp_path)
    lines = [report_row(1, 9.0), report_row(2, 8.0), report_row(3, 7.0)[:25]]
    write_trial(folder, "trial_0001_aaaa", '{"train.lr": 0.001}', lines)
    write_trial(folder, "trial_0002_bbbb", '{"train.lr": 0.0', [report_row(1, 5.0)])
    (folder / "trial_x").mkdir()
    (folder / "trial_notanumber_cccc").mkdir()
    records = read_trials(str(folder))
    assert [(r.number, r.epochs) for r in records] == [(1, 2)]
    capsys.readouterr()
    assert main(["report", str(folder)]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.splitlines()
    assert all(line.startswith("dirsearch: warning: ") for line in warnings), warnings
    assert sorted(warnings) == sorted(
        [
            f"dirsearch: warning: {folder}/trial_0001_aaaa/result.json: the last line is not a "
            "JSON object (cut short by a crash?); skipped",
            f"dirsearch: warning: {folder}/trial_0002_bbbb/params.json: not a JSON object; "
            "trial 2 skipped",
            f"dirsearch: warning: {folder}/trial_x: not a trial folder (trial_<number>_<id>); "
            "skipped",
            f"dirsearch: warning: {folder}/trial_notanumber_cccc: not a trial folder "
            "(trial_<number>_<id>); skipped",
        ]
    )
    assert "| 1 | 1 | stopped at epoch 2 | 2 | 2 | 0.001 | 8.000 |" in captured.out


def test_the_grid_searchers_state_is_json_and_never_unpickled(tmp_path: Path) -> None:
    points: list[dict[str, Any]] = [{"imbalance.reweight": "none"}, {"train.loss": {"name": "l1"}}]
    searcher = PointSearcher(points)
    searcher.suggest("a")
    state = tmp_path / "searcher-state.pkl"
    searcher.save(str(state))
    assert json.loads(state.read_text()) == {"points": points, "next_index": 1}
    restored = PointSearcher([])
    restored.restore(str(state))
    assert (restored.points, restored.next_index) == (points, 1)

    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (marker.touch, ())

    state.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ConfigError, match=r"searcher-state\.pkl: not a saved point list"):
        restored.restore(str(state))
    assert not marker.exists()


def refusal(holder: str) -> str:
    return f"busy: {holder}"


def test_a_folder_lock_says_who_holds_it_and_is_gone_after(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    with locked_folder(folder, "dirsearch train", refusal):
        with pytest.raises(ConfigError) as error, locked_folder(folder, "dirsearch run", refusal):
            pass
        message = str(error.value)
        assert message.startswith(f"busy: in use by pid {os.getpid()} on {socket.gethostname()} ")
        assert message.endswith(" (dirsearch train)")
        assert (folder / LOCK_FILE).is_file()
    assert list(folder.iterdir()) == []  # the lock file goes with the lock
    with locked_folder(folder, "dirsearch run", refusal):  # free again
        pass


def test_an_object_store_folder_has_no_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where a URI taken for a relative path would end up
    first = locked_sweep_folder("s3://bucket/sweeps/x", "dirsearch run", refusal)
    second = locked_sweep_folder("s3://bucket/sweeps/x", "dirsearch run", refusal)
    with first, second:
        pass  # nothing to lock there: no error, and no file written anywhere
    assert list(tmp_path.iterdir()) == []


def test_resume_of_a_sweep_another_process_runs_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = sweep_folder(tmp_path)
    with locked_sweep_folder(str(folder), "dirsearch run", refusal):
        assert main(["resume", str(folder)]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith(f"dirsearch: error: {folder}: the sweep is in use by pid {os.getpid()}")
    assert line.endswith("(dirsearch run); one process at a time can run it")


def test_run_into_a_folder_another_run_is_creating_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The folder is still empty (the other run has not written sweep.json yet): refused as a
    folder that holds a sweep."""
    space = write_space(tmp_path, TINY_SWEEP)
    folder = tmp_path / "runs" / "x"
    with locked_sweep_folder(str(folder), "dirsearch run", refusal):
        arguments = ["run", str(space), "--storage", str(tmp_path / "runs"), "--name", "x"]
        assert main(arguments) == 2
    (line,) = error_lines(capsys)
    assert line.startswith(f"dirsearch: error: {folder}: already holds a sweep, in use by pid")
    assert line.endswith("(dirsearch run); start a new one with another --name")


def test_train_into_a_folder_another_train_writes_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump(TABULAR))
    out = tmp_path / "out"
    with locked_folder(out, "dirsearch train", refusal):
        assert main(["train", str(config), "--out", str(out)]) == 2
        assert [p.name for p in out.iterdir()] == [LOCK_FILE]  # nothing written, nothing removed
    (line,) = error_lines(capsys)
    assert line.startswith(f"dirsearch: error: {config}: {out} is in use by pid {os.getpid()}")
    assert line.endswith("(dirsearch train); wait for it or pass another --out")


def test_a_refused_train_leaves_no_folder_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump(TABULAR))
    out = tmp_path / "fresh"
    assert main(["train", str(config), "--out", str(out), "--resume"]) == 2
    assert "holds no checkpoint to resume from" in capsys.readouterr().err
    assert not out.exists()


def test_read_text_of_a_cut_character_can_be_replaced(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    target.write_bytes('{"a": "é"}'.encode()[:-3])
    assert read_text(str(target), errors="replace") == '{"a": "\ufffd'
