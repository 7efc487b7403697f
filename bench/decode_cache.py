"""Benchmark: one training epoch of csv_images with per-batch JPEG decoding vs the decode cache.

Writes ``--images`` random-content JPEGs to a temporary folder, then for each image size times
one shuffled epoch over the train split (DataLoader, batch 256, no workers, one torch thread)
decoding every image, the one-off cache build, and the same epoch read from the memory-mapped
cache. Run: ``python bench/decode_cache.py``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from dirsearch.data.base import DataBundle, keep_batch
from dirsearch.data.csv_images import load_csv_images


def write_jpegs(root: Path, count: int, size: int, seed: int) -> Path:
    """Photo-like JPEGs (smooth random colour fields plus grain); returns the CSV path."""
    rng = np.random.default_rng(seed)
    lines = ["path,age,split"]
    for index in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), dtype=np.int16)
        grain = rng.integers(-12, 13, smooth.shape, dtype=np.int16)
        pixels = np.clip(smooth + grain, 0, 255).astype(np.uint8)
        name = f"img/{index:05d}.jpg"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / name, quality=90)
        split = "train" if index % 10 < 8 else ("val" if index % 10 == 8 else "test")
        lines.append(f"{name},{rng.integers(0, 100)},{split}")
    csv = root / "images.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


def epoch_seconds(bundle: DataBundle, batch_size: int) -> float:
    """Wall time of one shuffled pass over the train split."""
    loader = DataLoader(
        bundle.train.dataset,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=keep_batch,
        num_workers=0,
        generator=torch.Generator().manual_seed(0),
    )
    started = time.perf_counter()
    for inputs, _ in loader:
        assert inputs.dtype == torch.uint8
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--source-size", type=int, default=256)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 64])
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        csv = write_jpegs(root, args.images, args.source_size, seed=0)
        print(
            f"{args.images} JPEGs {args.source_size}x{args.source_size} written in "
            f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs, 1 torch thread, "
            f"batch {args.batch_size}, num_workers=0"
        )
        print("| size | decode epoch (s) | cache build (s) | cached epoch (s) | speed-up |")
        print("|---:|---:|---:|---:|---:|")
        for size in args.sizes:
            decoding = load_csv_images(csv, root, image_size=size)
            decode_time = epoch_seconds(decoding, args.batch_size)
            started = time.perf_counter()
            cached = load_csv_images(csv, root, image_size=size, cache_dir=root / "cache")
            build_time = time.perf_counter() - started
            cache_time = epoch_seconds(cached, args.batch_size)
            print(
                f"| {size} | {decode_time:.2f} | {build_time:.2f} | {cache_time:.3f} | "
                f"{decode_time / cache_time:.0f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
