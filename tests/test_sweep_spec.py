"""Search-space files: validation (every problem, one line each), the conditional Optuna space,
grids, and the files shipped in search_spaces/. Real Optuna; no Ray is started here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from dirsearch.cli.main import main
from dirsearch.errors import ConfigError
from dirsearch.sweep.environment import environment_problems
from dirsearch.sweep.paths import get_path
from dirsearch.sweep.spec import spec_from_dict
from dirsearch.sweep.spec_reader import load_sweep_spec

SHIPPED = sorted((Path(__file__).resolve().parents[1] / "search_spaces").glob("*.yaml"))
TINY: dict[str, Any] = {
    "experiment": "tiny",
    "data": {"name": "synthetic", "kind": "tabular", "scale": 0.05},
    "model": {"arch": "mlp", "mlp_hidden": [16]},
    "train": {"epochs": 4, "batch_size": 64, "device": "cpu"},
    "search": {"num_samples": 4, "scheduler": {"name": "asha", "grace_period": 1}},
    "space": {
        "imbalance.reweight": {"choice": ["none", "inverse", "sqrt_inv"]},
        "imbalance.lds.enabled": {
            "choice": [False, True],
            "when": {"imbalance.reweight": ["inverse", "sqrt_inv"]},
        },
        "imbalance.lds.sigma": {"loguniform": [0.5, 4.0], "when": "imbalance.lds.enabled"},
        "imbalance.fds.enabled": {"choice": [False, True]},
        "imbalance.fds.momentum": {"uniform": [0.5, 0.95], "when": "imbalance.fds.enabled"},
        "train.loss": {"choice": ["l1", {"name": "focal_l1", "beta": 0.2}]},
        "train.loss.gamma": {"uniform": [0.5, 2.0], "when": {"train.loss.name": "focal_l1"}},
    },
}


def write(folder: Path, mapping: dict[str, Any], name: str = "space.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    return path


def with_changes(**sections: Any) -> dict[str, Any]:
    """TINY with top-level sections replaced or (for search/space) merged key by key."""
    mapping = {
        key: dict(value) if isinstance(value, dict) else value for key, value in TINY.items()
    }
    for key, value in sections.items():
        if key in ("search", "space") and isinstance(value, dict):
            mapping[key] = {**mapping[key], **value}
        else:
            mapping[key] = value
    return mapping


def problems_of(tmp_path: Path, mapping: dict[str, Any]) -> list[str]:
    path = write(tmp_path, mapping)
    with pytest.raises(ConfigError) as caught:
        load_sweep_spec(path)
    return [line.removeprefix(f"{path}: ") for line in str(caught.value).splitlines()]


def test_the_tiny_space_is_valid_and_selects_epochs_by_the_search_metric(tmp_path: Path) -> None:
    spec = load_sweep_spec(write(tmp_path, TINY))
    assert [d.path for d in spec.dimensions] == list(TINY["space"])
    assert spec.fixed["train"]["select_metric"] == "val/few/mae"
    assert spec_from_dict(spec.to_dict()) == spec


BROKEN = [
    (
        {"serach": {}},
        ["serach: unknown key (did you mean 'search'?); allowed: seed, data, model, train,"],
    ),
    (
        {"search": {"metirc": "val/few/mae"}},
        ["search.metirc: unknown key (did you mean 'metric'?); allowed: metric, mode,"],
    ),
    (
        {"space": {"imbalance.lds.sigmaa": {"uniform": [1, 2]}}},
        [
            "space.imbalance.lds.sigmaa: not a field of the trial config (did you mean "
            "'imbalance.lds.sigma'?)"
        ],
    ),
    (
        {"space": {"imbalance.lds.ks": {"choice": [3, 4]}}},
        [
            "space.imbalance.lds.ks: value 4 is refused: imbalance.lds.ks: must be a positive odd "
            "integer, got 4"
        ],
    ),
    (
        {"space": {"imbalance.fds.ks": {"int": [3, 7]}}},
        [
            "space.imbalance.fds.ks: value 4 is refused: imbalance.fds.ks: must be a positive odd "
            "integer, got 4"
        ],
    ),
    (
        {"space": {"imbalance.lds.sigma": {"uniform": [0, 2], "when": "imbalance.lds.enabled"}}},
        [
            "space.imbalance.lds.sigma: value 0 is refused: imbalance.lds.sigma: must be > 0, "
            "got 0.0"
        ],
    ),
    (
        {"space": {"imbalance.fds.kernel": {"choice": ["gaussian", "box"]}}},
        [
            "space.imbalance.fds.kernel: value box is refused: imbalance.fds.kernel: unknown value "
            "'box'; allowed: gaussian, triang, laplace"
        ],
    ),
    (
        {"space": {"train.lr": {"loguniform": [0, 0.1]}}},
        ["space.train.lr.loguniform: loguniform needs low > 0, got 0"],
    ),
    (
        {"space": {"train.lr": {"uniform": [0.1]}}},
        ["space.train.lr.uniform: must be [low, high], got [0.1]"],
    ),
    (
        {"space": {"train.lr": {"uniform": [0.1, 0.2], "log": True}}},
        ["space.train.lr: step and log belong to int dimensions (use loguniform for floats)"],
    ),
    (
        {"space": {"train.epochs": {"range": [1, 2]}}},
        [
            "space.train.epochs: must be a mapping with exactly one of choice, uniform, "
            "loguniform, int (and optional when)"
        ],
    ),
    (
        {"space": {"imbalance.fds.sigma": {"uniform": [1, 2], "when": "train.lr"}}},
        [
            "space.imbalance.fds.sigma.when: train.lr is neither a boolean nor a choice field, nor "
            "a choice dimension defined above; a condition must read one"
        ],
    ),
    (
        {"space": {"imbalance.fds.sigma": {"uniform": [1, 2], "when": {"train.optimizer": "adm"}}}},
        [
            "space.imbalance.fds.sigma.when: train.optimizer never equals adm (allowed: adam, "
            "adamw, sgd)"
        ],
    ),
    (
        # LDS searched while re-weighting is fixed to none: every LDS trial would be refused.
        {
            "space": {
                "imbalance.reweight": {"choice": ["none"]},
                "imbalance.lds.enabled": {"choice": [False, True]},
            }
        },
        [
            "space.imbalance.lds.enabled: value true is refused: imbalance.lds.enabled: LDS "
            "smooths the re-weighting density: set imbalance.reweight to inverse or sqrt_inv",
            # and every LDS knob searched under it, for the same reason
            "space.imbalance.lds.sigma: value 0.5 is refused: imbalance.lds.enabled: LDS",
        ],
    ),
    (
        {"search": {"metric": "val/few/rmse"}},
        [
            "search.metric: 'val/few/rmse' is not a metric the trainer reports per epoch (allowed: "
            "val/{all,many,medium,few}/{mae,mse,gm}, train/loss)"
        ],
    ),
    (
        {"search": {"metric": ["val/few/mae", "val/al/mae"], "mode": "min"}},
        [
            "search.metric[1]: 'val/al/mae' is not a metric the trainer reports per epoch "
            "(allowed: val/{all,many,medium,few}/{mae,mse,gm}, train/loss)"
        ],
    ),
    (
        {"search": {"metric": ["val/few/mae", "val/few/mae"]}},
        ["search.metric: lists a metric twice: val/few/mae, val/few/mae"],
    ),
    (
        {"search": {"metric": ["val/few/mae", "val/all/mae"], "mode": ["min"]}},
        ["search.mode: gives 1 modes for 2 metrics: give one per metric, or a single one for all"],
    ),
    (
        {"search": {"metric": ["val/few/mae", "val/all/mae"], "mode": ["min", "least"]}},
        ["search.mode[1]: unknown value 'least'; allowed: min, max"],
    ),
    (
        {"search": {"metric": []}},
        ["search.metric: must list 1 to 4 metrics, got 0"],
    ),
    (
        {"search": {"scheduler": {"name": "asha", "grace_period": 5}}},
        ["search.scheduler.grace_period: must be between 1 and train.epochs (4), got 5"],
    ),
    (
        {"search": {"resources": {"cpu": 1, "gpu": 1.5}}},
        [
            "search.resources.gpu: must be 0, a fraction below 1 (trials share a GPU) or a whole "
            "number, got 1.5"
        ],
    ),
    (
        {"search": {"searcher": {"name": "tpe"}}},
        ["search.searcher.name: unknown value 'tpe'; allowed: optuna, random, grid"],
    ),
    (
        {"search": {"points": [{"imbalance.lds.sigma": 2.0}]}},
        ["search.points[0].imbalance.lds.sigma: its when condition does not hold in this point"],
    ),
    (
        {"search": {"points": [{"imbalance.reweight": "sqrt"}]}},
        [
            "search.points[0].imbalance.reweight: sqrt is outside imbalance.reweight: choice "
            "[none, inverse, sqrt_inv]"
        ],
    ),
    ({"experiment": "my sweep"}, ["experiment: must be a name of letters, digits,"]),
    (
        {"search": {"searcher": {"name": "optuna", "startup_trials": 0}}},
        ["search.searcher.startup_trials: must be >= 1"],
    ),
    (
        {"train": {"epochs": 4, "batch_size": 1, "optimiser": "sgd"}},
        [
            "train.optimiser: unknown key (did you mean 'optimizer'?);",
        ],
    ),
]


def test_two_objectives_give_a_metric_and_mode_each_and_select_epochs_by_the_first(
    tmp_path: Path,
) -> None:
    mapping = with_changes(search={"metric": ["val/few/mae", "val/all/mae"], "mode": "min"})
    spec = load_sweep_spec(write(tmp_path, mapping))
    search = spec.search
    assert (search.metrics, search.modes) == (("val/few/mae", "val/all/mae"), ("min", "min"))
    assert (search.objective, search.multi_objective) == ("val/few/mae", True)
    assert spec.fixed["train"]["select_metric"] == "val/few/mae"
    assert spec_from_dict(spec.to_dict()).search == search  # the sweep folder's copy


@pytest.mark.parametrize(("changes", "expected"), BROKEN, ids=[str(i) for i in range(len(BROKEN))])
def test_each_broken_file_is_reported_with_its_key_and_what_is_allowed(
    tmp_path: Path, changes: dict[str, Any], expected: list[str]
) -> None:
    problems = problems_of(tmp_path, with_changes(**changes))
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problem


def test_every_problem_of_a_file_in_one_run(tmp_path: Path) -> None:
    mapping = with_changes(
        search={"metric": "val/few/rmse", "metirc": 1},
        space={"imbalance.lds.ks": {"choice": [3, 4]}, "train.lrr": {"uniform": [1, 2]}},
    )
    problems = problems_of(tmp_path, mapping)
    assert [p.split(":")[0] for p in problems] == [
        "search.metirc",
        "space.train.lrr",
        "space.imbalance.lds.ks",
        "search.metric",
    ]


def test_grid_wants_choices_and_no_num_samples(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        with_changes(search={"searcher": {"name": "grid"}, "num_samples": 3}),
    )
    assert problems[0].startswith("search.num_samples: a grid runs each of its points once")
    assert "space.imbalance.lds.sigma: a grid takes choice dimensions only, got loguniform" in (
        problems
    )


def test_validate_cli_prints_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path, with_changes(search={"metric": "x"}, space={"train.lrr": {"int": [1, 2]}})
    )
    assert main(["validate", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[3] for line in lines] == ["space.train.lrr", "search.metric"]
    assert all(line.startswith(f"dirsearch: error: {path}: ") for line in lines)


def test_validate_cli_summarises_a_valid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(write(tmp_path, TINY))]) == 0
    out = capsys.readouterr().out
    assert "imbalance.lds.sigma: loguniform [0.5, 4]  (when imbalance.lds.enabled)" in out
    assert "train.loss.gamma: uniform [0.5, 2]  (when train.loss.name = focal_l1)" in out
    assert "budget: 4 trials x 1 seed(s) x up to 4 epochs" in out
    assert "resources: 1 CPU, 0 GPU per trial, 2 at a time" in out


def test_missing_data_says_how_to_get_it(tmp_path: Path) -> None:
    mapping = with_changes(data={"name": "csv_images", "csv": "data/imdb_wiki_dir.csv"})
    spec = load_sweep_spec(write(tmp_path, mapping))
    (problem,) = environment_problems(spec, gpus_available=0)
    assert problem.startswith(f"{tmp_path / 'space.yaml'}: data.csv: {tmp_path}/data/imdb_wiki_dir")
    assert "dirsearch data prepare imdb-wiki --raw DIR --out CSV" in problem


def test_gpu_request_above_the_machine_is_refused(tmp_path: Path) -> None:
    spec = load_sweep_spec(write(tmp_path, with_changes(search={"resources": {"gpu": 0.25}})))
    assert environment_problems(spec, gpus_available=1) == []
    (problem,) = environment_problems(spec, gpus_available=0)
    assert "search.resources.gpu: each trial asks for 0.25 GPU but there are 0" in problem


def sampled(space: Any, seed: int, count: int) -> list[dict[str, Any]]:
    """What a real Optuna study hands out from the space, ``count`` trials."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs = []
    for _ in range(count):
        trial = study.ask()
        configs.append(space(trial))
        study.tell(trial, 0.0)
    return configs, study


