"""Watch a trial from the outside: every model forward and every optimiser step it makes.

The knob tests compare what a trial really computed with a computation by hand. To see it
without reaching into the trainer (whose loop may be restructured), the recorder uses torch's
global hooks: ``register_module_forward_(pre_)hook`` for every ``DIRRegressor`` call (inputs,
targets, epoch, encoder features, the regressor's actual input, predictions) and
``register_optimizer_step_(pre/post)_hook`` for every step (parameters before, gradients,
parameters after). It also keeps a copy of the model as it was before its first forward, so a
test can replay the first batch by hand. ``observe`` runs a trial under a recorder and also keeps
the state each epoch's checkpoint holds; ``knob`` makes the two-value test cases.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.modules import module as module_hooks
from torch.optim import optimizer as optimizer_hooks

from dirsearch.config.trial import TrialConfig
from dirsearch.imbalance import Binning
from dirsearch.models import DIRRegressor
from dirsearch.train import checkpoint
from dirsearch.train.datasets import load_data
from dirsearch.train.loop import TrialResult, run_trial


def _copy(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.detach().clone()


@dataclass
class Forward:
    """One ``DIRRegressor`` call.

    ``kind`` is "train" (called with targets and epoch: a training batch), "fds_pass" (train
    mode without targets: the FDS statistics pass) or "eval". ``epoch`` is the 0-based epoch of
    the call, or of the last training batch before it for the other kinds.
    """

    kind: str
    epoch: int
    inputs: torch.Tensor
    targets: torch.Tensor | None
    features: torch.Tensor
    regressor_input: torch.Tensor
    preds: torch.Tensor


@dataclass
class ParamStep:
    """One parameter in one optimiser step."""

    before: torch.Tensor
    grad: torch.Tensor | None
    after: torch.Tensor


@dataclass
class _OpenForward:
    model: DIRRegressor
    inputs: torch.Tensor
    targets: torch.Tensor | None
    epoch: int | None
    regressor_input: torch.Tensor | None = None


@dataclass
class TrialRecorder:
    """Context manager recording the forwards and optimiser steps made while it is active.

    ``steps[s][g][i]`` is parameter ``i`` of parameter group ``g`` in step ``s``.
    """

    initial_model: DIRRegressor | None = None
    forwards: list[Forward] = field(default_factory=list)
    steps: list[list[list[ParamStep]]] = field(default_factory=list)
    _open: _OpenForward | None = None
    _pending: list[list[tuple[torch.Tensor, torch.Tensor | None]]] | None = None
    _handles: list[Any] = field(default_factory=list)

    def __enter__(self) -> TrialRecorder:
        self._handles = [
            module_hooks.register_module_forward_pre_hook(self._before_forward),
            module_hooks.register_module_forward_hook(self._after_forward),
            optimizer_hooks.register_optimizer_step_pre_hook(self._before_step),
            optimizer_hooks.register_optimizer_step_post_hook(self._after_step),
        ]
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # ----- queries --------------------------------------------------------------------------
    def of(self, kind: str, epoch: int | None = None) -> list[Forward]:
        """The forwards of ``kind`` (of ``epoch`` when given), in call order."""
        return [f for f in self.forwards if f.kind == kind and epoch in (None, f.epoch)]

    def first_batch(self) -> Forward:
        return self.of("train")[0]

    # ----- hooks ----------------------------------------------------------------------------
    def _before_forward(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if isinstance(module, DIRRegressor):
            if self.initial_model is None:
                self.initial_model = copy.deepcopy(module)
            targets = args[1] if len(args) > 1 else None
            epoch = args[2] if len(args) > 2 else None
            self._open = _OpenForward(module, args[0].detach().clone(), _copy(targets), epoch)
        elif self._open is not None and module is self._open.model.regressor:
            self._open.regressor_input = args[0].detach().clone()

    def _after_forward(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if not isinstance(module, DIRRegressor) or self._open is None:
            return
        opened, self._open = self._open, None
        if opened.targets is not None and opened.epoch is not None:
            kind, epoch = "train", opened.epoch
        else:
            kind = "fds_pass" if module.training else "eval"
            epoch = self.forwards[-1].epoch if self.forwards else -1
        assert opened.regressor_input is not None
        self.forwards.append(
            Forward(
                kind,
                epoch,
                opened.inputs,
                opened.targets,
                output.features.detach().clone(),
                opened.regressor_input,
                output.preds.detach().clone(),
            )
        )

    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._pending = [
            [(param.detach().clone(), _copy(param.grad)) for param in group["params"]]
            for group in optimizer.param_groups
        ]

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        assert self._pending is not None
        self.steps.append(
            [
                [
                    ParamStep(before, grad, param.detach().clone())
                    for (before, grad), param in zip(pending, group["params"], strict=True)
                ]
                for pending, group in zip(self._pending, optimizer.param_groups, strict=True)
            ]
        )
        self._pending = None


# ----- running trials under a recorder ------------------------------------------------------------


@dataclass
class Observed:
    """What one trial computed: its result, everything the recorder saw, and the model state
    (parameters and buffers, FDS statistics included) saved at the end of each epoch."""

    config: TrialConfig
    result: TrialResult
    recorded: TrialRecorder
    epoch_models: list[dict[str, torch.Tensor]]


def observe(config: TrialConfig, workdir: Path) -> Observed:
    """Run ``config`` to completion under a recorder, in a fresh folder under ``workdir``."""
    models: list[dict[str, torch.Tensor]] = []

    def report(metrics: dict[str, float], folder: Path) -> None:
        models.append(checkpoint.load(folder / checkpoint.STATE_FILE)["model"])

    with TrialRecorder() as recorded:
        result = run_trial(config, Path(tempfile.mkdtemp(dir=workdir)), report)
    assert result.status == "completed", result.message
    return Observed(config, result, recorded, models)


def knob(name: str, first: dict[str, Any], second: dict[str, Any]) -> Any:
    """A test case: the same trial with two values of the knob ``name``."""
    return pytest.param(first, second, id=name)


def train_targets(config: TrialConfig) -> np.ndarray:
    """The training targets in dataset order (what the trainer builds its tables from)."""
    return load_data(config.data).train.targets


def binning(config: TrialConfig) -> Binning:
    """The bins of ``data.bins``, built from the knob values."""
    bins = config.data.bins
    return Binning(bins.start, bins.width, bins.count)


def max_difference(first: list[torch.Tensor], second: list[torch.Tensor]) -> float:
    """Largest absolute difference between paired tensors; infinite when shapes differ."""
    if [a.shape for a in first] != [b.shape for b in second]:
        return float("inf")
    return max(
        float((a.double() - b.double()).abs().max()) for a, b in zip(first, second, strict=True)
    )
