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

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dirsearch.data.base import Batch, BatchDataset, DataBundle, Split
from dirsearch.data.transforms import ImageBatchTransform, default_crop_padding

COUNTS_FILE = Path(__file__).with_name("agedb_dir_split_counts.csv")
KINDS = ("image", "tabular")
SPLITS = ("train", "val", "test")
CSV_NAME = "synthetic.csv"

OBSERVATION_NOISE = 6.0
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
    for index, name in enumerate(SPLITS):
        generator = _split_generator(seed, index)
        ages = _split_ages(name, scale, eval_per_age, generator)
        noisy = ages + OBSERVATION_NOISE * torch.randn(len(ages), generator=generator)
        noisy = noisy.clamp(0.0, float(max_age()))
        inputs = torch.cat([encode(chunk, generator) for chunk in noisy.split(CHUNK)])
        splits[name] = Split(TensorBatches(inputs, ages), ages.double().numpy())
    sample = splits["train"].dataset.inputs
    if kind == "image":
        transform = ImageBatchTransform(default_crop_padding(image_size))
    else:
        transform = IdentityTransform()
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
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / CSV_NAME
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if kind == "image":
            writer.writerow(["path", "age", "split"])
        else:
            width = bundle.input_shape[0]
            writer.writerow([*(f"x{j}" for j in range(width)), "age", "split"])
        for name in SPLITS:
            dataset = getattr(bundle, name).dataset
            if kind == "image":
                _write_images(writer, dataset, out_dir, name)
            else:
                for row, age in zip(dataset.inputs.tolist(), dataset.targets.tolist(), strict=True):
                    writer.writerow([*map(repr, row), int(age), name])
    return csv_path


class TensorBatches(BatchDataset):
    """A batch dataset over in-memory tensors: a batch is one fancy-index read."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.inputs = inputs
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitems__(self, indices: list[int]) -> Batch:
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.inputs[index], self.targets[index]


class IdentityTransform:
    """Feature vectors need no augmentation or normalisation: they are generated standardised."""

    def train(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return inputs

    def eval(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs


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


def _write_images(writer: csv.writer, dataset: TensorBatches, root: Path, split: str) -> None:
    folder = root / "images" / split
    folder.mkdir(parents=True, exist_ok=True)
    pixels = dataset.inputs.permute(0, 2, 3, 1).numpy()
    for index, (image, age) in enumerate(zip(pixels, dataset.targets.tolist(), strict=True)):
        relative = Path("images", split, f"{index:05d}.png")
        Image.fromarray(image).save(root / relative)
        writer.writerow([relative.as_posix(), int(age), split])