def test_conditional_dimensions_exist_only_when_their_condition_holds(tmp_path: Path) -> None:
    spec = load_sweep_spec(write(tmp_path, TINY))
    configs, study = sampled(spec.space(), seed=0, count=60)
    for config, trial in zip(configs, study.trials, strict=True):
        lds = config.get("imbalance.lds.enabled", False)
        assert ("imbalance.lds.enabled" in config) == (config["imbalance.reweight"] != "none")
        assert ("imbalance.lds.sigma" in config) == lds
        assert ("imbalance.fds.momentum" in config) == config["imbalance.fds.enabled"]
        focal = get_path({"loss": config["train.loss"]}, "loss.name") == "focal_l1"
        assert ("train.loss.gamma" in config) == focal
        assert set(trial.params) == set(config)  # Optuna never sees an unused parameter
        spec.trial_config(config)  # and every sampled trial is a valid config
    # Every branch was visited.
    assert {c["imbalance.reweight"] for c in configs} == {"none", "inverse", "sqrt_inv"}
    assert any("imbalance.lds.sigma" in c for c in configs)
    assert any("train.loss.gamma" in c for c in configs)


def test_mapping_choices_reach_the_trial_config(tmp_path: Path) -> None:
    spec = load_sweep_spec(write(tmp_path, TINY))
    config = spec.trial_config(
        {"train.loss": {"name": "focal_l1", "beta": 0.2}, "train.loss.gamma": 1.5}
    )
    assert (config.train.loss.name, config.train.loss.beta, config.train.loss.gamma) == (
        "focal_l1",
        0.2,
        1.5,
    )
    point = spec.space().optuna_point({"train.loss": {"name": "focal_l1", "beta": 0.2}})
    study = optuna.create_study()
    study.enqueue_trial(point)
    assert spec.space()(study.ask())["train.loss"] == {"name": "focal_l1", "beta": 0.2}


