"""The embedded default dataset: AgeDB-DIR's label imbalance with generated inputs, no download.

The training targets follow the real AgeDB-DIR training histogram (packaged with dirsearch), so the
many/medium/few-shot regions are where they are in the paper; val and test are balanced over all
ages 0..101, ages without any training sample included, as DIR evaluation requires. Each input
encodes a NOISY copy of its age (observation noise), so the label is only partly recoverable and a
plain regressor is pulled towards the crowded ages: the few-shot error gap that LDS and FDS are
meant to close appears here as it does on real faces. Images add nuisance variation (position,
colours, pixel noise) that a small CNN must learn to ignore.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dirsearch.data.base import DataBundle, Split
from dirsearch.data.csv_table import SPLIT_NAMES, write_table
from dirsearch.data.tabular import FeatureTransform, TensorBatchDataset
from dirsearch.data.transforms import ImageBatchTransform, default_crop_padding

COUNTS_FILE = Path(__file__).with_name("agedb_dir_split_counts.csv")
KINDS = ("image", "tabular")
CSV_NAME = "synthetic.csv"

OBSERVATION_NOISE = 5.0
"""Std (years) of the noise added to the age before it is encoded; calibrated so that plain L1
training of a small CNN gives a few-shot test MAE clearly above the many-shot one."""

PIXEL_NOISE = 0.05
FEATURE_NOISE = 0.1
NUISANCE_FEATURES = 4
CHUNK = 1024


def agedb_train_counts() -> np.ndarray:
    """Training samples per age 0..101 in AgeDB-DIR (index = age)."""
    table = np.loadtxt(COUNTS_FILE, delimiter=",", skiprows=1, dtype=np.int64)
    return table[:, 1]


def max_age() -> int:
    """Largest age in the AgeDB-DIR histogram; targets range over 0..max_age()."""
    return len(agedb_train_counts()) - 1


def make_synthetic(
    kind: str = "image",
    *,
    seed: int = 0,
    scale: float = 1.0,
    image_size: int = 32,
    eval_per_age: int = 10,
) -> DataBundle:
    """Generate the three splits in memory; the same arguments always give identical tensors."""
    encode = _encoder(kind, image_size)
    splits = {}
    for index, name in enumerate(SPLIT_NAMES):
        generator = _split_generator(seed, index)
        ages = _split_ages(name, scale, eval_per_age, generator)
        noisy = ages + OBSERVATION_NOISE * torch.randn(len(ages), generator=generator)
        noisy = noisy.clamp(0.0, float(max_age()))
        inputs = torch.cat([encode(chunk, generator) for chunk in noisy.split(CHUNK)])
        splits[name] = Split(TensorBatchDataset(inputs, ages), ages.double().numpy())
    sample = splits["train"].dataset.inputs
    if kind == "image":
        transform = ImageBatchTransform(default_crop_padding(image_size))
    else:
        transform = FeatureTransform()
    return DataBundle(**splits, input_shape=tuple(sample.shape[1:]), transform=transform)


def write_synthetic(
    out_dir: Path,
    *,
    kind: str = "image",
    seed: int = 0,
    scale: float = 1.0,
    image_size: int = 32,
) -> Path:
    """Write ``make_synthetic``'s data under ``out_dir``; returns the CSV path.

    Images go to PNG files (lossless) listed in a ``path,age,split`` CSV, the layout of
    ``load_csv_images`` with ``root=out_dir``; tabular data is one numeric CSV with feature
    columns ``x0..``, ``age`` and ``split``.
    """
    bundle = make_synthetic(kind, seed=seed, scale=scale, image_size=image_size)
    rows: list[list[object]] = []
    for name in SPLIT_NAMES:
        dataset = getattr(bundle, name).dataset
        ages = [int(age) for age in dataset.targets.tolist()]
        if kind == "image":
            paths = _write_images(dataset.inputs, out_dir, name)
            rows += [[path, age, name] for path, age in zip(paths, ages, strict=True)]
        else:
            # repr() of a float32 widened to float64 parses back to the same float32.
            features = dataset.inputs.tolist()
            rows += [[*map(repr, x), age, name] for x, age in zip(features, ages, strict=True)]
    if kind == "image":
        header = ["path", "age", "split"]
    else:
        header = [*(f"x{j}" for j in range(bundle.input_shape[0])), "age", "split"]
    csv_path = out_dir / CSV_NAME
    write_table(csv_path, header, rows)
    return csv_path


def _split_generator(seed: int, split_index: int) -> torch.Generator:
    """An independent stream per split, so val/test do not change when ``scale`` does."""
    state = np.random.SeedSequence([seed, split_index]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def _split_ages(
    name: str, scale: float, eval_per_age: int, generator: torch.Generator
) -> torch.Tensor:
    """Integer ages (float32) of one split in shuffled order."""
    if name == "train":
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        counts = np.rint(agedb_train_counts() * scale).astype(np.int64)
        if counts.sum() == 0:
            raise ValueError(f"scale={scale} leaves no training sample; use a larger scale")
    else:
        if eval_per_age < 1:
            raise ValueError(f"eval_per_age must be >= 1, got {eval_per_age}")
        counts = np.full(max_age() + 1, eval_per_age, dtype=np.int64)
    ages = torch.from_numpy(np.repeat(np.arange(len(counts)), counts)).to(torch.float32)
    return ages[torch.randperm(len(ages), generator=generator)]


def _encoder(kind: str, image_size: int) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    if kind == "image":
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {image_size}")
        return lambda noisy, generator: _bar_images(noisy, image_size, generator)
    if kind == "tabular":
        return _features
    raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")


def _bar_images(noisy: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """uint8 (N, 3, S, S) images: a horizontal bar whose length encodes the noisy age.

    The bar's left edge is continuous and its ends are drawn with exact pixel-area coverage, so
    the length is a continuous (not pixel-quantised) function of the age; its row, both colours
    and the pixel noise are nuisances.
    """
    n = len(noisy)
    fraction = noisy / max_age()
    length = size * (0.15 + 0.7 * fraction)  # 15% .. 85% of the width
    thickness = max(2, round(size * 3 / 32))
    left = torch.rand(n, generator=generator) * (size - length)
    top = torch.randint(0, size - thickness + 1, (n,), generator=generator)
    background = torch.rand(n, 3, generator=generator) * 0.45
    foreground = 0.55 + torch.rand(n, 3, generator=generator) * 0.45
    noise = PIXEL_NOISE * torch.randn(n, 3, size, size, generator=generator)

    pixel = torch.arange(size, dtype=torch.float32)
    start, end = left.unsqueeze(1), (left + length).unsqueeze(1)
    cover_x = (torch.minimum(pixel + 1, end) - torch.maximum(pixel, start)).clamp(0, 1)  # (N, S)
    rows = pixel.unsqueeze(0)
    cover_y = ((rows >= top.unsqueeze(1)) & (rows < (top + thickness).unsqueeze(1))).float()
    cover = (cover_y.unsqueeze(2) * cover_x.unsqueeze(1)).unsqueeze(1)  # (N, 1, S, S)
    image = background.view(n, 3, 1, 1) * (1 - cover) + foreground.view(n, 3, 1, 1) * cover
    return ((image + noise).clamp(0, 1) * 255).round().to(torch.uint8)


def _features(noisy: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """float32 (N, F): nonlinear functions of the noisy age, each noisy, plus pure-noise columns."""
    z = (noisy - max_age() / 2) / (max_age() / 3.5)  # roughly standardised
    informative = torch.stack([z, torch.sin(1.5 * z), z**2 - 1, torch.tanh(2 * (z + 0.5))], dim=1)
    informative = informative + FEATURE_NOISE * torch.randn(informative.shape, generator=generator)
    nuisance = torch.randn(len(noisy), NUISANCE_FEATURES, generator=generator)
    return torch.cat([informative, nuisance], dim=1)


def _write_images(images: torch.Tensor, root: Path, split: str) -> list[str]:
    """Save (N, 3, S, S) uint8 images as lossless PNGs; returns their paths relative to root."""
    folder = root / "images" / split
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, pixels in enumerate(images.permute(0, 2, 3, 1).numpy()):
        relative = f"images/{split}/{index:05d}.png"
        Image.fromarray(pixels).save(root / relative)
        paths.append(relative)
    return paths
