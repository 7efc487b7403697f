"""JSON Schema (draft-07) of config dataclasses, generated from the dataclasses themselves.

The schema says what the loader accepts, so an editor can complete keys, list choices and flag a
typo while the file is written: each dataclass becomes an object that allows only its fields,
``choices(...)`` metadata becomes an enum, the default is the dataclass default, and the
description is the field's attribute docstring (the string literal right after it, read from
the source with ``ast``) or else its section's class docstring. What the loader adds to plain
types is mirrored: a section may be null (its defaults), a section with a ``name`` field may be
just the name (``loss: l1``), a float may be a YAML 1.1 string such as ``1e-3``, and the target
bins may be ``auto``. Cross-field rules (an odd ``ks``, LDS needing a re-weighting) stay with
``dirsearch validate``.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import textwrap
import types
import typing
from typing import Any

from dirsearch.config.auto_bins import AUTO
from dirsearch.config.fields import dataclass_in
from dirsearch.config.loader import plain_data
from dirsearch.config.trial import BinsConfig

FLOAT_TEXT = r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"
"""A number written as YAML 1.1 reads it as a string (``1e-3``); the loader accepts it."""

NUMBER: dict[str, Any] = {
    "description": "A number (YAML 1.1 reads 1e-3 as text; that is taken as a number too).",
    "anyOf": [{"type": "number"}, {"type": "string", "pattern": FLOAT_TEXT}],
}
AUTO_VALUE: dict[str, Any] = {"const": AUTO, "description": "derived from the data's targets"}


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a class's fields, whitespace folded to single spaces."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = _folded(after.value.value)
    return docs


def class_doc(cls: type) -> str | None:
    """A class's own docstring (not the signature dataclasses put there when it has none)."""
    doc = cls.__doc__
    if not doc or doc.startswith(f"{cls.__name__}("):
        return None
    return _folded(doc)


def _folded(text: str) -> str:
    return " ".join(inspect.cleandoc(text).split())


class SchemaBuilder:
    """Builds schemas of dataclass trees; each dataclass is one entry of ``definitions``."""

    def __init__(self) -> None:
        self.definitions: dict[str, dict[str, Any]] = {}

    def section(self, cls: type) -> dict[str, Any]:
        """A reference to the object schema of ``cls`` (registered on first use)."""
        name = cls.__name__
        if name not in self.definitions:
            self.definitions[name] = {}  # placeholder: a recursive use refers to it
            self.definitions[name] = self.object_schema(cls)
        return {"$ref": f"#/definitions/{name}"}

    def object_schema(self, cls: type) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        docs = field_docs(cls)
        properties = {}
        for item in dataclasses.fields(cls):  # type: ignore[arg-type]
            schema = self.value(hints[item.name], dict(item.metadata))
            if cls is BinsConfig:
                schema = {"anyOf": [schema, AUTO_VALUE]}
            properties[item.name] = {**schema, **_annotations(item, hints[item.name], docs)}
        schema: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        doc = class_doc(cls)
        return {"description": doc, **schema} if doc else schema

    def value(self, hint: Any, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """The schema of one field's values (without its description and default)."""
        metadata = metadata or {}
        origin, arguments = typing.get_origin(hint), typing.get_args(hint)
        if origin in (types.UnionType, typing.Union):
            inner = [argument for argument in arguments if argument is not type(None)]
            if type(None) not in arguments:  # ``str | tuple[str, ...]``: one or a list
                return {"anyOf": [self.value(argument, metadata) for argument in inner]}
            return {"anyOf": [self.value(inner[0], metadata), {"type": "null"}]}
        if dataclasses.is_dataclass(hint):
            return {"anyOf": self._section_forms(hint)}
        if origin is tuple:
            return {"type": "array", "items": self.value(arguments[0], metadata)}
        if hint is bool:
            return {"type": "boolean"}
        if hint is int:
            return {"type": "integer"}
        if hint is float:
            self.definitions.setdefault("Number", NUMBER)
            return {"$ref": "#/definitions/Number"}
        if metadata.get("choices"):
            return {"type": "string", "enum": list(metadata["choices"])}
        return {"type": "string"}

    def _section_forms(self, cls: Any) -> list[dict[str, Any]]:
        """A section as the loader takes it: a mapping, null (the defaults), its name alone
        when it has a ``name`` field (``loss: l1``), ``auto`` for the target bins."""
        forms = [self.section(cls), {"type": "null"}]
        fields = {item.name: item for item in dataclasses.fields(cls)}
        if "name" in fields:
            forms.append(self.value(str, dict(fields["name"].metadata)))
        if cls is BinsConfig:
            forms.append(AUTO_VALUE)
        return forms


def _annotations(item: dataclasses.Field, hint: Any, docs: dict[str, str]) -> dict[str, Any]:
    """The description (field docstring, else the section's class docstring) and default."""
    annotations: dict[str, Any] = {}
    inner = dataclass_in(hint)
    description = docs.get(item.name) or (class_doc(inner) if inner else None)
    if description:
        annotations["description"] = description
    if item.default is not dataclasses.MISSING:
        annotations["default"] = plain_data(item.default)
    elif item.default_factory is not dataclasses.MISSING and inner is None:
        annotations["default"] = plain_data(item.default_factory())
    return annotations
