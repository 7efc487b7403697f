"""csv_images: decoding like torchvision, the shared decode cache, and every bad input."""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import Resize

from dirsearch.data.base import Split, keep_batch
from dirsearch.data.csv_images import load_csv_images
from dirsearch.errors import DataError

# (file, age, split): PNG and JPEG, odd sizes, one greyscale image.
ROWS = [
    ("a.png", 30, "train"),
    ("b.jpg", 41, "train"),
    ("sub/c.png", 7, "train"),
    ("d.png", 55, "val"),
    ("e.jpg", 62, "test"),
    ("grey.png", 18, "test"),
]


def _write_images(root: Path, rows: list[tuple[str, int, str]] = ROWS) -> None:
    generator = np.random.default_rng(0)
    for index, (name, _, _) in enumerate(rows):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shape = (7 + index, 5 + 2 * index) if name.startswith("grey") else (7 + index, 9, 3)
        pixels = generator.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(pixels).save(path)


def _write_csv(path: Path, rows: list[tuple] = ROWS, header: str = "path,age,split") -> Path:
    lines = [header]
    for name, age, split in rows:
        cells = {"path": name, "age": str(age), "split": split}
        lines.append(",".join(cells[column] for column in header.split(",")))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "images"
    _write_images(root)
    return _write_csv(tmp_path / "data.csv"), root


