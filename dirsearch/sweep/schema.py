"""The JSON Schema of a space file, which also covers a trial config (``dirsearch train``'s file
is a space file without ``experiment``, ``search`` and ``space``).

Generated from the dataclasses (``config/json_schema.py``); ``space:`` gets one property per
dotted trial path, each a dimension whose ``choice`` values are held to that field's schema and
whose kinds are the ones the field can take (``uniform`` only for numbers, ``int`` for numbers).
The repository keeps the generated file at ``schema/space.schema.json`` for editors (the shipped
space files name it in their first line); a test checks it equals what this module generates.
"""

from __future__ import annotations

import json
import typing
from typing import Any

from dirsearch.config.fields import all_paths, dataclass_in, field_at
from dirsearch.config.json_schema import SchemaBuilder, class_doc, field_docs
from dirsearch.config.trial import TrialConfig
from dirsearch.sweep.dimensions import KINDS
from dirsearch.sweep.settings import MAX_OBJECTIVES, OBJECTIVES, SearchSettings
from dirsearch.sweep.spec_reader import EXPERIMENT_NAME

SCHEMA_PATH = "schema/space.schema.json"
"""Where the repository keeps the generated schema (relative to its root)."""
SCHEMA_LINE = "# yaml-language-server: $schema={}"
"""The first line of a space file that points YAML editors at the schema."""

PAIR: dict[str, Any] = {
    "type": "array",
    "items": {"type": "number"},
    "minItems": 2,
    "maxItems": 2,
    "description": "[low, high]",
}
INTEGER_PAIR: dict[str, Any] = {**PAIR, "items": {"type": "integer"}}
TRIAL_PATH = "#/definitions/TrialPath"
WHEN: dict[str, Any] = {
    "description": "Sample only when a path is true, or when paths equal the value(s) given.",
    "anyOf": [
        {"$ref": TRIAL_PATH},
        {"type": "object", "minProperties": 1, "propertyNames": {"$ref": TRIAL_PATH}},
    ],
}


def space_file_schema() -> dict[str, Any]:
    """The schema of a space file (and of a trial config), as plain data."""
    builder = SchemaBuilder()
    trial = builder.object_schema(TrialConfig)
    properties = dict(trial["properties"])
    properties["experiment"] = {
        "type": "string",
        "pattern": f"^{EXPERIMENT_NAME.pattern}$",
        "description": "Names the sweep folder and the MLflow experiment (default: the file's "
        "name without .yaml).",
    }
    search = builder.object_schema(SearchSettings)
    one, several = search["properties"]["metric"]["anyOf"]
    one["enum"] = several["items"]["enum"] = list(OBJECTIVES)
    several["minItems"], several["maxItems"] = 1, MAX_OBJECTIVES
    search["properties"]["points"] = {
        "type": "array",
        "description": "Start points (optuna, random) or the grid's points: mappings of dotted "
        "trial paths to values.",
        "items": {"type": "object", "propertyNames": {"$ref": TRIAL_PATH}},
    }
    train = builder.definitions["TrainConfig"]["properties"]
    train["select_metric"]["enum"] = [name for name in OBJECTIVES if name.startswith("val/")]
    builder.definitions["TrialPath"] = {"type": "string", "enum": all_paths()}
    builder.definitions["When"] = WHEN
    properties["search"] = {
        "anyOf": [search, {"type": "null"}],
        "description": "How the sweep searches: metric, budget, resources, searcher, scheduler.",
    }
    properties["space"] = {
        "description": "Dimensions: dotted trial-config path -> one of choice, uniform, "
        "loguniform, int (with optional when).",
        "type": ["object", "null"],
        "properties": {path: _dimension(builder, path) for path in all_paths()},
        "additionalProperties": False,
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "dirsearch space file or trial config",
        "description": "A sweep (experiment, search, space) over a trial config (seed, data, "
        "model, train, imbalance); a trial config alone is what `dirsearch train` reads.",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "definitions": builder.definitions,
    }


def schema_text() -> str:
    """The schema as the repository's file holds it."""
    return json.dumps(space_file_schema(), indent=2) + "\n"


def _dimension(builder: SchemaBuilder, path: str) -> dict[str, Any]:
    found = field_at(path)
    assert found is not None  # every path of all_paths() is a field
    hint, metadata = found
    kinds = _kinds(hint)
    properties: dict[str, Any] = {
        "choice": {"type": "array", "minItems": 1, "items": builder.value(hint, metadata)},
        "when": {"$ref": "#/definitions/When"},
    }
    if "uniform" in kinds:
        properties["uniform"] = PAIR
        properties["loguniform"] = PAIR
    if "int" in kinds:
        properties["int"] = INTEGER_PAIR
        properties["step"] = {"type": "integer", "minimum": 1}
        properties["log"] = {"type": "boolean"}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "oneOf": [{"required": [kind]} for kind in KINDS if kind in kinds],
    }
    description = _description(path)
    return {"description": description, **schema} if description else schema


def _kinds(hint: Any) -> tuple[str, ...]:
    """The dimension kinds a field takes: numbers are ranges too, everything is a choice."""
    arguments = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    if arguments[0] is float:
        return ("choice", "uniform", "loguniform", "int")
    if arguments[0] is int:
        return ("choice", "int")
    return ("choice",)


def _description(path: str) -> str | None:
    """The field's docstring, else the class docstring of the section it holds."""
    parent, _, name = path.rpartition(".")
    owner = dataclass_in(field_at(parent)[0]) if parent else TrialConfig  # type: ignore[index]
    assert owner is not None
    inner = dataclass_in(typing.get_type_hints(owner)[name])
    return field_docs(owner).get(name) or (class_doc(inner) if inner else None)
