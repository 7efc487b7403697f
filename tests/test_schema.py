"""The JSON Schema of space files: the committed file is what the dataclasses generate, every
shipped space file (and a trial config, and what init writes) passes it and names it in its first
line, broken files fail it (and the loader refuses them too), and its enums, defaults and
descriptions come from the config's own fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from sweep_helpers import TINY_SWEEP
from trial_helpers import merged

from dirsearch.cli.main import main
from dirsearch.config.json_schema import field_docs
from dirsearch.config.trial import DataConfig, LDSConfig
from dirsearch.errors import ConfigError
from dirsearch.imbalance.vocabulary import KERNELS
from dirsearch.sweep.schema import SCHEMA_LINE, SCHEMA_PATH, schema_text, space_file_schema
from dirsearch.sweep.spec_reader import load_sweep_spec

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "search_spaces").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    """The generated schema (the committed file is checked to equal it below)."""
    schema = space_file_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def errors(validator: jsonschema.Draft7Validator, document: Any) -> list[str]:
    return [
        f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(document)
    ]


def test_the_committed_schema_is_what_the_config_generates() -> None:
    assert json.loads((ROOT / SCHEMA_PATH).read_text()) == space_file_schema()
    assert (ROOT / SCHEMA_PATH).read_text() == schema_text(), (
        "regenerate it: dirsearch schema --out schema/space.schema.json"
    )


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_every_shipped_space_file_passes_and_names_the_schema(
    validator: jsonschema.Draft7Validator, path: Path
) -> None:
    assert errors(validator, yaml.safe_load(path.read_text())) == []
    first = path.read_text().splitlines()[0]
    assert first == SCHEMA_LINE.format(f"../{SCHEMA_PATH}")
    assert (path.parent / f"../{SCHEMA_PATH}").resolve().is_file()


def test_a_trial_config_and_the_test_sweep_pass(validator: jsonschema.Draft7Validator) -> None:
    trial = {key: value for key, value in TINY_SWEEP.items() if key not in ("search", "space")}
    del trial["experiment"]
    assert errors(validator, trial) == []
    assert errors(validator, TINY_SWEEP) == []
    shorthand = {"train": {"loss": "focal_l1", "lr": "1e-3"}, "data": {"bins": "auto"}}
    assert errors(validator, shorthand) == []  # name shorthand, YAML 1.1 float text, auto bins
    assert errors(validator, {"data": {"bins": {"width": "auto", "count": 40}}}) == []


BROKEN: dict[str, tuple[dict[str, Any], str]] = {
    "unknown key": ({"train": {"lrr": 0.1}}, "train"),
    "unknown section": ({"trian": {"lr": 0.1}}, "'trian' was unexpected"),
    "unknown choice": ({"imbalance": {"reweight": "sqrtinv"}}, "imbalance"),
    "wrong type": ({"train": {"epochs": "ten"}}, "train"),
    "bad bins": ({"data": {"bins": {"width": "automatic"}}}, "data"),
    "bad experiment": ({"experiment": "my sweep!"}, "does not match"),
    "bad metric": ({"search": {"metric": "val/few/mea"}}, "search"),
    "unknown space path": ({"space": {"train.lrr": {"choice": [1]}}}, "'train.lrr' was unexpected"),
    "range on a boolean": (
        {"space": {"imbalance.lds.enabled": {"uniform": [0, 1]}}},
        "imbalance.lds.enabled",
    ),
    "choice outside the field": (
        {"space": {"imbalance.lds.kernel": {"choice": ["gaussian", "box"]}}},
        "'box' is not one of",
    ),
    "two kinds": ({"space": {"train.lr": {"uniform": [0, 1], "loguniform": [1, 2]}}}, "train.lr"),
    "unknown dimension key": ({"space": {"train.lr": {"uniform": [0, 1], "stepp": 2}}}, "stepp"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_files_fail_the_schema_and_the_loader(
    validator: jsonschema.Draft7Validator, tmp_path: Path, name: str
) -> None:
    change, expected = BROKEN[name]
    document = merged(TINY_SWEEP, change)
    found = errors(validator, document)
    assert found and any(expected in line for line in found), found
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(ConfigError):
        load_sweep_spec(path)


def test_enums_defaults_and_descriptions_come_from_the_fields() -> None:
    schema = space_file_schema()
    lds = schema["definitions"]["LDSConfig"]["properties"]
    assert lds["kernel"]["enum"] == list(KERNELS)
    assert lds["ks"] == {
        "type": "integer",
        "description": field_docs(LDSConfig)["ks"],
        "default": 5,
    }
    bins = schema["definitions"]["DataConfig"]["properties"]["bins"]
    assert bins["description"] == field_docs(DataConfig)["bins"]
    assert {"const": "auto"}.items() <= bins["anyOf"][-1].items()
    sigma = schema["properties"]["space"]["properties"]["imbalance.lds.sigma"]
    assert sigma["description"] == field_docs(LDSConfig)["sigma"]
    assert set(sigma["properties"]) >= {"choice", "uniform", "loguniform", "when"}
    reweight = schema["properties"]["space"]["properties"]["imbalance.reweight"]
    assert "uniform" not in reweight["properties"]


def test_the_schema_command_prints_or_writes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == schema_text()
    out = tmp_path / "editor" / "space.schema.json"
    assert main(["schema", "--out", str(out)]) == 0
    assert out.read_text() == schema_text()
