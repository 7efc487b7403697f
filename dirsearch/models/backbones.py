"""Feature encoders by name: each maps a batch of inputs to one feature vector per sample.

The encoder's output is what FDS keeps statistics of and what the linear regressor reads, so every
backbone ends in a flat ``(N, feature_dim)`` tensor and reports ``feature_dim`` up front (the FDS
layer has to be sized before the first batch).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

from torch import nn
from torchvision.models import resnet

from dirsearch.errors import ConfigError
from dirsearch.models.architectures import (
    ARCHITECTURES,
    IMAGE_ARCHITECTURES,
    VECTOR_ARCHITECTURES,
)

_RESNETS: dict[str, Callable[..., resnet.ResNet]] = {
    "resnet18": resnet.resnet18,
    "resnet34": resnet.resnet34,
    "resnet50": resnet.resnet50,
}
_RESNET_FEATURES = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}
_SMALL_CNN_WIDTHS = (32, 64, 128, 256)


def check_arch(arch: str, input_shape: tuple[int, ...]) -> None:
    """Fail with a message saying what to use when ``arch`` is unknown or cannot read the input.

    ``input_shape`` is (C, H, W) for images and (F,) for feature vectors; any other rank is a
    programming error of the dataset, not something a user can fix in the config.
    """
    if arch not in ARCHITECTURES:
        allowed = ", ".join(ARCHITECTURES)
        raise ConfigError(f"model.arch: unknown architecture {arch!r}; allowed: {allowed}")
    if len(input_shape) not in (1, 3) or any(int(size) < 1 for size in input_shape):
        raise ValueError(
            f"input_shape must be (C, H, W) or (F,) with positive sizes, got {input_shape}"
        )
    is_image = len(input_shape) == 3
    if is_image and arch in VECTOR_ARCHITECTURES:
        raise ConfigError(
            f"model.arch: {arch!r} takes feature vectors but the data are images of shape "
            f"{tuple(input_shape)}; use one of {', '.join(IMAGE_ARCHITECTURES)}"
        )
    if not is_image and arch in IMAGE_ARCHITECTURES:
        raise ConfigError(
            f"model.arch: {arch!r} takes images but the data are feature vectors of shape "
            f"{tuple(input_shape)}; use one of {', '.join(VECTOR_ARCHITECTURES)}"
        )


def check_mlp_hidden(mlp_hidden: tuple[int, ...]) -> None:
    """Hidden sizes must be positive integers (an empty tuple means a plain linear model)."""
    if any(isinstance(size, bool) or not isinstance(size, int) or size < 1 for size in mlp_hidden):
        raise ConfigError(
            f"model.mlp_hidden: hidden sizes must be positive integers, got {list(mlp_hidden)}"
        )


def feature_dim(
    arch: str, input_shape: tuple[int, ...], *, mlp_hidden: tuple[int, ...] = (128, 128)
) -> int:
    """The encoder's output size, known without building it, so an FDS layer can be sized first.

    resnet18/34: 512, resnet50: 2048, small_cnn: 256, mlp: the last hidden size (the input size
    when there are no hidden layers).
    """
    check_arch(arch, input_shape)
    if arch in _RESNET_FEATURES:
        return _RESNET_FEATURES[arch]
    if arch == "small_cnn":
        return _SMALL_CNN_WIDTHS[-1]
    check_mlp_hidden(mlp_hidden)
    return mlp_hidden[-1] if mlp_hidden else input_shape[0]


def build_backbone(
    arch: str, input_shape: tuple[int, ...], *, mlp_hidden: tuple[int, ...] = (128, 128)
) -> nn.Module:
    """A fresh encoder for ``arch`` reading ``input_shape``, with ``feature_dim`` outputs."""
    check_arch(arch, input_shape)
    if arch in _RESNETS:
        return _resnet_backbone(arch, channels=input_shape[0])
    if arch == "small_cnn":
        return _small_cnn(channels=input_shape[0])
    check_mlp_hidden(mlp_hidden)
    return _mlp(input_shape[0], mlp_hidden)


def _resnet_backbone(arch: str, channels: int) -> resnet.ResNet:
    """A randomly initialised torchvision ResNet whose classifier head is removed.

    ``weights=None`` guarantees nothing is downloaded. Keeping the torchvision layout (stem
    included) keeps parameter names compatible with torchvision state dicts, which is what lets a
    local ImageNet checkpoint be loaded; the adaptive pooling makes any image size >= 1x1 work.
    """
    net = _RESNETS[arch](weights=None)
    if channels != 3:
        stem = net.conv1
        net.conv1 = nn.Conv2d(
            channels,
            stem.out_channels,
            kernel_size=stem.kernel_size,
            stride=stem.stride,
            padding=stem.padding,
            bias=False,
        )
    net.fc = nn.Identity()
    return net


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _small_cnn(channels: int) -> nn.Sequential:
    """Conv-BN-ReLU blocks that each halve the resolution, then global average pooling.

    Sized for 32x32 inputs and CPU training: striding from the first block (32 -> 16 -> 8 -> 4
    -> 2) made an epoch of 10k images about 5x faster than a full-resolution first block, while
    the four widths still give a 256-d feature for FDS to smooth.
    """
    widths = (channels, *_SMALL_CNN_WIDTHS)
    blocks = [_conv_block(w_in, w_out) for w_in, w_out in pairwise(widths)]
    return nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _mlp(in_features: int, hidden: tuple[int, ...]) -> nn.Sequential:
    """Linear-BN-ReLU layers; BatchNorm keeps raw (unscaled) tabular columns trainable."""
    layers: list[nn.Module] = []
    for width_in, width_out in pairwise((in_features, *hidden)):
        layers += [nn.Linear(width_in, width_out), nn.BatchNorm1d(width_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)
