"""The ``csv_images`` dataset: IMDB-WIKI-DIR / AgeDB-DIR style CSV + image folder.

The CSV has a ``path`` column (relative to the image root), a target column and a ``split``
column (train/val/test); the split files published with the DIR paper (``age,path,split``) load
unchanged. Every image file is checked before anything trains, so a missing file fails the run at
once with its CSV row instead of hours later, and no row is ever skipped silently.

Without a cache every batch decodes and resizes its images (the baseline); with ``cache_dir``
all images are decoded once into a shared memory-mapped array (see ``image_cache``).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dirsearch.common.formatting import shortened
from dirsearch.data.base import Batch, BatchDataset, DataBundle, Split
from dirsearch.data.csv_table import (
    SPLIT_NAMES,
    Table,
    parse_numbers,
    parse_splits,
    read_table,
    require_columns,
    require_rows,
)
from dirsearch.data.image_cache import cached_array, open_cached_array
from dirsearch.data.transforms import ImageBatchTransform, default_crop_padding
from dirsearch.errors import DataError

PATH_COLUMN = "path"
SPLIT_COLUMN = "split"


def load_csv_images(
    csv: Path,
    root: Path,
    *,
    target: str = "age",
    image_size: int = 224,
    cache_dir: Path | None = None,
    crop_padding: int | None = None,
) -> DataBundle:
    """Load the three splits of uint8 (3, S, S) RGB images resized to ``image_size`` square.

    ``crop_padding`` defaults to the paper's 16 px at 224 px, scaled to ``image_size``.
    """
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    # Absolute paths: Ray runs each trial in its own working directory.
    csv, root = Path(csv).resolve(), Path(root).resolve()
    table = read_table(csv)
    require_rows(table)
    require_columns(table, [PATH_COLUMN, target, SPLIT_COLUMN])
    targets = parse_numbers(table, target)
    splits = parse_splits(table, SPLIT_COLUMN)
    files = ImageFiles.check(table, root)
    if cache_dir is None:
        source: ImageSource = DecodedImages(files, image_size)
    else:
        source = CachedImages(_build_cache(files, csv, image_size, Path(cache_dir)))
    bundle = {}
    for name in SPLIT_NAMES:
        rows = np.flatnonzero(splits == name)
        bundle[name] = Split(ImageRows(source, rows, targets[rows]), targets[rows])
    padding = default_crop_padding(image_size) if crop_padding is None else crop_padding
    return DataBundle(
        **bundle, input_shape=(3, image_size, image_size), transform=ImageBatchTransform(padding)
    )


@dataclass(frozen=True)
class ImageFiles:
    """The image file of every CSV row, with what an error message needs to point at the row."""

    csv: Path
    root: Path
    paths: list[Path]
    row_numbers: list[int]
    fingerprint: str
    """Hash of every file's path, size, modification time, inode and status-change time: a
    changed image changes it. Size and mtime alone miss a same-size rewrite whose mtime was put
    back (`cp -p`, `rsync -t`, archives) or fell in the same clock tick; the kernel sets ctime
    on every write and no tool can set it back, and a replaced file gets a new inode."""

    @classmethod
    def check(cls, table: Table, root: Path) -> ImageFiles:
        """Resolve every row's path under ``root``; all files must exist before anything runs.
        A path that leaves ``root`` (absolute, or through '..') is refused: a CSV from elsewhere
        must not read files outside the image folder. The check is on the path as written, so
        links the owner of ``root`` put inside it are followed as before."""
        if not root.is_dir():
            raise DataError(f"{root}: image root folder not found")
        paths = []
        digest = hashlib.sha256()
        for index, cell in enumerate(table.column(PATH_COLUMN)):
            path = Path(os.path.normpath(root / cell.strip()))
            if not path.is_relative_to(root):
                raise DataError(
                    f"{table.where(index, PATH_COLUMN)}: {shortened(cell.strip(), 80)!r} is "
                    f"outside the image folder {root} (a path relative to it, without '..')"
                )
            try:
                status = path.stat()
            except OSError:
                raise DataError(
                    f"{table.where(index, PATH_COLUMN)}: image file {path} not found"
                ) from None
            if not stat.S_ISREG(status.st_mode):
                raise DataError(f"{table.where(index, PATH_COLUMN)}: {path} is not a file")
            stamp = (status.st_size, status.st_mtime_ns, status.st_ino, status.st_ctime_ns)
            digest.update(f"{path}\0{stamp}\n".encode())
            paths.append(path)
        return cls(table.path, root, paths, table.row_numbers, digest.hexdigest())

    def decode(self, index: int, size: int) -> np.ndarray:
        """Row ``index`` as uint8 (size, size, 3) RGB, resized like torchvision Resize((S, S))."""
        path = self.paths[index]
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise DataError(
                f"{self.csv}: row {self.row_numbers[index]}, column '{PATH_COLUMN}': "
                f"cannot read image {path} ({error})"
            ) from None
        return np.asarray(rgb, dtype=np.uint8)


class ImageSource:
    """Where the pixels of CSV rows come from: ``pixels(rows)`` is uint8 (N, S, S, 3)."""

    def pixels(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class DecodedImages(ImageSource):
    """Decode and resize every image each time it is read: no disk space, slow epochs."""

    def __init__(self, files: ImageFiles, size: int) -> None:
        self.files = files
        self.size = size

    def pixels(self, rows: np.ndarray) -> np.ndarray:
        return np.stack([self.files.decode(int(row), self.size) for row in rows])


class CachedImages(ImageSource):
    """Read rows of the decoded-image cache; the memory map opens lazily in each process.

    Pickling (DataLoader workers, Ray) sends only the file name: pickling an open ``np.memmap``
    would copy the whole array.
    """

    def __init__(self, data: Path) -> None:
        self.data = data
        self._array: np.ndarray | None = None

    def pixels(self, rows: np.ndarray) -> np.ndarray:
        if self._array is None:
            self._array = open_cached_array(self.data)
        return self._array[rows]

    def __getstate__(self) -> dict[str, object]:
        return {"data": self.data, "_array": None}


class ImageRows(BatchDataset):
    """One split: a subset of CSV rows read from an image source as (N, 3, S, S) batches."""

    def __init__(self, source: ImageSource, rows: np.ndarray, targets: np.ndarray) -> None:
        self.source = source
        self.rows = rows
        self.targets = torch.from_numpy(targets.astype(np.float32))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices: list[int]) -> Batch:
        """(N, 3, S, S) uint8 as a view with channels-last strides, targets float32.

        No ``.contiguous()``: transposing the pixels on the loading thread took 5x longer than
        reading them from the cache, while the batch transform, on the training device, writes
        its contiguous float output in the same pass anyway.
        """
        pixels = torch.from_numpy(self.source.pixels(self.rows[indices]))
        return pixels.permute(0, 3, 1, 2), self.targets[indices]


def _build_cache(files: ImageFiles, csv: Path, size: int, cache_dir: Path) -> Path:
    """The cache of ``files`` at ``size`` px, named after the CSV content, root and files."""
    digest = hashlib.sha256(csv.read_bytes())
    digest.update(f"\0{files.fingerprint}\0{size}".encode())
    name = f"images-{size}px-{digest.hexdigest()[:24]}"
    return cached_array(
        cache_dir,
        name,
        (len(files.paths), size, size, 3),
        lambda index: files.decode(index, size),
        info={"csv": os.fspath(csv), "root": os.fspath(files.root), "image_size": size},
    )
