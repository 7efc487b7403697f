"""The sweep's runs as the sweep folder remembers them (``mlflow_runs.json``): what a resumed
sweep, a second phase and ``dirsearch ui`` need to find the same store, experiment and runs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from dirsearch.sweep.folder import RUN_MAP_FILE, read_text, write_text


@dataclass
class RunMap:
    tracking_uri: str
    experiment_id: str
    parent: str
    trials: dict[str, str] = field(default_factory=dict)
    """Ray trial id -> MLflow run id."""

    @staticmethod
    def load(folder: str) -> RunMap | None:
        text = read_text(f"{folder}/{RUN_MAP_FILE}")
        return None if text is None else RunMap(**json.loads(text))

    def save(self, folder: str) -> None:
        write_text(f"{folder}/{RUN_MAP_FILE}", json.dumps(asdict(self), indent=2))