def test_grid_is_the_product_of_choices_without_inactive_knobs(tmp_path: Path) -> None:
    mapping = with_changes(
        search={"searcher": {"name": "grid"}},
        space={
            "imbalance.lds.sigma": {"choice": [1.0, 2.0], "when": "imbalance.lds.enabled"},
            "imbalance.fds.momentum": {"choice": [0.9], "when": "imbalance.fds.enabled"},
            "train.loss": {"choice": ["l1"]},
            "train.loss.gamma": {"choice": [1.0], "when": {"train.loss.name": "focal_l1"}},
        },
    )
    del mapping["search"]["num_samples"]
    spec = load_sweep_spec(write(tmp_path, mapping))
    # none: 1, inverse/sqrt_inv x (lds off: 1, on: 2 sigmas) = 1 + 2 x 3 = 7; x FDS off/on = 14
    assert len(spec.points) == 14
    assert len({tuple(sorted(p.items(), key=str)) for p in spec.points}) == 14
    assert all(
        "imbalance.lds.sigma" not in p for p in spec.points if p["imbalance.reweight"] == "none"
    )


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_space_file_validates(path: Path) -> None:
    spec = load_sweep_spec(path)
    assert spec.experiment
    assert spec.dimensions or spec.points


def test_demo_needs_nothing_from_this_machine() -> None:
    (demo,) = [path for path in SHIPPED if path.name == "demo.yaml"]
    spec = load_sweep_spec(demo)
    assert environment_problems(spec, gpus_available=0) == []
    assert spec.search.num_samples >= 8
    assert spec.search.scheduler.name == "asha" and spec.search.searcher.name == "optuna"


def test_imdb_without_its_data_fails_at_once_saying_how_to_get_it(tmp_path: Path) -> None:
    (imdb,) = [path for path in SHIPPED if path.name == "imdb.yaml"]
    result = subprocess.run(
        [sys.executable, "-m", "dirsearch", "run", str(imdb), "--storage", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "data.csv" in result.stderr and "dirsearch data prepare imdb-wiki" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_run_into_a_folder_that_holds_a_sweep_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second `run` with the same --name would start over on top of the first sweep."""
    folder = tmp_path / "runs" / "first"
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text("{}")
    space = write(tmp_path, TINY)
    arguments = ["run", str(space), "--storage", str(tmp_path / "runs"), "--name", "first"]
    assert main(arguments) == 2
    assert capsys.readouterr().err == (
        f"dirsearch: error: {folder}: already holds a sweep; continue it with "
        f"`dirsearch resume {folder}` or start a new one with another --name\n"
    )
    assert sorted(p.name for p in folder.iterdir()) == ["sweep.json"]
