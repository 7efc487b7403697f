"""The ablation phase: which DIR components a config uses and the variants that switch each off,
fresh seeds no search or confirm trial trained, the table's paired differences, and end to end
on a real local Ray: a finished sweep's ablation table and MLflow runs, and an ablation stopped
by SIGTERM that ``dirsearch resume`` completes."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sweep_helpers import TINY_SWEEP, cli, reported_epochs, write_space
from trial_helpers import merged

from dirsearch.cli.main import main
from dirsearch.sweep.ablation_table import ablation_markdown, ablation_rows
from dirsearch.sweep.components import ablation_variants, is_vanilla
from dirsearch.sweep.records import read_trials
from dirsearch.sweep.spec import SweepSpec
from dirsearch.sweep.spec_reader import load_sweep_spec
from dirsearch.sweep.tables import ShotMetrics
from dirsearch.tune.ablation import fresh_seeds

DIR_CONFIG = {
    "imbalance.reweight": "sqrt_inv",
    "imbalance.lds.enabled": True,
    "imbalance.fds.enabled": True,
}


def tiny_spec(folder: Path, search: dict[str, Any] | None = None) -> SweepSpec:
    return load_sweep_spec(write_space(folder, merged(TINY_SWEEP, {"search": search or {}})))


def test_the_variants_switch_off_each_component_the_config_uses(tmp_path: Path) -> None:
    spec = tiny_spec(tmp_path)
    variants = ablation_variants(spec.trial_config(DIR_CONFIG))
    assert [(v.name, v.off) for v in variants] == [
        ("full", {}),
        ("no re-weighting", {"imbalance.reweight": "none", "imbalance.lds.enabled": False}),
        ("no LDS", {"imbalance.lds.enabled": False}),
        ("no FDS", {"imbalance.fds.enabled": False}),
    ]
    # Each variant is a valid trial config with exactly its component off, the others kept.
    used = {
        name: (c.imbalance.reweight, c.imbalance.lds.enabled, c.imbalance.fds.enabled)
        for name, c in ((v.name, spec.trial_config({**DIR_CONFIG, **v.off})) for v in variants)
    }
    assert used == {
        "full": ("sqrt_inv", True, True),
        "no re-weighting": ("none", False, True),
        "no LDS": ("sqrt_inv", False, True),
        "no FDS": ("sqrt_inv", True, False),
    }
    assert not is_vanilla(spec.trial_config(DIR_CONFIG))


def test_a_vanilla_config_has_only_the_full_variant(tmp_path: Path) -> None:
    config = tiny_spec(tmp_path).trial_config({"imbalance.reweight": "none"})
    assert [v.name for v in ablation_variants(config)] == ["full"]
    assert is_vanilla(config)


@pytest.mark.parametrize(
    "overrides",
    [
        {"imbalance.reweight": "inverse"},
        {"imbalance.ranksim.enabled": True},
        {"imbalance.conr.enabled": True},
        {"train.loss.name": "bmc", "imbalance.fds.enabled": True},  # bmc: reweight none only
    ],
)
def test_every_variant_is_valid_and_all_off_is_vanilla(
    tmp_path: Path, overrides: dict[str, Any]
) -> None:
    spec = tiny_spec(tmp_path)
    variants = ablation_variants(spec.trial_config(overrides))
    assert len(variants) == 2
    off = spec.trial_config({**overrides, **variants[1].off})  # the rules accept it
    assert is_vanilla(off)


def test_fresh_seeds_miss_every_search_and_confirm_seed(tmp_path: Path) -> None:
    spec = tiny_spec(tmp_path, {"repeats": 2, "confirm": {"top_k": 2, "seeds": 3}})
    searched: list[dict[str, Any]] = [{}, {"seed": 5}, {"seed": 2}]  # seeds 0-1, 5-6, 2-3
    seeds = fresh_seeds(spec, searched, 2)
    assert seeds == [10, 11]
    search_seeds = {0, 1, 5, 6, 2, 3}
    # Confirm's seeds start after the largest seed of its top trials, whichever they are.
    confirm_seeds = {last + 1 + k for last in (1, 6, 3) for k in range(3)}
    assert not set(seeds) & (search_seeds | confirm_seeds)
    no_confirm = tiny_spec(tmp_path / "plain", {"repeats": 2})
    assert fresh_seeds(no_confirm, searched, 3) == [7, 8, 9]


def shot(all_mae: float, few_mae: float) -> ShotMetrics:
    """Test metrics with MAE ``all_mae`` in the all, many and medium regions, ``few_mae`` in few."""
    maes = {"all": all_mae, "many": all_mae, "medium": all_mae, "few": few_mae}
    return {region: {"mae": mae, "mse": mae**2, "gm": mae, "n": 10} for region, mae in maes.items()}


def test_the_table_gives_paired_differences_against_the_full_winner() -> None:
    per_variant: dict[str, list[ShotMetrics | None]] = {
        "full": [shot(1.0, 3.0), shot(2.6, 5.0), shot(3.0, 4.0)],
        "no LDS": [shot(1.5, 4.0), shot(2.1, 5.0), shot(3.9, 4.5)],
        "no FDS": [shot(0.5, 3.5), None, shot(2.0, 4.0)],  # its second seed gave no metrics
    }
    full, no_lds, no_fds = ablation_rows(per_variant)
    assert [row["variant"] for row in (full, no_lds, no_fds)] == ["full", "no LDS", "no FDS"]
    assert (full["seeds"], no_lds["seeds"], no_fds["seeds"]) == (3, 3, 2)
    assert full["all Δ mean"] == 0.0 and full["all Δ std"] == 0.0
    # By hand: the per-seed differences, variant minus full on the same seed.
    assert no_lds["all Δ mean"] == pytest.approx((0.5 - 0.5 + 0.9) / 3)
    assert no_lds["all Δ std"] == pytest.approx(statistics.stdev([0.5, -0.5, 0.9]))
    assert no_lds["few Δ mean"] == pytest.approx((1.0 + 0.0 + 0.5) / 3)
    assert no_lds["few Δ std"] == pytest.approx(statistics.stdev([1.0, 0.0, 0.5]))
    assert no_lds["test/all/mae mean"] == pytest.approx(7.5 / 3)
    assert no_lds["test/all/mae std"] == pytest.approx(statistics.stdev([1.5, 2.1, 3.9]))
    # Only the seeds both trained are paired: -0.5 and -1.0, not the gap of the means (-0.95).
    assert no_fds["all Δ mean"] == pytest.approx(-0.75)
    assert no_fds["all Δ std"] == pytest.approx(statistics.stdev([-0.5, -1.0]))
    assert no_fds["few Δ mean"] == pytest.approx(0.25)
    text = ablation_markdown("heading", [full, no_lds, no_fds])
    assert "| variant | seeds | All MAE | All Δ | Many MAE | Many Δ |" in text
    assert "| no LDS | 3 | 2.500 ± 1.249 | 0.300 ± 0.721 |" in text


ABLATED: dict[str, Any] = merged(
    TINY_SWEEP,
    {
        "train": {"epochs": 2},
        "imbalance": {"reweight": "sqrt_inv", "lds": {"enabled": True}},
        "search": {
            "searcher": {"name": "grid"},
            "scheduler": {"name": "fifo"},
            "ablate": {"seeds": 2},
        },
    },
)
del ABLATED["search"]["num_samples"]
ABLATED["space"] = {"train.lr": {"choice": [3.0e-3]}}  # a grid of one point
WINNER_ROWS = [("full", "2"), ("no re-weighting", "2"), ("no LDS", "2")]
"""Every seed of every variant scored on test."""
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
ENV.pop("MLFLOW_TRACKING_URI", None)  # the default store: sqlite in the sweep folder


def table_rows(folder: Path) -> list[tuple[str, str]]:
    """The variant and seeds columns of ``ablation.md``."""
    lines = (folder / "ablation.md").read_text().splitlines()
    cells = [[cell.strip() for cell in line.split("|")[1:3]] for line in lines if line[:1] == "|"]
    return [(variant, seeds) for variant, seeds in cells[2:]]


def ablation_points(folder: Path) -> list[tuple[str, bool, int]]:
    """(reweight, LDS, seed) of each ablation trial that reported, sorted."""
    return sorted(
        (
            r.overrides.get("imbalance.reweight", "sqrt_inv"),
            r.overrides.get("imbalance.lds.enabled", True),
            r.overrides["seed"],
        )
        for r in read_trials(str(folder / "ablation"))
        if r.history
    )


@pytest.mark.slow
def test_a_sweep_stopped_in_its_ablation_resumes_to_the_ablated_confirmed_winner(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One sweep through search, confirm and ablation, SIGTERMed at the ablation's first epoch
    and resumed: the table, the fresh seeds, every variant x seed trained once, each phase's
    MLflow runs and the report (one sweep for all of it: sweeps are what the suite's time goes
    to)."""
    from mlflow.tracking import MlflowClient

    from dirsearch.tracking.run_map import RunMap

    space = write_space(
        tmp_path, merged(ABLATED, {"search": {"confirm": {"top_k": 1, "seeds": 2}}})
    )
    folder = tmp_path / "runs" / "stopped"
    log = (tmp_path / "run.err").open("wb")
    driver = subprocess.Popen(
        cli("run", str(space), "--storage", str(folder.parent), "--name", "stopped"),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        while not reported_epochs(folder / "ablation"):  # the first ablation epoch
            assert driver.poll() is None, "the sweep ended before its ablation was stopped"
            time.sleep(0.2)
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=120) == 130
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert not (folder / "ablation.md").exists()
    assert len(ablation_points(folder)) < 6, "the ablation finished before SIGTERM reached it"
    resumed = subprocess.run(
        cli("resume", str(folder)), env=ENV, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert table_rows(folder) == WINNER_ROWS
    heading = (folder / "ablation.md").read_text().splitlines()[0]
    assert "seeds [3, 4]" in heading and "Δ: the variant's MAE minus the full winner's" in heading
    # Seed 0 trained the search trial, 1 and 2 confirmed it: the ablation trained 3 and 4,
    # every variant x seed once (the resumed Tuner ran only what the stopped one had not).
    assert [r.overrides.get("seed", 0) for r in read_trials(str(folder))] == [0]
    assert sorted(r.overrides["seed"] for r in read_trials(str(folder / "confirm"))) == [1, 2]
    assert ablation_points(folder) == sorted(
        (reweight, lds, seed)
        for reweight, lds in (("sqrt_inv", True), ("none", False), ("sqrt_inv", False))
        for seed in (3, 4)
    )
    assert all("test/few/mae" in r.history[-1] for r in read_trials(str(folder / "ablation")))
    # Each phase keeps its own MLflow runs; the table reaches the parent run.
    runs = RunMap.load(str(folder))
    client = MlflowClient(runs.tracking_uri)
    phases = [
        run.data.tags["dirsearch.phase"]
        for run in client.search_runs([runs.experiment_id])
        if run.data.tags["dirsearch.role"] == "trial"
    ]
    assert sorted(phases) == ["ablation"] * 6 + ["confirm"] * 2 + ["search"]
    assert "ablation.md" in [a.path for a in client.list_artifacts(runs.parent)]
    assert main(["report", str(folder)]) == 0
    assert "Ablation of the winner (train.lr=0.003)" in capsys.readouterr().out
