"""The words for how a trial stands, one vocabulary for the leaderboard, the console and the
trial's MLflow run, so a user reading any of them sees the same status."""

from __future__ import annotations

COMPLETED = "completed"
ERRORED = "errored"
NOT_STARTED = "not started"


def trial_status(
    epochs: int, max_epochs: int, *, diverged: bool, errored: bool, started: bool = True
) -> str:
    """``completed``, ``stopped at epoch N`` (by ASHA, or by the end of a sweep stopped early),
    ``diverged at epoch N`` (the epoch it diverged in), ``errored`` or ``not started``."""
    if diverged:
        return f"diverged at epoch {epochs + 1}"
    if errored:
        return ERRORED
    if epochs >= max_epochs:
        return COMPLETED
    if not started:
        return NOT_STARTED
    return f"stopped at epoch {epochs}"
