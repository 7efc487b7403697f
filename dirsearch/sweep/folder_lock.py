"""One process at a time per output folder: ``run``, ``resume`` and ``train`` hold an exclusive
lock on their folder for as long as they write to it.

Without it two ``run --name X`` started together both pass the "already holds a sweep" check
and write one folder, two ``resume`` of one sweep run its trials twice, and a ``train`` that
fails removes a folder another ``train`` is writing. The lock is an ``flock`` on a file in the
folder (``.dirsearch.lock``), as the decoded-image cache does: the kernel releases it when the
process ends, however it ends, so a crashed run never leaves a stale lock behind. (filelock's
soft-lock fallback would give a weaker lock silently where flock is missing.) The lock file
says who holds it (pid, host, since when, the command) for the refusal of the next process,
and is removed when the holder is done: a finished folder holds what it held before.

An object-store folder (``s3://``, ``gs://``) has no such lock: nothing stops two drivers
there; the README says so.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from dirsearch.errors import ConfigError

LOCK_FILE = ".dirsearch.lock"


def holder_text(raw: str) -> str:
    """How the refusal names the holder, from the lock file's content."""
    try:
        holder = json.loads(raw)
        return (
            f"in use by pid {int(holder['pid'])} on {str(holder['host'])[:60]} since "
            f"{str(holder['since'])[:30]} ({str(holder['command'])[:40]})"
        )
    except (ValueError, KeyError, TypeError):
        return "in use by another process"


@contextlib.contextmanager
def locked_folder(
    folder: Path, command: str, refusal: Callable[[str], str], *, remove_if_unused: bool = False
) -> Iterator[None]:
    """Hold ``folder``'s lock for the block, creating the folder (and its parents) first.
    Another holder: ``ConfigError(refusal(holder))``, holder as ``holder_text`` says it. With
    ``remove_if_unused`` the folder is removed again at the end if it is empty (a refused
    ``train`` leaves no folder behind)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    descriptor = _acquire(path, refusal)
    try:
        _write_holder(descriptor, command)
        try:
            yield
        finally:
            # Removed while still locked, so the folder ends as it would without the lock;
            # a process that opened the file meanwhile sees it gone and takes a new one.
            with contextlib.suppress(OSError):
                path.unlink()
            if remove_if_unused:
                with contextlib.suppress(OSError):  # not empty (or gone): kept
                    folder.rmdir()
    finally:
        os.close(descriptor)  # releases the flock


def _acquire(path: Path, refusal: Callable[[str], str]) -> int:
    """The descriptor of ``path`` with its flock held. The holder removes the file on release:
    a lock taken on a file that is no longer at ``path`` is no lock, and is taken again."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = holder_text(_read(descriptor))
            os.close(descriptor)
            raise ConfigError(refusal(holder)) from None
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        mine = os.fstat(descriptor)
        if current is not None and (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
            return descriptor
        os.close(descriptor)  # the holder before us removed it as we opened it: again


def _read(descriptor: int) -> str:
    return os.pread(descriptor, 4096, 0).decode(errors="replace")


def _write_holder(descriptor: int, command: str) -> None:
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "command": command,
    }
    data = json.dumps(holder).encode()
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, data, 0)


def locked_sweep_folder(
    folder: str, command: str, refusal: Callable[[str], str]
) -> contextlib.AbstractContextManager[None]:
    """``locked_folder`` for a sweep folder on this machine's file systems (a local or shared
    path, or a ``file://`` URI); nothing for an object store, where no lock is possible."""
    scheme, separator, path = folder.partition("://")
    if separator and scheme != "file":
        return contextlib.nullcontext()
    return locked_folder(Path(path if separator else folder), command, refusal)
