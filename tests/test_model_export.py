"""The winner's model as MLflow logs it: a pt2 program (no pickle) that predicts from raw inputs
(a table's raw feature rows, uint8 images), logged as the parent run's LoggedModel.

Weights are freshly initialised, not trained: what is checked is that the exported program
computes what evaluation computes, from what a user has, whatever the weights are.
"""

from __future__ import annotations

import csv
from pathlib import Path

import mlflow.pytorch
import numpy as np
import pytest
import torch
from mlflow.models import Model
from mlflow.tracking import MlflowClient
from trial_helpers import FDS_LDS, IMAGES, make_config, merged

from dirsearch.config.files import trial_config_from_dict
from dirsearch.config.trial import TrialConfig
from dirsearch.tracking import store
from dirsearch.tracking.logged_model import LoggedModelUpload
from dirsearch.tracking.model_export import evaluate_best, on_cpu, save_mlflow_model
from dirsearch.tracking.run_layout import RunLayout
from dirsearch.tracking.run_map import RunMap
from dirsearch.tracking.write_queue import WriteQueue
from dirsearch.train.evaluator import Evaluator
from dirsearch.train.model_setup import set_up

FEATURES = ("height", "dose", "flag")


@pytest.fixture(autouse=True)
def no_pickles(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow refuses to unpickle anything: a model that needs a pickle fails to load."""
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")


def write_table(path: Path) -> Path:
    """Features far from standardised (an offset of 1000, a scale of 1e-3, a constant), so a
    model fed raw rows without the training standardisation predicts something else."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(600):
        age = int(rng.integers(0, 20))
        split = "train" if index < 400 else "val" if index < 500 else "test"
        height = 1000 + 40 * age + rng.normal(0, 5)
        dose = 1e-3 * (age - 10) + rng.normal(0, 1e-4)
        rows.append([repr(height), repr(dose), "7", str(age), split])
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*FEATURES, "age", "split"])
        writer.writerows(rows)
    return path


def raw_rows(path: Path, split: str) -> np.ndarray:
    """A split's feature rows as a user has them: the CSV's numbers, float64."""
    with path.open(newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["split"] == split]
    return np.array([[float(row[name]) for name in FEATURES] for row in rows])


def input_spec(folder: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """The dtype and shape the model's signature asks for (-1: any batch size)."""
    (spec,) = Model.load(str(folder)).signature.inputs.inputs
    return spec.type, tuple(spec.shape)


def table_config(tmp_path: Path, *overrides: dict) -> TrialConfig:
    csv_path = str(write_table(tmp_path / "table.csv"))
    mapping: dict = {
        "data": {
            "name": "tabular",
            "csv": csv_path,
            "bins": {"start": 0, "width": 1, "count": 20},
        },
        "model": {"arch": "mlp", "mlp_hidden": [16, 16]},
        "train": {"device": "cpu"},
        "imbalance": {"shots": {"many": 15, "few": 5}},
    }
    for override in overrides:
        mapping = merged(mapping, override)
    return trial_config_from_dict(mapping, "table.yaml", tmp_path)


def exported(config: TrialConfig, folder: Path) -> tuple[Path, np.ndarray]:
    """The config's model with fresh weights as the sweep exports it, and the test split's
    predictions by the evaluator (the standardised pipeline the sweep scores)."""
    setup = set_up(on_cpu(config))
    (folder / "seed_0").mkdir(parents=True)
    torch.save(setup.model.state_dict(), folder / "seed_0" / "best_model.pt")
    best = evaluate_best(config, folder / "seed_0")
    expected = Evaluator(set_up(on_cpu(config)), config.imbalance.shots)
    expected.setup.load_best_weights(folder / "seed_0")
    model = save_mlflow_model(best, folder / "model")
    return model, expected.predict(expected.setup.data.test)


@pytest.mark.usefixtures("one_thread")
def test_the_model_needs_no_pickle_and_predicts_from_raw_feature_rows(tmp_path: Path) -> None:
    config = table_config(tmp_path, FDS_LDS)
    folder, expected = exported(config, tmp_path / "out")
    assert (folder / "data" / "model.pt2").is_file()
    assert not list(folder.rglob("*.pth"))
    model = mlflow.pytorch.load_model(str(folder))
    raw = raw_rows(tmp_path / "table.csv", "test")
    assert len(raw) == len(expected) == 100  # not the example's 4 rows: the batch is dynamic
    with torch.no_grad():
        preds = model(torch.from_numpy(raw)).numpy()
    np.testing.assert_allclose(preds, expected, rtol=1e-5, atol=1e-5)
    # The same through pyfunc, from a DataFrame of the CSV's columns.
    import pandas as pd

    frame = pd.DataFrame(raw, columns=list(FEATURES))
    served = mlflow.pyfunc.load_model(str(folder)).predict(frame)
    np.testing.assert_allclose(np.asarray(served).ravel(), expected, rtol=1e-5, atol=1e-5)
    assert input_spec(folder) == (np.dtype("float64"), (-1, 3))
    assert "raw feature rows" in Model.load(str(folder)).metadata["dirsearch.input"]


@pytest.mark.usefixtures("one_thread")
def test_an_image_model_takes_uint8_images_at_the_training_size(tmp_path: Path) -> None:
    config = make_config(IMAGES)
    folder, expected = exported(config, tmp_path / "out")
    model = mlflow.pytorch.load_model(str(folder))
    test = set_up(on_cpu(config)).data.test
    images, _ = test.dataset.__getitems__(list(range(len(test.dataset))))
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 16, 16)
    with torch.no_grad():
        preds = model(images).numpy()
    np.testing.assert_allclose(preds, expected, rtol=1e-5, atol=1e-4)
    assert input_spec(folder) == (np.dtype("uint8"), (-1, 3, 16, 16))


