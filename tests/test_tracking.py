"""MLflow tracking of a real tiny sweep (real Ray, real Optuna, a real ``mlflow server``).

One sweep runs once per module through ``dirsearch run --tracking-uri http://...`` against a real
``mlflow server`` whose access log counts the HTTP requests the driver sends; what the command
prints is kept beside the sweep folder (``stdout.txt``).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import ray
from mlflow.tracking import MlflowClient

from dirsearch.cli.main import main
from dirsearch.config.trial import TrialConfig
from dirsearch.sweep.folder import RUN_MAP_FILE, TABLE_FILES, load_spec, read_text
from dirsearch.sweep.leaderboard import ranked
from dirsearch.sweep.records import read_trials
from dirsearch.tracking.run_description import sweep_description
from dirsearch.tracking.run_layout import best_metric, flat_params
from dirsearch.tracking.run_map import RunMap
from dirsearch.tracking.runs_page import runs_page
from dirsearch.tracking.server import free_port, start_server, stop_server, wait_ready

TINY_SPACE = """\
experiment: tiny
data: {name: synthetic, kind: tabular, scale: 0.05}
model: {arch: mlp, mlp_hidden: [32, 32]}
train: {epochs: 4, batch_size: 64, device: cpu}
imbalance:
  shots: {many: 10, few: 3}
search:
  num_samples: 5
  max_concurrent: 2
  scheduler: {name: asha, grace_period: 1, reduction_factor: 2}
  points:
    - {imbalance.reweight: none}
space:
  imbalance.reweight: {choice: [none, sqrt_inv]}
  imbalance.lds.enabled: {choice: [false, true], when: {imbalance.reweight: sqrt_inv}}
  imbalance.lds.sigma: {loguniform: [0.5, 4.0], when: imbalance.lds.enabled}
  train.lr: {loguniform: [1.0e-3, 1.0e-2]}
"""
EPOCH_METRICS = {
    "train/loss",
    "train/samples_per_s",
    "time/train_s",
    "time/fds_pass_s",
    "time/epoch_s",
    "lr",
    *(f"val/{r}/{s}" for r in ("all", "many", "medium", "few") for s in ("mae", "mse", "gm")),
    "best/val/few/mae",
}
TEST_METRICS = {
    f"test/{r}/{s}" for r in ("all", "many", "medium", "few") for s in ("mae", "mse", "gm")
}
REQUEST = re.compile(r'"(GET|POST|PATCH|DELETE) (/[^ ?"]*)')


@pytest.fixture(scope="module")
def local_ray():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real ``mlflow server`` on a free port, its access log in a file."""
    root = tmp_path_factory.mktemp("server")
    port = free_port()
    log = root / "access.log"
    process = start_server(
        f"sqlite:///{root}/mlflow.db", port, artifacts=str(root / "artifacts"), log=log
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(process, url)
    yield url, log
    stop_server(process)


def requests(log: Path) -> Counter:
    return Counter(m.group(2) for m in REQUEST.finditer(log.read_text(errors="replace")))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, local_ray, server):
    """The tiny sweep tracked by the server: (folder, client, requests the driver sent)."""
    url, log = server
    root = tmp_path_factory.mktemp("sweep")
    space = root / "tiny.yaml"
    space.write_text(TINY_SPACE)
    before = requests(log)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(
            ["run", str(space), "--storage", str(root), "--name", "s", "--tracking-uri", url]
        )
    (root / "stdout.txt").write_text(printed.getvalue())
    assert code == 0
    return str(root / "s"), MlflowClient(url), requests(log) - before


