"""User-facing error types.

Every error a user can fix is raised as one of these, with a one-line message that names the
file, key or row and says what is allowed. The CLI turns them into exit code 2 without a trace.
"""


class DirsearchError(ValueError):
    """Bad input a user can fix: the message alone must say what to change."""


class ConfigError(DirsearchError):
    """A configuration file or value is invalid (message names the file and key path)."""


class DataError(DirsearchError):
    """A data file, row or image is missing or invalid (message names the file and row)."""


class ConfigProblems(ConfigError):
    """Several problems found in one reading of a file: one line each, all reported at once."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)