def sweep_store(tmp_path: Path) -> tuple[str, RunLayout]:
    """A sqlite store with an experiment and a parent run, and the layout of its sweep folder."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = store.connect(uri)
    experiment = client.create_experiment("e", artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(experiment).info.run_id
    folder = tmp_path / "sweep"
    folder.mkdir()
    RunMap(uri, experiment, parent).save(str(folder))
    return uri, RunLayout(None, str(folder))  # type: ignore[arg-type]  # no child runs here


@pytest.mark.usefixtures("one_thread")
def test_the_model_is_a_logged_model_of_the_parent_run_made_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config()
    folder, expected = exported(config, tmp_path / "out")
    uri, layout = sweep_store(tmp_path)
    client, parent = layout.client, layout.runs.parent
    upload = client.log_model_artifacts
    calls = []

    def flaky(*args, **kwargs):  # the store goes away during the first upload
        calls.append(args)
        if len(calls) == 1:
            raise OSError("connection reset")
        return upload(*args, **kwargs)

    monkeypatch.setattr(client, "log_model_artifacts", flaky)
    queue = WriteQueue(retry_s=0.01, classify=store.classify)
    queue.submit(LoggedModelUpload(layout, folder, "model", {"train.lr": "0.001"}, {"k": "v"}))
    assert queue.flush(wait_s=30) == 0 and len(calls) == 2
    # A finish run again (after a resume) reuses the model instead of making a second one.
    queue.submit(LoggedModelUpload(layout, folder, "model", {"train.lr": "0.001"}, {"k": "v"}))
    assert queue.flush(wait_s=30) == 0

    models = MlflowClient(uri).search_logged_models([layout.runs.experiment_id])
    assert [(m.name, m.source_run_id, str(m.status)) for m in models] == [
        ("model", parent, "READY")
    ]
    assert models[0].params == {"train.lr": "0.001"} and models[0].tags["k"] == "v"
    outputs = MlflowClient(uri).get_run(parent).outputs.model_outputs
    assert [output.model_id for output in outputs] == [models[0].model_id]
    # MLflow resolves the model of runs:/ (and models:/) through the process's tracking URI.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"runs:/{parent}/model", dst_path=str(tmp_path / "down")
    )
    assert f"model_id: {models[0].model_id}" in (Path(local) / "MLmodel").read_text()
    model = mlflow.pytorch.load_model(local)
    test = set_up(on_cpu(config)).data.test
    inputs, _ = test.dataset.__getitems__(list(range(len(test.dataset))))
    with torch.no_grad():
        preds = model(inputs.to(torch.float64)).numpy()
    np.testing.assert_allclose(preds, expected, rtol=1e-5, atol=1e-5)