def children(client: MlflowClient, runs: RunMap):
    """The parent's child runs: one per trial of the map (never an empty loop in a test)."""
    kids = client.search_runs(
        [runs.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{runs.parent}'"
    )
    assert len(kids) == len(runs.trials) > 0
    return kids


@pytest.mark.slow
def test_one_parent_run_with_one_named_child_per_trial(sweep):
    folder, client, _ = sweep
    runs = RunMap.load(folder)
    spec = load_spec(folder)
    records = {record.trial_id: record for record in read_trials(folder)}
    everything = client.search_runs([runs.experiment_id])
    assert len(everything) == len(records) + 1  # nothing duplicated, nothing stray
    parent = client.get_run(runs.parent)
    assert parent.info.run_name == "s" and parent.info.status == "FINISHED"
    kids = children(client, runs)
    assert sorted(run.data.tags["dirsearch.trial_id"] for run in kids) == sorted(records)
    for run in kids:
        record = records[run.data.tags["dirsearch.trial_id"]]
        sampled = ", ".join(f"{k.split('.', 1)[1]}=" for k in record.overrides)
        assert run.info.run_name.startswith(f"trial {record.number}: ")
        assert all(part in run.info.run_name for part in sampled.split(", "))
        expected = record.status(spec.epochs)
        assert run.data.tags["status"] == expected
        assert run.info.status == "FINISHED"
        assert run.data.tags["seed"] == "0"


@pytest.mark.slow
def test_children_log_the_trainer_metrics_per_epoch_and_nothing_of_ray(sweep):
    folder, client, _ = sweep
    runs = RunMap.load(folder)
    records = {record.trial_id: record for record in read_trials(folder)}
    for run in children(client, runs):
        record = records[run.data.tags["dirsearch.trial_id"]]
        assert set(run.data.metrics) - TEST_METRICS == EPOCH_METRICS
        history = client.get_metric_history(run.info.run_id, "val/few/mae")
        assert [(m.step, m.value) for m in history] == [
            (row["epoch"], row["val/few/mae"]) for row in record.history
        ]


@pytest.mark.slow
def test_children_params_are_the_resolved_trial_config(sweep):
    folder, client, _ = sweep
    runs, spec = RunMap.load(folder), load_spec(folder)
    records = {record.trial_id: record for record in read_trials(folder)}
    for run in children(client, runs):
        config = spec.trial_config(records[run.data.tags["dirsearch.trial_id"]].overrides)
        assert run.data.params == flat_params(config.to_dict())
    assert run.data.params["imbalance.lds.sigma"] == str(config.imbalance.lds.sigma)
    assert len(run.data.params) > len(flat_params(TrialConfig().to_dict()["train"]))


@pytest.mark.slow
def test_one_batched_request_per_result(sweep):
    """Per result exactly one log-batch; the other log-batch calls are one per trial for its
    params and one for its final status, and two at the end (test metrics on parent and
    best child)."""
    folder, _, sent = sweep
    records = read_trials(folder)
    results = sum(len(record.history) for record in records)
    assert sent["/api/2.0/mlflow/runs/log-batch"] == results + 2 * len(records) + 2
    assert sent["/api/2.0/mlflow/runs/log-metric"] == 0
    assert sent["/api/2.0/mlflow/runs/create"] == len(records) + 1  # + the parent
    print(f"requests of a {results}-result sweep: {dict(sent)}")


@pytest.mark.slow
def test_parent_holds_the_sweep_files_test_table_and_versions(sweep):
    folder, client, _ = sweep
    runs = RunMap.load(folder)
    parent = client.get_run(runs.parent)
    artifacts = {a.path for a in client.list_artifacts(runs.parent)}
    assert {"space.yaml", "fixed_config.yaml", "leaderboard.md", "results.csv"} <= artifacts
    table = {
        f"test/{row['region']}/{row['metric']}": float(row["mean"])
        for row in _csv_rows(read_text(f"{folder}/results.csv"))
    }
    assert set(parent.data.metrics) == TEST_METRICS
    for key in TEST_METRICS:
        assert parent.data.metrics[key] == pytest.approx(table[key])
    best = [run for run in children(client, runs) if run.data.tags.get("dirsearch.best")]
    assert len(best) == 1
    assert best[0].data.metrics["test/few/mae"] == parent.data.metrics["test/few/mae"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert parent.data.tags["git.commit"].startswith(head.strip())
    assert parent.data.tags["version.mlflow"].startswith("3.")
    assert read_text(f"{folder}/{RUN_MAP_FILE}") is not None


@pytest.mark.slow
def test_children_log_the_best_objective_so_far_which_sorts_them_as_the_leaderboard(sweep):
    """MLflow sorts runs by a metric's last value; ``best/val/few/mae`` ends at the trial's
    best, so the UI's order (``runs_page``) is the leaderboard's."""
    folder, client, _ = sweep
    runs, spec = RunMap.load(folder), load_spec(folder)
    objective, mode = spec.search.objective, spec.search.objective_mode
    records = {record.trial_id: record for record in read_trials(folder)}
    for run in children(client, runs):
        record = records[run.data.tags["dirsearch.trial_id"]]
        history = client.get_metric_history(run.info.run_id, best_metric(objective))
        values = [row[objective] for row in record.history]
        running = [min(values[: k + 1]) for k in range(len(values))]
        assert [(m.step, m.value) for m in history] == [
            (row["epoch"], best) for row, best in zip(record.history, running, strict=True)
        ]
    order = f"metrics.`{best_metric(objective)}` {'ASC' if mode == 'min' else 'DESC'}"
    sorted_runs = client.search_runs(
        [runs.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{runs.parent}'",
        order_by=[order],
    )
    leaderboard = ranked(records.values(), objective, mode)
    assert [run.data.tags["dirsearch.trial_id"] for run in sorted_runs] == [
        record.trial_id for record in leaderboard
    ]


@pytest.mark.slow
def test_parent_description_sums_up_the_sweep_folder_tables(sweep):
    folder, client, _ = sweep
    runs = RunMap.load(folder)
    note = client.get_run(runs.parent).data.tags["mlflow.note.content"]
    texts = {name: read_text(f"{folder}/{name}") for name in TABLE_FILES}
    assert note == sweep_description(texts)
    assert note.startswith("## Winner\n\nbest trial ")
    assert read_text(f"{folder}/results.md").strip() in note


@pytest.mark.slow
def test_run_ends_with_the_runs_page_of_the_tracking_server(sweep, server):
    folder, _, _ = sweep
    url, _ = server
    page = runs_page(url, RunMap.load(folder).experiment_id, load_spec(folder).search)
    printed = (Path(folder).parent / "stdout.txt").read_text()
    assert f"compare the trials in MLflow at: {page}\n" in printed


def test_unreachable_server_is_a_one_line_error_before_the_sweep_starts(tmp_path, capsys):
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    uri = f"http://127.0.0.1:{free_port()}"
    code = main(
        ["run", str(space), "--storage", str(tmp_path), "--name", "s", "--tracking-uri", uri]
    )
    assert code == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and uri in errors[0] and "cannot be reached" in errors[0]
    assert not (tmp_path / "s" / "sweep.json").exists()


def _csv_rows(text: str | None) -> list[dict[str, str]]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(text or "")))


PLOT_FILES = {"label_density.png", "per_bin_test_mae.png", "best_so_far.png", "few_vs_all_mae.png"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (the first chunk after the signature)."""
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.slow
def test_parent_holds_each_plot_as_a_readable_png(sweep, tmp_path):
    folder, client, _ = sweep
    runs = RunMap.load(folder)
    listed = {Path(a.path).name for a in client.list_artifacts(runs.parent, "plots")}
    assert listed == PLOT_FILES
    local = Path(client.download_artifacts(runs.parent, "plots", str(tmp_path)))
    for name in PLOT_FILES:
        data = (local / name).read_bytes()
        width, height = png_size(data)
        assert 600 <= width <= 2000 and 350 <= height <= 1500, (name, width, height)
        assert len(data) > 15_000, (name, len(data))  # drawn on: empty axes are ~10 KB
        assert data == (Path(folder) / "plots" / name).read_bytes()  # the sweep folder's copy


@pytest.mark.slow
def test_best_model_loads_and_reproduces_the_logged_test_mae(sweep, server, tmp_path, monkeypatch):
    import mlflow.pytorch
    import numpy as np
    import torch
    import yaml

    from dirsearch.config.files import trial_config_from_dict
    from dirsearch.train.datasets import load_data

    folder, client, _ = sweep
    runs = RunMap.load(folder)
    # The parent run's LoggedModel, which MLflow resolves through the process's tracking URI;
    # loading it must need no pickle.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server[0])
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    (model_info,) = client.search_logged_models([runs.experiment_id])
    assert (model_info.name, model_info.source_run_id) == ("model", runs.parent)
    local = Path(client.download_artifacts(runs.parent, "model", str(tmp_path)))
    model = mlflow.pytorch.load_model(str(local))
    config = trial_config_from_dict(
        yaml.safe_load((local / "trial_config.yaml").read_text()), "trial_config.yaml", tmp_path
    )
    best = next(r for r in children(client, runs) if r.data.tags.get("dirsearch.best"))
    record = next(
        r for r in read_trials(folder) if r.trial_id == best.data.tags["dirsearch.trial_id"]
    )
    assert config == load_spec(folder).trial_config(record.overrides)
    test = load_data(config.data).test
    inputs, _ = test.dataset.__getitems__(list(range(len(test.dataset))))
    with torch.no_grad():  # a table's raw feature rows, as float64 (a DataFrame's numbers)
        preds = model(inputs.to(torch.float64)).numpy()
    mae = float(np.mean(np.abs(preds - test.targets)))
    assert mae == pytest.approx(client.get_run(runs.parent).data.metrics["test/all/mae"], rel=1e-5)
    assert "signature" in (local / "MLmodel").read_text()
    assert (local / "input_example.json").is_file()
