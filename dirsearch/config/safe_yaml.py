"""A YAML reader for files from anyone: PyYAML's safe loader, minus what lets a small file hang
the reader, blow up an error message or mean something else than it says.

- Aliases (``*name``) are refused: a few lines of nested aliases (a "billion laughs") stand
  for a value of gigabytes that any error message or deep copy would expand. No dirsearch file
  needs them; the value is written out instead.
- Nesting deeper than ``MAX_DEPTH`` is refused before PyYAML recurses into it (10,000 brackets
  overflow its recursive composer).
- A key given twice in one mapping is refused (PyYAML keeps the last one silently).
- The text must be UTF-8 and at most ``MAX_FILE_BYTES`` long (a space file is a few kB; the
  pure-Python parser reads about 30 kB a second of a long list).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

MAX_FILE_BYTES = 64 * 1024
"""Largest YAML file read (a space or config file is a few kB)."""
MAX_DEPTH = 50
"""Deepest nesting of mappings and lists (dirsearch's own files nest 4 levels)."""


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without aliases, deep nesting or duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ComposerError(
                None,
                None,
                f"alias *{event.anchor} is not supported: write the value out",
                event.start_mark,
            )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise ComposerError(
                    None,
                    None,
                    f"nested more than {MAX_DEPTH} levels deep",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, MappingNode):
            self.flatten_mapping(node)
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: the safe loader's own error says so below
                    continue
                if duplicate:
                    raise ConstructorError(
                        None, None, f"key {str(key)[:60]!r} is given twice", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str) -> Any:
    """The one document of ``text`` (None for an empty one); raises ``yaml.YAMLError``."""
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
