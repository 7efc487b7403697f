"""The sweep folder: where a sweep goes, the name of every file in it, and reading and writing
them on a local folder, a shared path or an object store alike (through pyarrow's file systems,
so ``dirsearch report`` needs no running Ray)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from pyarrow import fs as pafs

from dirsearch.common.files import write_atomically
from dirsearch.common.formatting import brief, shortened
from dirsearch.errors import ConfigError
from dirsearch.sweep.spec import SweepSpec, spec_from_dict
from dirsearch.sweep.spec_reader import EXPERIMENT_NAME, NAME_RULE

# The files of a sweep folder, <storage>/<name>/:
SPEC_FILE = "sweep.json"
"""The resolved sweep (``SweepSpec.to_dict``): ``resume`` and ``report`` need nothing else."""
SPACE_FILE = "space.yaml"
"""The space file as the user gave it."""
LEADERBOARD_MD, LEADERBOARD_CSV = "leaderboard.md", "leaderboard.csv"
RESULTS_MD, RESULTS_CSV = "results.md", "results.csv"
"""The winner's balanced-test table."""
CONFIRM = "confirm"
"""The confirm phase's own experiment folder (a second Tuner), and its tables' stem."""
CONFIRM_MD, CONFIRM_CSV = f"{CONFIRM}.md", f"{CONFIRM}.csv"
PARETO_MD, PARETO_CSV = "pareto.md", "pareto.csv"
"""Several objectives: the Pareto-optimal trials' balanced-test tables."""
IMPORTANCE_MD = "importance.md"
"""Which searched knobs matter for the first objective."""
ABLATION = "ablation"
"""The ablation phase's own experiment folder (a Tuner, resumed like confirm), its tables' stem."""
ABLATION_MD, ABLATION_CSV = f"{ABLATION}.md", f"{ABLATION}.csv"
RUN_MAP_FILE = "mlflow_runs.json"
"""Ray trial id -> MLflow run id, so a resumed sweep continues the same runs."""
DEFAULT_STORE = "mlflow.db"
"""The sqlite MLflow store of a sweep without ``--tracking-uri``."""
ARTIFACTS = "mlartifacts"
"""The sqlite store's artifact folder."""
PLOTS = "plots"
MODEL = "best_model"
"""The winner's exported MLflow model."""
TABLE_FILES = (
    SPACE_FILE,
    SPEC_FILE,
    LEADERBOARD_MD,
    LEADERBOARD_CSV,
    RESULTS_MD,
    RESULTS_CSV,
    CONFIRM_MD,
    CONFIRM_CSV,
    PARETO_MD,
    PARETO_CSV,
    IMPORTANCE_MD,
    ABLATION_MD,
    ABLATION_CSV,
)
"""The text files a finished sweep publishes on its parent MLflow run."""

# Inside a trial folder (Ray's names) and its checkpoints (ours):
PARAMS_FILE, RESULT_FILE, ERROR_FILE = "params.json", "result.json", "error.txt"
SEED_FOLDER = "seed_{}"
"""One per seed in a trial's checkpoint: ``seed_0/``, ``seed_1/``, ..."""
TRIAL_PREFIX = "trial_"
"""Trial folders are ``trial_<number>_<id>`` (see ``trial_folder_name``)."""


def trial_number(trial: Any) -> int:
    """A Ray trial's creation order, from 1: the prefix of its experiment tag ("3_lr=0.1")."""
    return int(str(trial.experiment_tag).split("_", 1)[0])


def parse_folder_name(name: str) -> tuple[int, str]:
    """(number, trial id) of a trial folder name."""
    number, trial_id = name.removeprefix(TRIAL_PREFIX).split("_", 1)
    return int(number), trial_id


def trial_folder_name(trial: Any) -> str:
    """Named by number and id only: sampled values (loss mappings, say) make poor names."""
    return f"{TRIAL_PREFIX}{trial_number(trial):04d}_{trial.trial_id}"


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow file system and path of a local folder or a URI (s3://, gs://, ...)."""
    if "://" in location:
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), location


def read_text(location: str, errors: str = "strict") -> str | None:
    """A file's text, or None when it does not exist; ``errors`` as for ``bytes.decode``
    (``replace``: a line cut inside a character still reads, for the caller to refuse)."""
    system, path = filesystem(location)
    if system.get_file_info(path).type != pafs.FileType.File:
        return None
    with system.open_input_stream(path) as stream:
        return stream.read().decode(errors=errors)


def write_text(location: str, text: str) -> None:
    """Write a whole file so that a reader, or a crash halfway, sees the old file or the new
    one, never a torn one: locally a temporary file renamed over it (``write_atomically``); an
    object store's put is atomic by itself."""
    system, path = filesystem(location)
    if isinstance(system, pafs.LocalFileSystem):
        write_atomically(path, text.encode())
        return
    system.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with system.open_output_stream(path) as stream:
        stream.write(text.encode())


def new_folder(spec: SweepSpec, storage: str | None, name: str | None) -> str:
    """``<storage>/<name>``: storage absolute (Ray requires it) or a URI; the name defaults to
    ``<experiment>-<date-time>``."""
    root = storage or "runs"
    if "?" in root:  # the sweep folder is <storage>/<name>: a query would end up in the middle
        raise ConfigError(
            f"--storage {root}: query parameters are not supported; give the endpoint of an "
            f"S3-compatible store as AWS_ENDPOINT_URL (on every node) and --storage s3://bucket/path"
        )
    if name is not None and not EXPERIMENT_NAME.fullmatch(name):
        # Checked like `experiment`: "../../x" or "/tmp/x" would put the sweep outside --storage.
        raise ConfigError(f"--name: {NAME_RULE}, got {brief(name)}")
    if "://" not in root:
        root = str(Path(root).expanduser().resolve())
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{root.rstrip('/')}/{name or f'{spec.experiment}-{stamp}'}"


def holds_sweep(folder: str) -> bool:
    return read_text(f"{folder.rstrip('/')}/{SPEC_FILE}", errors="replace") is not None


def load_spec(folder: str) -> SweepSpec:
    """The sweep of a folder, from its ``sweep.json``; a file that does not read back as one
    (torn by a crash, edited, from another version) is one error line naming it."""
    location = f"{folder.rstrip('/')}/{SPEC_FILE}"
    text = read_text(location, errors="replace")
    if text is None:
        raise ConfigError(
            f"{folder}: not a sweep folder (no {SPEC_FILE}); give the folder that "
            f"`dirsearch run` printed"
        )
    try:
        return spec_from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        raise ConfigError(
            f"{location}: unreadable ({shortened(f'{type(error).__name__}: {error}', 100)}); "
            f"the file is torn or was edited: the sweep in this folder cannot be read"
        ) from None
