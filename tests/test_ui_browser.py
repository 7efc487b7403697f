"""End to end in a real browser: a tiny sweep, ``dirsearch ui`` on its folder, and headless
Chromium (Debian's ``chromium`` and ``chromium-driver``, installed by ``.ci/run``) driven by
Selenium: the page ``dirsearch ui`` prints is MLflow's model-training view with the trial runs
in the leaderboard's order, and the sweep's run page shows the sweep's summary.

One sweep, one ``dirsearch ui`` and one browser serve the module. With
``DIRSEARCH_SCREENSHOTS=docs`` the sorted runs view is also saved as
``docs/mlflow_ui_sweep.png``, the README's picture:

    DIRSEARCH_SCREENSHOTS=docs .venv/bin/python -m pytest tests/test_ui_browser.py -m slow
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sweep_helpers import TINY_SWEEP, cli, write_space
from test_ui import lines_of
from trial_helpers import merged

from dirsearch.sweep.folder import LEADERBOARD_CSV, RESULTS_MD, load_spec, read_text
from dirsearch.tracking.run_layout import best_metric
from dirsearch.tracking.run_map import RunMap
from dirsearch.tracking.server import free_port

webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver"
)
SCREENSHOTS = os.environ.get("DIRSEARCH_SCREENSHOTS")
"""A folder to save the sorted runs view in as ``mlflow_ui_sweep.png`` (``docs``: the README's)."""
# MLflow 3.17's runs page, as its elements are named:
ROW = "[role=row][row-id]"
"""A row of the runs table; ``row-id`` is the run id, ``row-index`` its place on screen."""
COLUMNS = "button[data-component-id*=experimentviewrunscolumnselector]"
CLOSE_ASSISTANT = "button[data-component-id='mlflow.assistant.chat_panel.close']"
GENAI_ONLY = {"Training runs", "Evaluation runs", "Judges", "Sessions"}
"""Sidebar entries of the GenAI view (traces, judges), none of them in the model-training view."""
MODEL_TRAINING_ONLY = "Model registry"


def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1600,900")
    options.binary_location = CHROMIUM
    return webdriver.Chrome(options=options, service=Service(DRIVER))


def body_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def wait_until(condition, what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> str:
    """A finished tiny sweep (three trials, one stopped by ASHA) in its own sqlite store."""
    root = tmp_path_factory.mktemp("browser")
    space = write_space(
        root, merged(TINY_SWEEP, {"train": {"epochs": 2}, "search": {"num_samples": 3}})
    )
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(
        cli("run", str(space), "--storage", str(root / "runs"), "--name", "demo"),
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return str(root / "runs" / "demo")


@pytest.fixture(scope="module")
def ui_page(sweep: str) -> Iterator[str]:
    """The page ``dirsearch ui`` prints, served until the module's tests are done."""
    ui = subprocess.Popen(
        cli("ui", sweep, "--port", str(free_port())),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield lines_of(ui).get(timeout=240).removeprefix("MLflow UI: ")
    finally:
        ui.send_signal(signal.SIGINT)
        ui.wait(timeout=60)


@pytest.fixture(scope="module")
def driver() -> Iterator:
    chromium = browser()
    yield chromium
    chromium.quit()


def leaderboard(folder: str) -> list[tuple[str, float]]:
    """(child run id, objective) per leaderboard row, best first."""
    runs, spec = RunMap.load(folder), load_spec(folder)
    run_of = {
        run.data.tags["dirsearch.trial_number"]: run.info.run_id
        for run in MlflowClient(runs.tracking_uri).search_runs([runs.experiment_id])
        if run.data.tags.get("dirsearch.role") == "trial"
    }
    rows = list(csv.DictReader(read_text(f"{folder}/{LEADERBOARD_CSV}").splitlines()))
    assert len(rows) == len(run_of) == 3
    return [(run_of[row["trial"]], float(row[spec.search.objective])) for row in rows]


def listed_runs(driver) -> list[str]:
    """The run ids of the runs table in their order on screen (a row can be in the DOM twice:
    the pinned and the scrolling part of the table)."""
    from selenium.webdriver.common.by import By

    places = {
        row.get_attribute("row-id"): int(row.get_attribute("row-index"))
        for row in driver.find_elements(By.CSS_SELECTOR, ROW)
    }
    return sorted(places, key=places.get)


def shown_column(driver, key: str) -> dict[str, str]:
    """Adds the column ``key`` to the runs table (as a user does, in Columns) and returns its
    cells by run id."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.find_element(By.CSS_SELECTOR, COLUMNS).click()
    wait_until(lambda: _visible(driver, f"//span[text()='{key}']"), f"the {key} column's entry")
    _visible(driver, f"//span[text()='{key}']")[0].click()
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    cell = f"[col-id='metrics.`{key}`'][role=gridcell]"
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, cell), f"the {key} column")
    cells = {}
    for row in driver.find_elements(By.CSS_SELECTOR, ROW):
        for found in row.find_elements(By.CSS_SELECTOR, cell):
            cells[row.get_attribute("row-id")] = found.text
    return cells


def _visible(driver, xpath: str) -> list:
    from selenium.webdriver.common.by import By

    return [element for element in driver.find_elements(By.XPATH, xpath) if element.is_displayed()]


@pytest.mark.slow
def test_ui_opens_the_model_training_view_with_the_trials_best_first(
    sweep: str, ui_page: str, driver, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    expected = leaderboard(sweep)
    trial_runs = [run_id for run_id, _ in expected]
    driver.get(ui_page)
    wait_until(lambda: set(trial_runs) <= set(listed_runs(driver)), "the trial runs")
    lines = set(body_text(driver).splitlines())
    assert MODEL_TRAINING_ONLY in lines and not GENAI_ONLY & lines, "not the model-training view"
    assert [run for run in listed_runs(driver) if run in trial_runs] == trial_runs
    driver.find_element(By.CSS_SELECTOR, CLOSE_ASSISTANT).click()  # room for the table
    best = shown_column(driver, best_metric(load_spec(sweep).search.objective))
    assert [float(best[run_id]) for run_id in trial_runs] == pytest.approx(
        [value for _, value in expected]
    )
    targets = [tmp_path] + ([Path(SCREENSHOTS)] if SCREENSHOTS else [])
    for folder in targets:
        driver.save_screenshot(str(folder / "mlflow_ui_sweep.png"))
        assert (folder / "mlflow_ui_sweep.png").stat().st_size > 20_000


@pytest.mark.slow
def test_the_sweep_run_page_shows_the_sweep_summary(sweep: str, ui_page: str, driver) -> None:
    runs = RunMap.load(sweep)
    server = ui_page.split("#", 1)[0].rstrip("/")
    driver.get(f"{server}/#/experiments/{runs.experiment_id}/runs/{runs.parent}")
    heading = read_text(f"{sweep}/{RESULTS_MD}").splitlines()[0]
    wait_until(lambda: heading in body_text(driver).splitlines(), "the winner in the description")
    lines = body_text(driver).splitlines()
    assert lines.index("Description") < lines.index("Winner") < lines.index(heading)
