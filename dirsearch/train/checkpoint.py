"""Trial checkpoints: one folder per epoch with the full training state and the best weights.

A folder holds ``best_model.pt`` (the weights of the best epoch so far, so a sweep that keeps only
the latest reported folder can still evaluate the best epoch at the end) and ``state.pt``
(everything needed to continue exactly: model with FDS buffers, optimiser, scheduler, RNG states,
epoch, best-so-far). ``state.pt`` is written last, so a folder that has it is complete; files are
written to a uniquely named temporary file, synced to disk and renamed, so neither a crash nor a
power cut leaves a half-written file that looks complete. Loading uses ``weights_only=True``.

A ``state.pt`` can still be unreadable (a disk that lied, a copy cut short on its way to shared
storage): resuming then falls back to the epoch folder before it, which is kept for that.
"""

from __future__ import annotations

import pickle
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import torch

from dirsearch.common.files import link_or_copy, sync_folder, write_file_atomically
from dirsearch.errors import DataError

STATE_FILE = "state.pt"
BEST_MODEL_FILE = "best_model.pt"
KEEP_LOCAL = 2
"""Epoch folders kept in a trial's own work folder (trackers copy what they need on report)."""
T = TypeVar("T")


def save_atomically(obj: Any, path: Path) -> None:
    """``torch.save`` into a temporary file of its own (two writers never share one), synced,
    then renamed over ``path``."""
    write_file_atomically(path, lambda file: torch.save(obj, file))


def load(path: Path) -> Any:
    """Read a checkpoint file safely (tensors and plain containers only)."""
    if not path.is_file():
        raise DataError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or unsafe files
        raise DataError(
            f"{path}: not a readable dirsearch checkpoint ({_why_unreadable(error)})"
        ) from None


def _why_unreadable(error: Exception) -> str:
    """A short reason for a one-line message. torch's own text runs over several lines, and for
    unpickling errors it advises ``weights_only=False``, which would run code from the file."""
    if isinstance(error, pickle.UnpicklingError):
        return "not a weights-only torch file"
    if isinstance(error, EOFError):
        return "the file ends early"
    first_sentence = str(error).strip().split(". ")[0].strip()
    return first_sentence.splitlines()[0] if first_sentence else type(error).__name__


def state_problem(folder: Path) -> str | None:
    """Why the ``state.pt`` of an epoch folder cannot be resumed from (one line), or None. The
    check reads the file whole: only a full load shows that it loads."""
    try:
        load(folder / STATE_FILE)
    except DataError as error:
        return str(error)
    return None


def warn(line: str) -> None:
    print(f"dirsearch: warning: {line}", file=sys.stderr, flush=True)


def newest_usable(
    candidates: Iterable[T],
    problem: Callable[[T], str | None],
    name: Callable[[T], str] = str,
) -> T:
    """The first of ``candidates`` (newest first; taken one by one, so older ones are looked up
    only when needed) that ``problem`` finds nothing wrong with; each newer one skipped is
    reported in one warning line naming the one used. None usable: a DataError naming the
    newest one's problem."""
    skipped: list[str] = []
    for candidate in candidates:
        found = problem(candidate)
        if found is None:
            for line in skipped:
                warn(f"{line}; resuming from {name(candidate)} instead")
            return candidate
        skipped.append(found)
    if not skipped:
        raise DataError("no checkpoint to resume from")
    raise DataError(f"{skipped[0]}; no earlier checkpoint is readable either")


def epoch_folder(root: Path, epochs_done: int) -> Path:
    return root / f"epoch_{epochs_done:04d}"


def write_epoch(
    root: Path,
    epochs_done: int,
    state: dict[str, Any],
    best_model: dict[str, torch.Tensor] | None,
    previous: Path | None,
) -> Path:
    """Write the folder for ``epochs_done``; ``best_model`` None means the best is unchanged and
    is linked (or copied) from ``previous``. Older folders beyond KEEP_LOCAL are removed."""
    folder = epoch_folder(root, epochs_done)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    best_path = folder / BEST_MODEL_FILE
    if best_model is not None:
        save_atomically(best_model, best_path)
    elif previous is not None:
        link_or_copy(previous / BEST_MODEL_FILE, best_path)
    # Written last: a folder with state.pt is complete (an interrupted write leaves none).
    save_atomically(state, folder / STATE_FILE)
    sync_folder(root)  # the new folder's own entry, before an older folder goes
    for old in sorted(root.glob("epoch_*"))[:-KEEP_LOCAL]:
        shutil.rmtree(old, ignore_errors=True)
    return folder
