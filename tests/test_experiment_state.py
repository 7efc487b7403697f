"""How often the driver saves Ray's experiment state, on Ray's real checkpoint manager and
storage: every second while a save is cheap, 19x a save's cost once it is not, a forced save at
once, and a period the user set winning over the rule. (On a busy machine even an empty save
costs tens of milliseconds, so the periods are checked against what each save cost.)"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from ray.train._internal.storage import StorageContext
from ray.tune import CheckpointConfig
from ray.tune.execution.experiment_state import _ExperimentCheckpointManager
from ray.tune.execution.tune_controller import TuneController
from sweep_helpers import local_ray

from dirsearch.tune.experiment_state import (
    SAVE_FLOOR_S,
    SaveShareCheckpointManager,
    save_adaptively,
)

pytestmark = pytest.mark.slow

STATE = "experiment_state-test.json"


@pytest.fixture(scope="module", autouse=True)
def ray_running() -> Iterator[None]:
    """Ray's storage stages the driver's files in the Ray session's folder."""
    with local_ray():
        yield


def storage(folder: Path, name: str = "exp") -> StorageContext:
    return StorageContext(storage_path=str(folder), experiment_dir_name=name)


def saver(context: StorageContext, seconds: float, saves: list[float]) -> Callable[[], None]:
    """A save that writes a state file to the driver's staging folder in ``seconds``."""

    def save() -> None:
        staging = Path(context.experiment_driver_staging_path)
        staging.mkdir(parents=True, exist_ok=True)
        (staging / STATE).write_text(f'{{"save": {len(saves)}}}')
        time.sleep(seconds)
        saves.append(time.monotonic())

    return save


def test_saves_come_a_second_apart_while_cheap_and_reach_the_storage(tmp_path: Path) -> None:
    context = storage(tmp_path)
    manager = SaveShareCheckpointManager(storage=context, sync_every_n_trial_checkpoints=None)
    saves: list[float] = []
    save = saver(context, 0.0, saves)
    deadline = time.monotonic() + 30
    while len(saves) < 3 and time.monotonic() < deadline:
        before, started = len(saves), time.monotonic()
        manager.sync_up_experiment_state(save)
        if len(saves) > before:  # Ray's measure of the save lies within this call
            cost = time.monotonic() - started
            assert SAVE_FLOOR_S <= manager._checkpoint_period <= max(SAVE_FLOOR_S, 19 * cost)
        time.sleep(0.01)
    assert len(saves) == 3
    assert all(b - a >= SAVE_FLOOR_S for a, b in pairwise(saves))
    manager.sync_up_experiment_state(save, force=True, wait=True)
    assert (tmp_path / "exp" / STATE).read_text() == f'{{"save": {len(saves) - 1}}}'


def test_a_costly_save_spaces_the_next_ones_to_a_twentieth_of_the_time(tmp_path: Path) -> None:
    context = storage(tmp_path)
    manager = SaveShareCheckpointManager(storage=context, sync_every_n_trial_checkpoints=None)
    saves: list[float] = []
    save = saver(context, 0.2, saves)
    manager.sync_up_experiment_state(save)
    assert manager._checkpoint_period >= 19 * 0.2
    time.sleep(SAVE_FLOOR_S + 0.1)
    manager.sync_up_experiment_state(save)
    assert len(saves) == 1  # the one-second floor has passed, not 19x the save's cost
    manager.sync_up_experiment_state(save, force=True)
    assert len(saves) == 2  # Ray's forced saves (num_to_keep) are not held back


def test_tuners_use_the_rule_unless_the_user_set_a_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_adaptively()
    monkeypatch.delenv("TUNE_GLOBAL_CHECKPOINT_S", raising=False)
    ours = TuneController(
        storage=storage(tmp_path, "ours"), trial_checkpoint_config=CheckpointConfig(num_to_keep=2)
    )._checkpoint_manager
    assert isinstance(ours, SaveShareCheckpointManager)
    assert ours._sync_every_n_trial_checkpoints == 2  # Ray's forced saves stay as they were
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "7")
    theirs = TuneController(storage=storage(tmp_path, "theirs"))._checkpoint_manager
    assert type(theirs) is _ExperimentCheckpointManager
    assert theirs._checkpoint_period == 7.0
