"""The driver's Ray: a local instance on loopback (or the cluster at ``--address``), the settings
that keep the console ours, and the check that the cluster can host a trial at all."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

import optuna
import ray
from ray._private import ray_constants

from dirsearch.common.stop_signals import sigterm_as_ctrl_c
from dirsearch.errors import ConfigError
from dirsearch.sweep.environment import environment_problems
from dirsearch.sweep.spec import SweepSpec
from dirsearch.tune.experiment_state import save_adaptively


def start_ray(address: str | None) -> None:
    """A local Ray sized to this machine and reachable from it only, or the cluster at
    ``address``. Either way SIGTERM then stops the sweep as Ctrl-C does (``ray.init`` replaces
    the handler with its own)."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
        sigterm_as_ctrl_c()
        return
    import torch

    with _loopback_node():
        ray.init(
            address="local",
            num_cpus=os.cpu_count(),
            num_gpus=torch.cuda.device_count(),
            include_dashboard=False,
            logging_level=logging.WARNING,
            _node_ip_address=LOOPBACK,
        )
    sigterm_as_ctrl_c()


LOOPBACK = "127.0.0.1"
SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's switch between a node that others can join (Linux's default) and one that cannot."""


@contextlib.contextmanager
def _loopback_node() -> Iterator[None]:
    """While a local Ray starts: its node's address is 127.0.0.1, so the GCS, the raylet, the
    agents and every worker listen on loopback only (Ray binds a node's servers to 127.0.0.1
    exactly when that is the node's address, and to every interface otherwise). A local sweep
    needs nothing reachable from the network; token authentication stays on as Ray sets it.

    ``_node_ip_address="127.0.0.1"`` alone is not enough: Ray turns a loopback address given
    to ``ray.init`` back into the machine's network address, except in its single-machine mode
    (the default on macOS and Windows, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``). That mode is
    switched on for the start only: the variable, for the processes the node starts, and the
    flag Ray read from it when it was imported. ``--address`` does not come here."""
    saved_variable = os.environ.get(SINGLE_MACHINE)
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[SINGLE_MACHINE] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_variable is None:
            os.environ.pop(SINGLE_MACHINE, None)
        else:
            os.environ[SINGLE_MACHINE] = saved_variable


def configure_driver() -> None:
    """Driver-side settings (environment variables the user set win). The experiment state is
    saved every second while a save is cheap and at most 5% of the driver's time once the sweep
    is big (experiment_state.py), so a killed driver loses only the trials it started since the
    last save (Ray's adaptive default waits at least 10 s). The console shows our one line per
    trial: Ray's tables and banners, Optuna's and MLflow's INFO lines and Optuna's
    experimental-feature warning stay off."""
    save_adaptively()
    # Checkpointing every epoch of short trials is the point here, not a bottleneck to warn of.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables, no banners
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its schema-creation INFO lines
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def check_cluster(spec: SweepSpec) -> None:
    """Fail before any trial starts when the cluster cannot host one (Ray would leave the
    trials PENDING forever)."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    problems = environment_problems(spec, gpus)
    cpus = resources.get("CPU", 0)
    if spec.search.resources.cpu > cpus:
        problems.append(
            f"{spec.source}: search.resources.cpu: each trial asks for "
            f"{spec.search.resources.cpu:g} CPUs but the cluster has {cpus:g}"
        )
    if problems:
        raise ConfigError("\n".join(problems))
