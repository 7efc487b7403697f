"""The optimiser and its learning-rate schedule: one step per batch, one schedule step per epoch."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dirsearch.config.trial import TrainConfig

Scheduler = torch.optim.lr_scheduler.LRScheduler


class Optimisation:
    """``train.optimizer`` over the model's trainable parameters plus ``extra_groups`` (groups
    with settings of their own, e.g. Balanced MSE's noise scale), and ``train.schedule``."""

    def __init__(
        self, train: TrainConfig, model: nn.Module, extra_groups: list[dict[str, Any]]
    ) -> None:
        trainable = [p for p in model.parameters() if p.requires_grad]  # RRT: the regressor only
        self.optimizer = _optimizer(train, [{"params": trainable}, *extra_groups])
        self.scheduler = _scheduler(train, self.optimizer)

    def step(self, loss: torch.Tensor) -> None:
        """One optimiser step on the gradients of ``loss``."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def end_epoch(self) -> None:
        """Advance the schedule: the next epoch trains with the next learning rate."""
        if self.scheduler is not None:
            self.scheduler.step()

    @property
    def lr(self) -> float:
        """The model's learning rate for the next step (after ``end_epoch``: the next epoch's)."""
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        """The ``optimizer`` and ``scheduler`` entries of a checkpoint."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from a mapping holding the ``state_dict()`` entries (a checkpoint)."""
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])


def _optimizer(train: TrainConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    if train.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay
        )
    optimizer_class = torch.optim.AdamW if train.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(groups, lr=train.lr, weight_decay=train.weight_decay)


def _scheduler(train: TrainConfig, optimizer: torch.optim.Optimizer) -> Scheduler | None:
    schedule = train.schedule
    if schedule.name == "step":
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(schedule.milestones), gamma=schedule.gamma
        )
    if schedule.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train.epochs)
    return None
