"""Decode once, train many: a uint8 array of decoded images on disk, shared by all trials.

Decoding and resizing JPEGs costs far more than training a small model on them, and a sweep runs
the same images through dozens of trials. The first trial to need a cache builds it under an
exclusive ``flock`` while trials in other processes wait and then memory-map the finished file.
A cache is complete only once its metadata file exists: the array is written under a temporary
name, fsynced and renamed first, so an interrupted build never leaves a file that looks finished.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
BUILD_CHUNK = 256
PROGRESS_STEPS = 10


def cached_array(
    cache_dir: Path,
    name: str,
    shape: tuple[int, ...],
    produce: Callable[[int], np.ndarray],
    *,
    info: dict[str, Any] | None = None,
) -> Path:
    """Path of the complete ``.npy`` cache ``name``: uint8 of ``shape``, row i = ``produce(i)``.

    ``name`` must identify the content (callers hash their inputs into it); an existing complete
    cache of that name and shape is reused as it is. ``produce`` is called from worker threads
    (image decoding releases the GIL) and its exceptions propagate after the partial file is
    removed. ``info`` is stored in the metadata file for people inspecting the cache folder.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    data = cache_dir / f"{name}.npy"
    meta = cache_dir / f"{name}.json"
    if _is_complete(data, meta, name, shape):
        return data
    with _exclusive_lock(cache_dir / f"{name}.lock", data):
        # Another process may have finished the cache while this one waited for the lock.
        if not _is_complete(data, meta, name, shape):
            _build(data, shape, produce)
            _write_json(
                meta,
                {"format": FORMAT_VERSION, "name": name, "shape": list(shape), "dtype": "uint8"}
                | {"info": info or {}},
            )
    return data


def open_cached_array(data: Path) -> np.ndarray:
    """Memory-map a cache read-only: pages are read on demand and shared between processes."""
    return np.load(data, mmap_mode="r")


def _is_complete(data: Path, meta: Path, name: str, shape: tuple[int, ...]) -> bool:
    try:
        described = json.loads(meta.read_text())
        array = open_cached_array(data)
    except (OSError, ValueError):
        return False
    return (
        described.get("format") == FORMAT_VERSION
        and described.get("name") == name
        and described.get("shape") == list(shape)
        and array.shape == shape
        and array.dtype == np.uint8
    )


@contextmanager
def _exclusive_lock(lock_path: Path, data: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_path``; say so on stderr when another holder blocks us.

    The lock file itself is left in place: deleting it would let a third process lock a new
    inode while a second still waits on the old one.
    """
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"dirsearch: waiting for another process to build {data}", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(data: Path, shape: tuple[int, ...], produce: Callable[[int], np.ndarray]) -> None:
    """Fill a temporary ``.npy`` row by row, fsync it, then rename it to ``data``."""
    temporary = data.with_name(f".{data.name}.{secrets.token_hex(4)}.tmp")
    count = shape[0]
    step = max(1, math.ceil(count / PROGRESS_STEPS))
    started = time.monotonic()
    print(f"dirsearch: building {data} ({count} images)", file=sys.stderr)
    try:
        array = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=shape)
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for start in range(0, count, BUILD_CHUNK):
                stop = min(start + BUILD_CHUNK, count)
                for index, row in zip(
                    range(start, stop), pool.map(produce, range(start, stop)), strict=True
                ):
                    array[index] = row
                if stop // step > start // step or stop == count:
                    print(
                        f"dirsearch:   {stop}/{count} images ({100 * stop // count}%)",
                        file=sys.stderr,
                    )
        array.flush()
        del array
        _publish(temporary, data)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    print(f"dirsearch: built {data} in {time.monotonic() - started:.1f} s", file=sys.stderr)


def _write_json(path: Path, content: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        temporary.write_text(json.dumps(content, indent=2) + "\n")
        _publish(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _publish(temporary: Path, path: Path) -> None:
    """Make a fully written temporary file durable, then atomically give it its real name."""
    _fsync(temporary)
    os.replace(temporary, path)
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's, for renames) contents to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
