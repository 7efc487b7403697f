"""Writing a local file whole, and sharing one without copying it."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def link_or_copy(source: str | Path, target: str | Path) -> None:
    """A hard link (no copy of a checkpoint's bytes), or a copy where links are not possible
    (another file system, an object-store mount)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def write_atomically(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a reader (or a crash) sees the old file or the new
    one, never a torn one: a uniquely named temporary file in the same folder, flushed to disk,
    then renamed over the target (and the folder synced so the rename survives a power cut).
    The file gets the permissions a plain ``open`` gives (the umask's), not mkstemp's 0600: a
    sweep folder on a shared path stays readable by whom it was before."""
    write_file_atomically(path, lambda file: file.write(data))


def write_file_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """``write_atomically`` for a writer that streams into the open file (``torch.save``), so a
    large checkpoint is never held in memory as one ``bytes``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """fsync a folder, so a rename inside it is on disk (no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
