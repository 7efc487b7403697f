"""A sweep run or resumed on Ray: the folder's files, the Tuner fitted, the sweep finished.

One sweep = one folder ``<storage>/<name>/`` (see ``dirsearch.sweep.folder``) that holds Ray's
experiment state and trial folders, ``sweep.json`` (the resolved spec: resume needs nothing
else), a copy of the space file, and at the end the leaderboard and the test table.
"""

from __future__ import annotations

import json
from pathlib import Path

from ray import tune

from dirsearch.errors import ConfigError
from dirsearch.sweep.folder import SPACE_FILE, SPEC_FILE, load_spec, parse_folder_name, write_text
from dirsearch.sweep.spec import SweepSpec
from dirsearch.tune.driver import configure_driver
from dirsearch.tune.finish import SweepOutcome, finish
from dirsearch.tune.tuners import Callbacks, Say, print_line, search_tuner, trainable_for


def run(
    spec: SweepSpec,
    space_text: str,
    folder: str,
    *,
    callbacks: Callbacks = (),
    say: Say = print_line,
) -> SweepOutcome:
    """Start a sweep in ``folder`` (Ray must be running); returns when it ends or stops."""
    configure_driver()
    write_text(f"{folder}/{SPEC_FILE}", json.dumps(spec.to_dict(), indent=2))
    write_text(f"{folder}/{SPACE_FILE}", space_text)
    resources = spec.search.resources
    say(
        f"sweep {spec.experiment}: {spec.total_trials} trials of up to {spec.epochs} epochs, "
        f"{spec.search.max_concurrent} at a time, {resources.cpu:g} CPU "
        f"{resources.gpu:g} GPU each -> {folder}"
    )
    tuner = search_tuner(spec, folder, list(callbacks), say)
    return _fit_and_finish(spec, folder, tuner, list(callbacks), say)


def resume(folder: str, *, callbacks: Callbacks = (), say: Say = print_line) -> SweepOutcome:
    """Continue a sweep whose driver stopped: finished trials stay, running ones continue from
    their checkpoints, and Optuna's and ASHA's state come back from Ray's experiment state."""
    configure_driver()
    folder = folder.rstrip("/")
    spec = load_spec(folder)
    if not tune.Tuner.can_restore(folder):
        raise ConfigError(f"{folder}: Ray's experiment state is missing; the sweep cannot resume")
    say(f"resuming sweep {spec.experiment} in {folder}")
    tuner = tune.Tuner.restore(
        folder,
        trainable=trainable_for(spec, repeats=spec.search.repeats, evaluate_test=False),
        resume_errored=True,
    )
    return _fit_and_finish(spec, folder, tuner, list(callbacks), say)


def _fit_and_finish(
    spec: SweepSpec,
    folder: str,
    tuner: tune.Tuner,
    callbacks: Callbacks,
    say: Say,
) -> SweepOutcome:
    results = tuner.fit()
    if results.num_terminated + results.num_errors < spec.total_trials:
        return SweepOutcome(folder, finished=False)
    checkpoints = {parse_folder_name(Path(r.path).name)[1]: r.checkpoint for r in results}
    return finish(spec, folder, checkpoints, callbacks, say)
