"""ImageBatchTransform: exact crops and flips, normalisation values, CPU/CUDA agreement."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dirsearch.data.transforms import ImageBatchTransform, default_crop_padding

# A 1-channel 2x2 image: [[1, 2], [3, 4]].
TINY = torch.tensor([[[[1, 2], [3, 4]]]], dtype=torch.uint8)


def _raw(transform: ImageBatchTransform, batch: torch.Tensor, seed: int) -> torch.Tensor:
    """Undo the normalisation of a mean-0/std-1 transform: back to integer pixel values."""
    out = transform.train(batch, torch.Generator().manual_seed(seed))
    return (out * 255).round().to(torch.int64)


def test_default_crop_padding_scales_the_papers_16px_at_224() -> None:
    assert default_crop_padding(224) == 16
    assert default_crop_padding(32) == 2
    assert default_crop_padding(64) == 5  # 4.57
    assert default_crop_padding(128) == 9  # 9.14


def test_every_crop_and_flip_of_a_tiny_image_is_one_of_the_hand_made_candidates() -> None:
    transform = ImageBatchTransform(crop_padding=1, mean=(0.0,), std=(1.0,))
    outputs = _raw(transform, TINY.expand(400, 1, 2, 2).contiguous(), seed=0)
    # Zero-padded image is 4x4; the 9 crop windows of size 2x2, each possibly mirrored.
    crops = {
        (0, 0): [[0, 0], [0, 1]],
        (0, 1): [[0, 0], [1, 2]],
        (0, 2): [[0, 0], [2, 0]],
        (1, 0): [[0, 1], [0, 3]],
        (1, 1): [[1, 2], [3, 4]],
        (1, 2): [[2, 0], [4, 0]],
        (2, 0): [[0, 3], [0, 0]],
        (2, 1): [[3, 4], [0, 0]],
        (2, 2): [[4, 0], [0, 0]],
    }
    candidates = {tuple(map(tuple, c)) for c in crops.values()}
    candidates |= {tuple(tuple(reversed(row)) for row in c) for c in crops.values()}
    assert len(candidates) == 18
    seen = {tuple(map(tuple, image[0].tolist())) for image in outputs}
    assert seen == candidates  # 400 draws: each of the 18 outcomes shows up


def test_train_matches_a_per_sample_pad_crop_flip_reference() -> None:
    """Reference: draw the same numbers in the documented order, then pad, slice, flip."""
    batch = torch.randint(0, 256, (16, 3, 5, 6), generator=torch.Generator().manual_seed(1))
    batch = batch.to(torch.uint8)
    pad = 2
    transform = ImageBatchTransform(crop_padding=pad, mean=(0.0,) * 3, std=(1.0,) * 3)
    got = _raw(transform, batch, seed=7)

    generator = torch.Generator().manual_seed(7)
    dy = torch.randint(0, 2 * pad + 1, (16,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (16,), generator=generator)
    flip = torch.randint(0, 2, (16,), generator=generator)
    for i in range(16):
        padded = F.pad(batch[i].to(torch.int64), (pad, pad, pad, pad))
        crop = padded[:, dy[i] : dy[i] + 5, dx[i] : dx[i] + 6]
        expected = crop.flip(-1) if flip[i] else crop
        assert torch.equal(got[i], expected), f"sample {i}"


def test_no_flip_and_no_padding_make_train_equal_eval() -> None:
    batch = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    transform = ImageBatchTransform(crop_padding=0, flip=False)
    assert torch.equal(
        transform.train(batch, torch.Generator().manual_seed(0)), transform.eval(batch)
    )


def test_flip_only_mirrors_about_half_of_the_samples() -> None:
    image = torch.arange(6, dtype=torch.uint8).view(1, 1, 2, 3)
    transform = ImageBatchTransform(crop_padding=0, mean=(0.0,), std=(1.0,))
    out = _raw(transform, image.expand(1000, 1, 2, 3).contiguous(), seed=3)
    mirrored = out.eq(image.flip(-1)).flatten(1).all(1)
    unchanged = out.eq(image).flatten(1).all(1)
    assert bool((mirrored ^ unchanged).all())
    assert 430 < int(mirrored.sum()) < 570


def test_eval_scales_and_normalises_per_channel() -> None:
    batch = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 1, 2)
    transform = ImageBatchTransform(crop_padding=2, mean=(0.5, 0.2, 0.0), std=(0.5, 0.4, 2.0))
    out = transform.eval(batch)
    assert out.dtype == torch.float32
    assert out.shape == (1, 3, 1, 2)
    # (0 - 0.5) / 0.5, (1 - 0.2) / 0.4, (0.2 - 0) / 2
    expected = torch.tensor([-1.0, 2.0, 0.1]).view(1, 3, 1, 1).expand(1, 3, 1, 2)
    torch.testing.assert_close(out, expected)


def test_default_normalisation_maps_0_and_255_to_minus_one_and_one() -> None:
    batch = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(2, 3, 1, 2)
    transform = ImageBatchTransform(crop_padding=0, flip=False)
    train = transform.train(batch.contiguous(), torch.Generator().manual_seed(0))
    assert train.dtype == torch.float32
    assert train.shape == (2, 3, 1, 2)
    assert train[..., 0].eq(-1).all() and train[..., 1].eq(1).all()


def test_same_generator_state_same_batch_and_bad_inputs_are_rejected() -> None:
    batch = torch.randint(0, 256, (8, 3, 6, 6), dtype=torch.uint8)
    transform = ImageBatchTransform(crop_padding=1)
    first = transform.train(batch, torch.Generator().manual_seed(5))
    assert torch.equal(first, transform.train(batch, torch.Generator().manual_seed(5)))
    assert not torch.equal(first, transform.train(batch, torch.Generator().manual_seed(6)))
    with pytest.raises(ValueError, match="uint8"):
        transform.eval(batch.float())
    with pytest.raises(ValueError, match="channels"):
        transform.eval(batch[:, :1])
    with pytest.raises(ValueError, match="crop_padding"):
        ImageBatchTransform(crop_padding=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_same_batch_as_cpu_for_the_same_generator_state() -> None:
    batch = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    transform = ImageBatchTransform(crop_padding=2)
    cpu = transform.train(batch, torch.Generator().manual_seed(11))
    cuda = transform.train(batch.cuda(), torch.Generator().manual_seed(11))
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=0, atol=1e-6)
    torch.testing.assert_close(transform.eval(batch.cuda()).cpu(), transform.eval(batch))


def test_channels_last_views_from_the_datasets_give_the_same_result() -> None:
    nhwc = torch.randint(0, 256, (8, 6, 5, 3), dtype=torch.uint8)
    view = nhwc.permute(0, 3, 1, 2)  # what csv_images batches look like
    assert not view.is_contiguous()
    transform = ImageBatchTransform(crop_padding=1)
    train = transform.train(view, torch.Generator().manual_seed(2))
    expected = transform.train(view.contiguous(), torch.Generator().manual_seed(2))
    assert torch.equal(train, expected)
    assert torch.equal(transform.eval(view), transform.eval(view.contiguous()))
    assert train.is_contiguous() and transform.eval(view).is_contiguous()
