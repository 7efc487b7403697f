"""The trial config: defaults, types, choices, cross-field rules, paths and YAML errors.

Every user error must be a ConfigError whose single line names the file and the dotted key and
says what is allowed, so the expected messages below are spelled out by hand.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from dirsearch.config.files import load_trial_config, trial_config_from_dict
from dirsearch.config.trial import FDSConfig, LossConfig, ScheduleConfig, TrialConfig
from dirsearch.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
SOURCE = "trial.yaml"


def build(mapping: Any, base: Path = Path("/base")) -> TrialConfig:
    return trial_config_from_dict(mapping, SOURCE, base)


def nested(dotted: str, value: Any) -> dict[str, Any]:
    """``nested("a.b.c", 1)`` -> ``{"a": {"b": {"c": 1}}}``."""
    mapping: Any = value
    for part in reversed(dotted.split(".")):
        mapping = {part: mapping}
    return mapping


def error_of(mapping: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        build(mapping)
    message = str(caught.value)
    assert "\n" not in message
    return message


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ----- defaults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mapping", [None, {}])
def test_empty_config_gives_the_defaults(mapping: Any) -> None:
    config = build(mapping)
    assert config == TrialConfig()
    assert config.data.name == "synthetic"
    assert config.model.arch == "small_cnn"
    assert config.train.loss.name == "l1"
    assert config.train.select_metric == "val/all/mae"
    assert config.imbalance.reweight == "none"
    assert not config.imbalance.lds.enabled
    assert not config.imbalance.fds.enabled


def test_empty_yaml_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_trial_config(write(tmp_path / "empty.yaml", "")) == TrialConfig()


def test_packaged_synthetic_example_loads() -> None:
    config = load_trial_config(REPO / "search_spaces" / "synthetic.yaml")
    assert config.data.name == "synthetic"
    assert config.data.image_size == 32
    assert (config.data.bins.start, config.data.bins.width, config.data.bins.count) == (0, 1, 102)
    assert config.train.epochs == 20
    assert config.train.lr == 1e-3
    assert config.train.schedule == ScheduleConfig(name="cosine")
    assert config.train.loss == LossConfig(name="l1")
    assert config.imbalance.reweight == "sqrt_inv"
    assert config.imbalance.lds.enabled
    assert config.imbalance.fds == FDSConfig(enabled=True, start_update=9, start_smooth=10)


def test_config_is_frozen() -> None:
    config = build({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.lr = 1.0  # type: ignore[misc]


def test_to_dict_round_trips() -> None:
    config = build(
        {
            "data": {"name": "tabular", "csv": "/d/x.csv", "features": ["a", "b"]},
            "model": {"arch": "mlp", "mlp_hidden": [16, 8]},
            "train": {"schedule": {"name": "step", "milestones": [2, 4]}},
        }
    )
    plain = config.to_dict()
    assert plain["model"]["mlp_hidden"] == [16, 8]
    assert plain["data"]["features"] == ["a", "b"]
    assert build(plain) == config


# ----- unknown keys -----------------------------------------------------------------------------

ALLOWED_KEYS = {
    "": "seed, data, model, train, imbalance",
    "data": (
        "name, kind, scale, seed, csv, root, target, features, image_size, cache_dir, "
        "num_workers, bins"
    ),
    "data.bins": "start, width, count",
    "model": "arch, pretrained, mlp_hidden, dropout",
    "train": (
        "epochs, batch_size, optimizer, lr, weight_decay, momentum, schedule, loss, device, amp, "
        "memory_format, select_metric, divergence_limit, rrt"
    ),
    "train.schedule": "name, milestones, gamma",
    "train.loss": "name, beta, gamma, activation, init_noise_sigma, noise_lr",
    "train.rrt": "checkpoint",
    "imbalance": "reweight, lds, fds, ranksim, conr, shots",
    "imbalance.lds": "enabled, kernel, ks, sigma",
    "imbalance.fds": (
        "enabled, kernel, ks, sigma, momentum, start_update, start_smooth, bucket_start, statistics"
    ),
    "imbalance.ranksim": "enabled, gamma, interpolation_lambda",
    "imbalance.conr": "enabled, beta, w, t, e, noise_std",
    "imbalance.shots": "many, few",
}


@pytest.mark.parametrize("section", sorted(ALLOWED_KEYS))
def test_unknown_key_names_the_dotted_key_and_the_allowed_ones(section: str) -> None:
    key = f"{section}.xyzzy" if section else "xyzzy"  # close to no key: no did-you-mean hint
    assert error_of(nested(key, 1)) == (
        f"{SOURCE}: {key}: unknown key; allowed: {ALLOWED_KEYS[section]}"
    )


def test_misspelled_sweep_section_is_an_unknown_key() -> None:
    assert error_of({"spaces": {}}).startswith(f"{SOURCE}: spaces: unknown key; allowed: seed,")


def test_sweep_sections_are_ignored() -> None:
    mapping = {
        "experiment": "demo",
        "search": {"metric": "val/few/mae", "anything": [1, 2]},
        "space": {"train.lr": {"loguniform": [1e-4, 1e-2]}},
        "train": {"epochs": 3},
    }
    assert build(mapping) == build({"train": {"epochs": 3}})


# ----- types ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("train.optimizer", 3, "must be a string, got 3"),
        ("data.target", ["age"], "must be a string, got ['age']"),
        ("train.epochs", "ten", "must be an integer, got 'ten'"),
        ("train.epochs", 2.5, "must be an integer, got 2.5"),
        ("train.epochs", True, "must be an integer, got True"),
        ("seed", "0", "must be an integer, got '0'"),
        ("train.lr", True, "must be a number, got True"),
        ("train.lr", "fast", "must be a number, got 'fast'"),
        ("train.lr", None, "must be a number, got None"),
        ("imbalance.lds.enabled", "true", "must be true or false, got 'true'"),
        ("imbalance.lds.enabled", 1, "must be true or false, got 1"),
        ("model.mlp_hidden", 128, "must be a list, got 128"),
        ("data.bins", 5, "must be a mapping, got 5"),
        ("imbalance", [], "must be a mapping, got []"),
    ],
)
def test_wrong_type_names_key_and_value(key: str, value: Any, problem: str) -> None:
    assert error_of(nested(key, value)) == f"{SOURCE}: {key}: {problem}"


def test_wrong_type_inside_a_list_names_the_index() -> None:
    assert error_of({"model": {"mlp_hidden": [128, "x"]}}) == (
        f"{SOURCE}: model.mlp_hidden[1]: must be an integer, got 'x'"
    )


def test_top_level_must_be_a_mapping() -> None:
    assert error_of([1, 2]) == f"{SOURCE}: (top level): must be a mapping, got [1, 2]"


def test_integer_is_accepted_for_a_float_and_none_for_an_optional() -> None:
    config = build({"train": {"lr": 1}, "imbalance": {"fds": {"momentum": None}}})
    assert config.train.lr == 1.0
    assert isinstance(config.train.lr, float)
    assert config.imbalance.fds.momentum is None


def test_exponent_without_a_dot_is_a_float(tmp_path: Path) -> None:
    """YAML 1.1 reads ``1e-3`` as a string; users write it anyway."""
    path = write(tmp_path / "t.yaml", "train:\n  lr: 1e-3\n  weight_decay: 5E-4\n")
    config = load_trial_config(path)
    assert config.train.lr == 0.001
    assert config.train.weight_decay == 0.0005


def test_name_shorthand_for_sections_with_a_name(tmp_path: Path) -> None:
    path = write(tmp_path / "t.yaml", "train:\n  loss: huber\n  schedule: cosine\n")
    config = load_trial_config(path)
    assert config.train.loss == LossConfig(name="huber")
    assert config.train.schedule == ScheduleConfig(name="cosine")


def test_shorthand_is_checked_against_the_choices() -> None:
    assert error_of({"train": {"loss": "l3"}}) == (
        f"{SOURCE}: train.loss.name: unknown value 'l3'; "
        "allowed: mse, l1, huber, focal_mse, focal_l1, bmc"
    )


# ----- choices ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "allowed"),
    [
        ("data.name", "synthetic, csv_images, tabular"),
        ("data.kind", "image, tabular"),
        ("model.arch", "resnet18, resnet34, resnet50, small_cnn, mlp"),
        ("train.optimizer", "adam, adamw, sgd"),
        ("train.schedule.name", "none, step, cosine"),
        ("train.loss.name", "mse, l1, huber, focal_mse, focal_l1, bmc"),
        ("train.device", "auto, cpu, cuda"),
        ("train.amp", "auto, bf16, off"),
        ("train.memory_format", "auto, channels_last, contiguous"),
        ("imbalance.reweight", "none, inverse, sqrt_inv"),
        ("imbalance.lds.kernel", "gaussian, triang, laplace"),
        ("imbalance.fds.kernel", "gaussian, triang, laplace"),
        ("imbalance.fds.statistics", "extra_pass, in_pass"),
    ],
)
def test_unknown_choice_lists_the_allowed_values(key: str, allowed: str) -> None:
    assert error_of(nested(key, "bogus")) == (
        f"{SOURCE}: {key}: unknown value 'bogus'; allowed: {allowed}"
    )


# ----- cross-field rules ------------------------------------------------------------------------


def test_lds_needs_a_reweighting() -> None:
    message = error_of({"imbalance": {"lds": {"enabled": True}}})
    assert message.startswith(f"{SOURCE}: imbalance.lds.enabled: ")
    assert "imbalance.reweight" in message
    assert "sqrt_inv" in message
    config = build({"imbalance": {"reweight": "inverse", "lds": {"enabled": True}}})
    assert config.imbalance.lds.enabled


@pytest.mark.parametrize("section", ["lds", "fds"])
@pytest.mark.parametrize("ks", [4, 2, 0, -1])
def test_kernel_size_must_be_odd_and_positive(section: str, ks: int) -> None:
    assert error_of({"imbalance": {section: {"ks": ks}}}) == (
        f"{SOURCE}: imbalance.{section}.ks: must be a positive odd integer, got {ks}"
    )


@pytest.mark.parametrize("section", ["lds", "fds"])
@pytest.mark.parametrize("sigma", [0, -1.5])
def test_sigma_must_be_positive(section: str, sigma: float) -> None:
    assert error_of({"imbalance": {section: {"sigma": sigma}}}) == (
        f"{SOURCE}: imbalance.{section}.sigma: must be > 0, got {float(sigma)}"
    )


@pytest.mark.parametrize("momentum", [1.0, 1.5, -0.1])
def test_fds_momentum_outside_unit_interval(momentum: float) -> None:
    assert error_of({"imbalance": {"fds": {"momentum": momentum}}}) == (
        f"{SOURCE}: imbalance.fds.momentum: must be in [0, 1) or null (cumulative average), "
        f"got {momentum}"
    )


@pytest.mark.parametrize("momentum", [0.0, 0.999, None])
def test_fds_momentum_inside_unit_interval(momentum: float | None) -> None:
    assert build({"imbalance": {"fds": {"momentum": momentum}}}).imbalance.fds.momentum == momentum


def test_step_schedule_needs_milestones() -> None:
    assert error_of({"train": {"schedule": "step"}}) == (
        f"{SOURCE}: train.schedule.milestones: the step schedule needs at least one milestone epoch"
    )
    schedule = build({"train": {"schedule": {"name": "step", "milestones": [3]}}}).train.schedule
    assert schedule.milestones == (3,)


@pytest.mark.parametrize("metric", ["train/loss", "test/all/mae"])
def test_select_metric_must_be_a_validation_metric(metric: str) -> None:
    assert error_of({"train": {"select_metric": metric}}) == (
        f"{SOURCE}: train.select_metric: must be val/{{all,many,medium,few}}/{{mae,mse,gm}}, "
        f"got {metric!r}"
    )


@pytest.mark.parametrize("metric", ["val/all", "val/rare/mae", "val/few/rmse", "val/few/mae/x"])
def test_select_metric_must_name_region_and_statistic(metric: str) -> None:
    assert error_of({"train": {"select_metric": metric}}) == (
        f"{SOURCE}: train.select_metric: must be val/{{all,many,medium,few}}/{{mae,mse,gm}}, "
        f"got {metric!r}"
    )


@pytest.mark.parametrize(
    ("loss", "key", "takes"),
    [
        ({"name": "l1", "beta": 1.0}, "beta", "none"),
        ({"name": "mse", "activation": "tanh"}, "activation", "none"),
        ({"name": "bmc", "gamma": 2.0}, "gamma", "none"),
        ({"name": "huber", "gamma": 2.0}, "gamma", "beta"),
    ],
)
def test_loss_parameter_the_loss_does_not_take(loss: dict, key: str, takes: str) -> None:
    assert error_of({"train": {"loss": loss}}) == (
        f"{SOURCE}: train.loss.{key}: not a parameter of loss {loss['name']!r}; it takes: {takes}"
    )


def test_loss_parameters_the_loss_takes() -> None:
    loss = {"name": "focal_l1", "beta": 0.5, "gamma": 2, "activation": "tanh"}
    config = build({"train": {"loss": loss}})
    assert config.train.loss.params() == {"beta": 0.5, "gamma": 2.0, "activation": "tanh"}
    assert build({"train": {"loss": {"name": "huber", "beta": 2}}}).train.loss.params() == {
        "beta": 2.0
    }


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("data.scale", 0, "must be > 0, got 0.0"),
        ("data.image_size", 4, "must be >= 8, got 4"),
        ("data.num_workers", -1, "must be >= 0"),
        ("data.bins.width", 0, "must be > 0, got 0.0"),
        ("data.bins.count", 0, "must be >= 1, got 0"),
        ("train.epochs", 0, "must be >= 1, got 0"),
        ("train.batch_size", 1, "must be >= 2, got 1"),
        ("train.lr", 0, "must be > 0, got 0.0"),
        ("train.weight_decay", -1, "must be >= 0"),
        ("train.divergence_limit", 0, "must be > 0"),
        ("train.momentum", -0.5, "must be in [0, 1), got -0.5"),
        ("train.momentum", 1, "must be in [0, 1), got 1.0"),
        ("train.loss.noise_lr", 0, "must be > 0"),
        ("train.loss.init_noise_sigma", 0, "must be > 0"),
        ("imbalance.ranksim.interpolation_lambda", 0, "must be > 0"),
        ("train.schedule.gamma", 0, "must be > 0 (lr factor)"),
    ],
)
def test_out_of_range_values(key: str, value: Any, problem: str) -> None:
    assert error_of(nested(key, value)) == f"{SOURCE}: {key}: {problem}"


def test_loss_parameter_ranges() -> None:
    def focal(**params: Any) -> str:
        return error_of({"train": {"loss": {"name": "focal_mse", **params}}})

    assert focal(beta=0) == f"{SOURCE}: train.loss.beta: must be > 0"
    assert focal(gamma=-1) == f"{SOURCE}: train.loss.gamma: must be >= 0"
    assert focal(activation="relu") == f"{SOURCE}: train.loss.activation: allowed: sigmoid, tanh"


def test_fds_start_epochs_and_shots() -> None:
    assert error_of({"imbalance": {"fds": {"start_smooth": -1}}}) == (
        f"{SOURCE}: imbalance.fds: start_update and start_smooth must be epochs >= 0"
    )
    assert error_of({"imbalance": {"shots": {"many": 5, "few": 10}}}) == (
        f"{SOURCE}: imbalance.shots: need 0 <= few <= many"
    )


def test_balanced_mse_takes_no_sample_weights() -> None:
    message = error_of({"train": {"loss": "bmc"}, "imbalance": {"reweight": "sqrt_inv"}})
    assert message.startswith(f"{SOURCE}: imbalance.reweight: loss bmc (Balanced MSE)")
    assert build({"train": {"loss": "bmc"}}).train.loss.name == "bmc"


def test_fds_needs_more_bins_than_half_its_kernel() -> None:
    few_bins = {"data": {"bins": {"count": 2}}, "imbalance": {"fds": {"enabled": True, "ks": 5}}}
    assert error_of(few_bins) == (
        f"{SOURCE}: imbalance.fds.ks: FDS reflect-pads (ks-1)/2 = 2 bins at each end but has "
        "only 2 bins: use a smaller ks or more data.bins"
    )
    few_bins["imbalance"]["fds"]["ks"] = 3
    assert build(few_bins).fds_binning().count == 2


def test_fds_bucket_start_shortens_the_fds_bins() -> None:
    config = build({"imbalance": {"fds": {"enabled": True, "bucket_start": 3}}})
    assert (config.fds_binning().start, config.fds_binning().count) == (3.0, 99)
    assert build({}).fds_binning() == build({}).data.bins.binning()


@pytest.mark.parametrize("dataset", ["tabular", "csv_images"])
def test_file_datasets_need_a_csv(dataset: str) -> None:
    assert error_of({"data": {"name": dataset}}) == (
        f"{SOURCE}: data.csv: required for dataset {dataset!r}"
    )


# ----- paths ------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_yaml_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path / "configs" / "trial.yaml",
        "data: {name: csv_images, csv: ../data/faces.csv, root: images, cache_dir: cache}\n"
        "model: {pretrained: weights/backbone.pt}\n"
        "train: {rrt: {checkpoint: ../runs/stage1/checkpoints/epoch_0003}}\n",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_trial_config(Path("..") / "configs" / "trial.yaml")
    folder = path.parent.resolve()
    assert config.data.csv == str(tmp_path.resolve() / "data" / "faces.csv")
    assert config.data.root == str(folder / "images")
    assert config.data.cache_dir == str(folder / "cache")
    assert config.model.pretrained == str(folder / "weights" / "backbone.pt")
    assert config.train.rrt.checkpoint == str(
        tmp_path.resolve() / "runs" / "stage1" / "checkpoints" / "epoch_0003"
    )


def test_absolute_and_home_paths_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    absolute = tmp_path / "abs" / "table.csv"
    config = build({"data": {"name": "tabular", "csv": str(absolute), "cache_dir": "~/cache"}})
    assert config.data.csv == str(absolute)
    assert config.data.cache_dir == str(tmp_path / "home" / "cache")


def test_unset_paths_stay_unset() -> None:
    config = build({})
    assert config.data.csv is None
    assert config.data.root is None
    assert config.model.pretrained is None
    assert config.train.rrt.checkpoint is None


# ----- files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("seed: 1\ntrain:\n  epochs: 3\n   lr: 0.1\n", 4),
        ("seed: 1\ntrain: {epochs: 3\nmodel: x\n", 3),
        ("seed: 1\ndata:\n\tname: synthetic\n", 3),
    ],
)
def test_invalid_yaml_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path / "broken.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_trial_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line {line} not valid YAML (")
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError) as caught:
        load_trial_config(path)
    assert str(caught.value) == f"{path}: config file not found"


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "t.yaml", "train:\n  optimiser: adam\n")
    with pytest.raises(ConfigError) as caught:
        load_trial_config(path)
    assert str(caught.value).startswith(
        f"{path}: train.optimiser: unknown key (did you mean 'optimizer'?); allowed: epochs,"
    )


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    """A user fixes a file in one go: each bad key is one line, in one error."""
    with pytest.raises(ConfigError) as caught:
        build(
            {
                "train": {"lr": -1, "optimiser": "sgd", "epochs": "ten"},
                "imbalance": {"lds": {"ks": 4}},
            }
        )
    assert str(caught.value).splitlines() == [
        f"{SOURCE}: train.optimiser: unknown key (did you mean 'optimizer'?); allowed: "
        f"{ALLOWED_KEYS['train']}",
        f"{SOURCE}: train.epochs: must be an integer, got 'ten'",
    ]
    # Cross-field rules run once every field has a valid type, and report each problem too.
    with pytest.raises(ConfigError) as caught:
        build({"train": {"lr": -1}, "imbalance": {"lds": {"ks": 4}}})
    assert str(caught.value).splitlines() == [
        f"{SOURCE}: train.lr: must be > 0, got -1.0",
        f"{SOURCE}: imbalance.lds.ks: must be a positive odd integer, got 4",
    ]
