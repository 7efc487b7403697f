"""One line per problem of one file, collected so that a single reading reports them all.

Both the trial-config loader and the space-file reader collect problems this way: a user fixing a
file sees every problem at once, each as ``FILE: key.path: what is wrong (allowed: ...)``.
"""

from __future__ import annotations

from dirsearch.errors import ConfigError, ConfigProblems

MAX_LINES = 20
"""Most problem lines one error shows (the last one says how many more there are)."""


class Problems:
    """The problems found so far in ``source``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[str] = []

    def error(self, key: str, message: str) -> ConfigError:
        """The error for one problem, to raise where going on makes no sense."""
        return ConfigError(f"{self.source}: {key}: {message}")

    def add(self, key: str, message: str) -> None:
        self.lines.append(f"{self.source}: {key}: {message}")

    def absorb(self, error: ConfigError, prefix: str = "") -> None:
        """Keep the lines of an error (several for ConfigProblems), each explained by
        ``prefix`` when given (``space.train.lr: value 0 is refused: ``)."""
        for line in getattr(error, "problems", None) or [str(error)]:
            inner = line.removeprefix(f"{self.source}: ")
            self.lines.append(f"{self.source}: {prefix}{inner}")

    def raise_if_any(self) -> None:
        """Raise every problem found, or the first ``MAX_LINES`` of them and how many more
        (a broken or hostile file can have thousands)."""
        if len(self.lines) > MAX_LINES:
            more = len(self.lines) - MAX_LINES + 1
            raise ConfigProblems([*self.lines[: MAX_LINES - 1], f"{self.source}: and {more} more"])
        if self.lines:
            raise ConfigProblems(self.lines)
