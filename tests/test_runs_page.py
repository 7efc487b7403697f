"""The MLflow UI page of a sweep (``tracking.runs_page``): the model-training view, its trial
runs sorted by the best objective, and the page ``dirsearch ui`` prints for a store that is an
MLflow server already. The browser test (``test_ui_browser``) opens such a page for real."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from sweep_helpers import TINY_SWEEP, write_space
from trial_helpers import merged

from dirsearch.cli.main import main
from dirsearch.sweep.folder import SPEC_FILE, write_text
from dirsearch.sweep.settings import SearchSettings
from dirsearch.sweep.spec_reader import load_sweep_spec
from dirsearch.tracking.run_map import RunMap
from dirsearch.tracking.runs_page import runs_page, served_runs_page


def route_and_query(page: str) -> tuple[str, dict[str, str]]:
    """The UI's route (after ``#``) and its query, decoded as the browser decodes them."""
    route, _, query = urlsplit(page).fragment.partition("?")
    return route, dict(parse_qsl(query))


def test_the_page_is_the_model_training_view_sorted_by_the_best_objective() -> None:
    page = runs_page("http://127.0.0.1:5000/", "7", SearchSettings(metric="val/few/mae"))
    assert page == (
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
        "&orderByKey=metrics.%60best%2Fval%2Ffew%2Fmae%60&orderByAsc=true"
    )
    assert route_and_query(page) == (
        "/experiments/7/runs",
        {
            "workflowType": "machine_learning",
            "orderByKey": "metrics.`best/val/few/mae`",
            "orderByAsc": "true",
        },
    )


def test_mode_max_sorts_descending_by_the_first_objective() -> None:
    search = SearchSettings(metric=("val/all/gm", "val/few/mae"), mode=("max", "min"))
    _, query = route_and_query(runs_page("http://h:1", "2", search))
    assert query["orderByKey"] == "metrics.`best/val/all/gm`"
    assert query["orderByAsc"] == "false"


def test_a_server_store_gives_its_page_without_credentials() -> None:
    runs = RunMap("https://alice:secret@mlflow.example.org/team/?token=abc", "3", "parent")
    page = served_runs_page(runs, SearchSettings())
    assert page == runs_page("https://mlflow.example.org/team/", "3", SearchSettings())
    assert not any(secret in page for secret in ("alice", "secret", "abc"))
    sqlite = RunMap("sqlite:////tmp/sweep/mlflow.db", "3", "parent")
    assert served_runs_page(sqlite, SearchSettings()) is None  # `dirsearch ui` serves it


def test_ui_on_a_sweep_tracked_by_a_server_prints_its_page_and_serves_nothing(
    tmp_path: Path, capsys
) -> None:
    """No server answers on port 1: the command would fail if it connected or served."""
    space = write_space(tmp_path, merged(TINY_SWEEP, {"search": {"mode": "max"}}))
    spec = load_sweep_spec(space)
    folder = tmp_path / "sweep"
    write_text(f"{folder}/{SPEC_FILE}", json.dumps(spec.to_dict()))
    RunMap("http://127.0.0.1:1", "5", "parent").save(str(folder))
    assert main(["ui", str(folder)]) == 0
    page = runs_page("http://127.0.0.1:1", "5", spec.search)
    assert capsys.readouterr().out == f"that store is a server already: open {page}\n"
    assert route_and_query(page)[1]["orderByAsc"] == "false"