def _all(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    return split.dataset.__getitems__(list(range(len(split.dataset))))


def _torchvision_pixels(path: Path, size: int) -> torch.Tensor:
    """The reference: PIL open, RGB, torchvision Resize((S, S)), as (3, S, S) uint8."""
    with Image.open(path) as image:
        resized = Resize((size, size))(image.convert("RGB"))
    return torch.from_numpy(np.asarray(resized).copy()).permute(2, 0, 1)


def test_decoded_images_match_torchvision_resize(dataset: tuple[Path, Path]) -> None:
    csv, root = dataset
    bundle = load_csv_images(csv, root, image_size=6)
    assert bundle.input_shape == (3, 6, 6)
    assert bundle.transform.crop_padding == 0  # round(16 * 6 / 224)
    inputs, targets = _all(bundle.train)
    assert inputs.dtype == torch.uint8 and inputs.shape == (3, 3, 6, 6)
    assert targets.dtype == torch.float32 and targets.tolist() == [30.0, 41.0, 7.0]
    np.testing.assert_array_equal(bundle.train.targets, [30.0, 41.0, 7.0])
    for image, name in zip(inputs, ["a.png", "b.jpg", "sub/c.png"], strict=True):
        assert torch.equal(image, _torchvision_pixels(root / name, 6))
    test_inputs, test_targets = _all(bundle.test)
    assert test_targets.tolist() == [62.0, 18.0]
    assert torch.equal(test_inputs[1], _torchvision_pixels(root / "grey.png", 6))
    assert len(bundle.val.dataset) == 1


def test_cache_gives_the_same_pixels_and_is_reused(
    dataset: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv, root = dataset
    cache = tmp_path / "cache"
    decoded = load_csv_images(csv, root, image_size=8)
    cached = load_csv_images(csv, root, image_size=8, cache_dir=cache, crop_padding=3)
    assert cached.transform.crop_padding == 3
    assert "building" in capsys.readouterr().err
    for name in ("train", "val", "test"):
        x_decoded, y_decoded = _all(getattr(decoded, name))
        x_cached, y_cached = _all(getattr(cached, name))
        assert torch.equal(x_decoded, x_cached) and torch.equal(y_decoded, y_cached)
    (data,) = cache.glob("*.npy")
    before = data.stat()
    again = load_csv_images(csv, root, image_size=8, cache_dir=cache)
    after = data.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert "building" not in capsys.readouterr().err
    assert torch.equal(_all(again.test)[0], _all(decoded.test)[0])
    assert not list(cache.glob("*.tmp")) and not list(cache.glob(".*.tmp"))


def test_cache_is_keyed_by_image_size_and_csv_content(
    dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    csv, root = dataset
    cache = tmp_path / "cache"
    load_csv_images(csv, root, image_size=8, cache_dir=cache)
    load_csv_images(csv, root, image_size=4, cache_dir=cache)
    _write_csv(csv, [*ROWS[:-1], ("grey.png", 19, "test")])
    changed = load_csv_images(csv, root, image_size=4, cache_dir=cache)
    assert len(list(cache.glob("*.npy"))) == 3
    assert len(list(cache.glob("*.json"))) == 3
    assert _all(changed.test)[1].tolist() == [62.0, 19.0]


def test_cache_is_rebuilt_when_an_image_changes_under_the_same_csv(tmp_path: Path) -> None:
    """An image rewritten in place with other pixels of the same byte size (uncompressed PNG),
    its modification time then put back as `cp -p`, `rsync -t` or an archive would: the cache
    must not serve the old pixels."""
    root = tmp_path / "images"
    root.mkdir()
    rows = [("a.png", 30, "train"), ("b.png", 41, "val"), ("c.png", 52, "test")]
    generator = np.random.default_rng(1)

    def write(name: str) -> None:
        pixels = generator.integers(0, 256, (9, 9, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / name, compress_level=0)

    for name, _, _ in rows:
        write(name)
    csv = _write_csv(tmp_path / "data.csv", rows)
    cache = tmp_path / "cache"
    before = _all(load_csv_images(csv, root, image_size=8, cache_dir=cache).train)[0]
    old = (root / "a.png").stat()
    write("a.png")
    os.utime(root / "a.png", ns=(old.st_atime_ns, old.st_mtime_ns))
    new = (root / "a.png").stat()
    assert (new.st_size, new.st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    after = _all(load_csv_images(csv, root, image_size=8, cache_dir=cache).train)[0]
    assert not torch.equal(after, before)
    assert torch.equal(after[0], _torchvision_pixels(root / "a.png", 8))


def test_batches_through_a_dataloader_and_pickling_without_the_array(
    dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    csv, root = dataset
    bundle = load_csv_images(csv, root, image_size=5, cache_dir=tmp_path / "cache")
    loader = DataLoader(bundle.train.dataset, batch_size=2, collate_fn=keep_batch)
    shapes = [(tuple(x.shape), y.tolist()) for x, y in loader]
    assert shapes == [((2, 3, 5, 5), [30.0, 41.0]), ((1, 3, 5, 5), [7.0])]
    copy = pickle.loads(pickle.dumps(bundle.train.dataset))
    assert len(pickle.dumps(bundle.train.dataset)) < 2000
    assert torch.equal(copy.__getitems__([2])[0], bundle.train.dataset.__getitems__([2])[0])


def test_official_age_path_split_layout_loads_as_is(tmp_path: Path) -> None:
    rows = [
        ("AgeDB/0_MariaCallas_35_f.jpg", 35, "train"),
        ("AgeDB/1_MariaCallas_40_f.jpg", 40, "train"),
        ("AgeDB/2_Elvis_21_m.jpg", 21, "val"),
        ("AgeDB/3_Elvis_42_m.jpg", 42, "test"),
    ]
    _write_images(tmp_path / "data", rows)
    csv = _write_csv(tmp_path / "agedb.csv", rows, header="age,path,split")
    bundle = load_csv_images(csv, tmp_path / "data", image_size=4)
    assert bundle.train.targets.tolist() == [35.0, 40.0]
    assert bundle.val.targets.tolist() == [21.0]
    assert _all(bundle.test)[0].shape == (1, 3, 4, 4)


def _build_in_child(csv: str, root: str, cache: str, log: str) -> list[float]:
    with open(log, "w", buffering=1) as handle, contextlib.redirect_stderr(handle):
        bundle = load_csv_images(Path(csv), Path(root), image_size=16, cache_dir=Path(cache))
    return _all(bundle.train)[0].float().sum(dim=(1, 2, 3)).tolist()


def test_two_processes_building_at_once_share_one_cache(
    dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    """Both children start while the parent holds the build lock, so both must wait for it;
    then exactly one builds and the other reuses its cache."""
    csv, root = dataset
    cache = tmp_path / "cache"
    load_csv_images(csv, root, image_size=16, cache_dir=cache)  # learn the cache's file names
    (data,) = cache.glob("*.npy")
    data.unlink()
    data.with_suffix(".json").unlink()
    logs = [tmp_path / "child0.log", tmp_path / "child1.log"]
    context = multiprocessing.get_context("spawn")
    with data.with_suffix(".lock").open("a") as lock, context.Pool(2) as pool:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pending = pool.starmap_async(
            _build_in_child, [(str(csv), str(root), str(cache), str(log)) for log in logs]
        )
        deadline = time.monotonic() + 120
        while not all(log.exists() and "waiting" in log.read_text() for log in logs):
            assert time.monotonic() < deadline, "children never reached the lock"
            time.sleep(0.05)
        fcntl.flock(lock, fcntl.LOCK_UN)
        results = pending.get(timeout=120)
    assert results[0] == results[1]
    builds = sum(log.read_text().count("dirsearch: building") for log in logs)
    assert builds == 1
    assert len(list(cache.glob("*.npy"))) == 1 and len(list(cache.glob("*.json"))) == 1
    assert not list(cache.glob(".*.tmp"))
    reference = _all(load_csv_images(csv, root, image_size=16).train)[0]
    assert reference.float().sum(dim=(1, 2, 3)).tolist() == results[0]


def test_unreadable_image_fails_the_cache_build_and_leaves_nothing(
    dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    csv, root = dataset
    (root / "d.png").write_bytes(b"this is not a PNG")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"row 5, column 'path': cannot read image .*d\.png"):
        load_csv_images(csv, root, image_size=8, cache_dir=cache)
    assert not list(cache.glob("*.npy")) and not list(cache.glob(".*.tmp"))
    assert not list(cache.glob("*.json"))


def test_unreadable_image_fails_when_its_batch_is_decoded(dataset: tuple[Path, Path]) -> None:
    csv, root = dataset
    (root / "b.jpg").write_bytes(b"")
    bundle = load_csv_images(csv, root, image_size=8)
    assert _all(bundle.val)[0].shape == (1, 3, 8, 8)
    with pytest.raises(DataError, match=r"data\.csv: row 3, column 'path': cannot read image"):
        _all(bundle.train)


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (
            [("missing.png", 3, "train"), *ROWS],
            "path,age,split",
            r"row 2, column 'path': image file .*missing\.png not found",
        ),
        (ROWS, "path,split", r"no column 'age'; available columns: path, split"),
        (
            [("a.png", "old", "train"), *ROWS[1:]],
            "path,age,split",
            r"row 2, column 'age': 'old' is not a number",
        ),
        (
            [*ROWS[:3], ("d.png", "nan", "val"), *ROWS[4:]],
            "path,age,split",
            r"row 5, column 'age': 'nan' is not a finite",
        ),
        (
            [*ROWS[:3], ("d.png", 55, "valid"), *ROWS[4:]],
            "path,age,split",
            r"row 5, column 'split': unknown split 'valid'",
        ),
        ([row for row in ROWS if row[2] != "val"], "path,age,split", r"split 'val' is empty"),
    ],
    ids=[
        "missing-image",
        "missing-column",
        "text-target",
        "nan-target",
        "bad-split",
        "empty-split",
    ],
)
def test_bad_rows_are_reported_with_their_row(
    dataset: tuple[Path, Path], rows: list, header: str, message: str
) -> None:
    csv, root = dataset
    _write_csv(csv, rows, header)
    with pytest.raises(DataError, match=message):
        load_csv_images(csv, root, image_size=4)


def test_missing_csv_and_missing_root(dataset: tuple[Path, Path], tmp_path: Path) -> None:
    csv, root = dataset
    with pytest.raises(DataError, match=r"nope\.csv: CSV file not found"):
        load_csv_images(tmp_path / "nope.csv", root)
    with pytest.raises(DataError, match=r"elsewhere: image root folder not found"):
        load_csv_images(csv, tmp_path / "elsewhere")
