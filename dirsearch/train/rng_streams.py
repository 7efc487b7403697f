"""A trial's random number streams: one seeded generator per consumer, plus torch's global RNG.

Each consumer draws from a stream of its own so that switching one on (RankSim, ConR, the FDS pass)
leaves every other stream, and so the rest of the trial, exactly as it was. The global RNG is the
training stream itself: weight initialisation, dropout masks and the base seed of every
DataLoader iterator without a generator (the evaluation passes) draw from it. A checkpoint holds
every stream's state so that a resumed trial continues bit for bit.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class RngStreams:
    """The seeded generators of one trial; field order is the seed offset (``seed + k``)."""

    loader: torch.Generator
    """Shuffles the training split (order and the loader iterator's base seed)."""
    augment: torch.Generator
    """Random crops and flips of the training batches."""
    ranksim: torch.Generator
    """RankSim's one-sample-per-label subsets."""
    fds: torch.Generator
    """The FDS extra pass's augmentation, and the seed of its dropout masks: enabling FDS must not
    shift the training streams before smoothing starts."""
    conr: torch.Generator
    """ConR's two extra views of each batch (their augmentation, or their input noise)."""

    @classmethod
    def seeded(cls, seed: int) -> RngStreams:
        return cls(*(torch.Generator().manual_seed(seed + k) for k in range(len(_NAMES))))

    def state(self) -> dict[str, Any]:
        """The ``rng`` entry of a checkpoint: the global CPU and CUDA states, then each stream's."""
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            **{name: getattr(self, name).get_state() for name in _NAMES},
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Set every stream (the global ones included) to a ``state()`` taken earlier. A stream
        the state lacks (``conr`` in checkpoints written before ConR existed) was never drawn
        from, so it keeps its freshly seeded state."""
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        for name in _NAMES:
            if name in state:
                getattr(self, name).set_state(state[name])


_NAMES = tuple(field.name for field in dataclasses.fields(RngStreams))


@contextlib.contextmanager
def global_rng_from(generator: torch.Generator, device: torch.device) -> Iterator[None]:
    """Run a block on the global CPU (and ``device``'s CUDA) RNG freshly seeded from
    ``generator``, and put the global streams back afterwards.

    Dropout and each DataLoader iterator's base seed draw from the global RNG, which is also the
    training stream: a side pass that drew from it would change every later epoch. Restoring alone
    is not enough either, since the pass would then replay the next epoch's dropout masks.
    """
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield
