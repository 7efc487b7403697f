"""How often the driver saves Ray's experiment state: every second while a save is cheap, and
never more than 5% of the driver's time once the sweep is big.

A save writes the state of every trial (one JSON document) and the searcher (a pickle of the
whole Optuna study), so it costs O(trials). At a fixed period the saves of an N-trial sweep cost
O(N**2): with 1 s they took 27% of the driver at 1,800 no-op trials and 40% at 3,000, and once a
save takes longer than the period the driver saves at every step. Ray's own adaptive rule
(``TUNE_GLOBAL_CHECKPOINT_S=auto``) bounds the share but never saves more often than every 10 s,
even when a save costs a millisecond, so a killed driver would lose up to 10 s of trial starts
in every sweep. The rule here: the next save is due ``max(1 s, 19 x the last save's cost)``
after the last one. A small sweep keeps its one-second saves; a big one loses at most the trials
started in the last ``19 x save cost`` seconds (bench/RESULTS.md gives the cost at 10,000 trials).
Saves that Ray forces (a trial checkpointed ``num_to_keep`` times since the last save) still
happen at once.

Ray builds its checkpoint manager inside ``TuneController``, which the Tuner constructs, so the
rule is installed on the class (``save_adaptively``); ray is pinned to 2.60 and
tests/test_experiment_state.py runs the manager on a real Ray storage.
"""

from __future__ import annotations

import os

from ray.tune.execution.experiment_state import _ExperimentCheckpointManager
from ray.tune.execution.tune_controller import TuneController

SAVE_FLOOR_S = 1.0
"""The shortest period between two saves of the experiment state."""
SAVE_SHARE = 0.05
"""The largest share of the driver's time the periodic saves may take."""


class SaveShareCheckpointManager(_ExperimentCheckpointManager):
    """Ray's experiment checkpoint manager with the period ``max(SAVE_FLOOR_S, cost x
    (1 - SAVE_SHARE) / SAVE_SHARE)`` after each save of the given cost."""

    def __init__(self, **options: object) -> None:
        super().__init__(checkpoint_period=SAVE_FLOOR_S, **options)

    def _update_auto_checkpoint_time(self, time_taken: float) -> None:
        """Called by Ray after every save with what it cost (Ray's own rule runs only with
        ``auto``)."""
        self._checkpoint_period = max(SAVE_FLOOR_S, time_taken * (1 - SAVE_SHARE) / SAVE_SHARE)


_RAY_MANAGER = TuneController._create_checkpoint_manager


def _create_checkpoint_manager(controller: TuneController) -> _ExperimentCheckpointManager:
    """``TuneController._create_checkpoint_manager``: Ray's own manager when the user set
    ``TUNE_GLOBAL_CHECKPOINT_S`` (a number, or ``auto`` for Ray's rule), else the one above
    with the arguments Ray passes to its own."""
    if "TUNE_GLOBAL_CHECKPOINT_S" in os.environ:
        return _RAY_MANAGER(controller)
    return SaveShareCheckpointManager(
        storage=controller._storage,
        sync_every_n_trial_checkpoints=controller._trial_checkpoint_config.num_to_keep,
    )


def save_adaptively() -> None:
    """Every Tuner this driver constructs or restores from now on saves by the rule above."""
    TuneController._create_checkpoint_manager = _create_checkpoint_manager
