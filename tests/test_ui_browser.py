"""End to end in a real browser: a tiny sweep, ``dirsearch ui`` on its folder, and headless
Chromium (Debian's ``chromium`` and ``chromium-driver``, installed by ``.ci/run``) driven by
Selenium: the experiment's runs page lists the parent run and, expanded, each child run.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sweep_helpers import TINY_SWEEP, cli, write_space
from test_ui import lines_of
from trial_helpers import merged

from dirsearch.tracking.run_map import RunMap
from dirsearch.tracking.server import free_port

webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver"
)
EXPAND = "button[data-component-id*=runnamecellrenderer]"
"""The expand button in the parent run's name cell (MLflow 3.17's runs table)."""


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


@pytest.mark.slow
def test_mlflow_ui_lists_the_sweep_run_and_its_trial_runs(tmp_path: Path, monkeypatch) -> None:
    from selenium.webdriver.common.by import By

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    space = write_space(
        tmp_path, merged(TINY_SWEEP, {"train": {"epochs": 2}, "search": {"num_samples": 3}})
    )
    storage = tmp_path / "runs"
    sweep = subprocess.run(
        cli("run", str(space), "--storage", str(storage), "--name", "demo"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    runs = RunMap.load(str(storage / "demo"))
    names = [
        run.info.run_name
        for run in MlflowClient(runs.tracking_uri).search_runs([runs.experiment_id])
        if run.info.run_id != runs.parent
    ]
    assert len(names) == 3
    ui = subprocess.Popen(
        cli("ui", str(storage / "demo"), "--port", str(free_port())),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    driver = None
    try:
        url = lines_of(ui).get(timeout=240).removeprefix("MLflow UI: ")
        driver = browser()
        driver.get(url)
        wait_until(lambda: "demo" in body_text(driver).splitlines(), "the parent run")
        assert not any(name in body_text(driver) for name in names)  # collapsed under it
        driver.find_element(By.CSS_SELECTOR, EXPAND).click()
        wait_until(lambda: all(name in body_text(driver) for name in names), "the child runs")
        driver.save_screenshot(str(tmp_path / "mlflow_ui.png"))
        assert (tmp_path / "mlflow_ui.png").stat().st_size > 20_000
    finally:
        if driver is not None:
            driver.quit()
        ui.send_signal(signal.SIGINT)
        ui.wait(timeout=60)
