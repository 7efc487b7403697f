"""Models: every backbone trains, FDS is wired before the regressor, local weights load safely."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from dirsearch.errors import ConfigError
from dirsearch.imbalance.bins import Binning
from dirsearch.imbalance.fds import FDS
from dirsearch.models import (
    ARCHITECTURES,
    DIRRegressor,
    RegressorOutput,
    build_model,
    feature_dim,
)

IMAGE = (3, 32, 32)
VECTOR = (6,)
EXPECTED_FEATURES = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "small_cnn": 256}


def _shape_for(arch: str) -> tuple[int, ...]:
    return VECTOR if arch == "mlp" else IMAGE


def _batch(shape: tuple[int, ...], n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def _save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def test_architecture_names() -> None:
    assert ARCHITECTURES == ("resnet18", "resnet34", "resnet50", "small_cnn", "mlp")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_forward_backward_reaches_every_backbone_parameter(arch: str) -> None:
    torch.manual_seed(0)
    shape = _shape_for(arch)
    model = build_model(arch, shape, mlp_hidden=(16, 8))
    out = model(_batch(shape))
    expected_dim = EXPECTED_FEATURES.get(arch, 8)
    assert isinstance(out, RegressorOutput)
    assert out.preds.shape == (2,)
    assert out.features.shape == (2, expected_dim)
    assert model.feature_dim == expected_dim == feature_dim(arch, shape, mlp_hidden=(16, 8))
    assert isinstance(model.regressor, nn.Linear)
    assert (model.regressor.in_features, model.regressor.out_features) == (expected_dim, 1)
    out.preds.square().sum().backward()
    for name, param in model.backbone.named_parameters():
        assert param.grad is not None, name
    assert any(param.grad.abs().sum() > 0 for param in model.backbone.parameters())


@pytest.mark.parametrize("arch", ["small_cnn", "mlp"])
def test_same_return_type_in_train_and_eval(arch: str) -> None:
    shape = _shape_for(arch)
    model = build_model(arch, shape)
    x = _batch(shape, n=3)
    train_out = model.train()(x)
    eval_out = model.eval()(x)
    assert type(train_out) is type(eval_out) is RegressorOutput
    assert train_out.preds.shape == eval_out.preds.shape == (3,)
    assert train_out.features.shape == eval_out.features.shape == (3, 256 if arch != "mlp" else 128)


def test_single_sample_prediction_is_still_one_dimensional() -> None:
    model = build_model("mlp", VECTOR).eval()
    assert model(_batch(VECTOR, n=1)).preds.shape == (1,)


@pytest.mark.parametrize(("arch", "shape"), [("resnet18", (1, 32, 32)), ("small_cnn", (5, 17, 23))])
def test_any_channel_count_and_small_images(arch: str, shape: tuple[int, ...]) -> None:
    model = build_model(arch, shape)
    assert model(_batch(shape)).features.shape == (2, EXPECTED_FEATURES[arch])


def test_mlp_without_hidden_layers_is_a_linear_model_on_the_raw_features() -> None:
    model = build_model("mlp", VECTOR, mlp_hidden=())
    x = _batch(VECTOR)
    out = model(x)
    assert model.feature_dim == 6
    assert torch.equal(out.features, x)
    torch.testing.assert_close(out.preds, x @ model.regressor.weight[0] + model.regressor.bias)


def test_resnets_download_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    build_model("resnet18", IMAGE)
    assert list(tmp_path.iterdir()) == []


def test_dropout_acts_on_the_regressor_input_in_training_only() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", VECTOR, mlp_hidden=(), dropout=0.5)
    x = _batch(VECTOR, n=4)
    eval_preds = model.eval()(x).preds
    torch.testing.assert_close(eval_preds, model.regressor(x).squeeze(-1))
    assert not torch.allclose(model.train()(x).preds, eval_preds)


# --- FDS wiring -----------------------------------------------------------------------------


def _fds_model() -> tuple[DIRRegressor, torch.Tensor, torch.Tensor]:
    """An identity backbone (so features == inputs) with an FDS that has seen one epoch."""
    fds = FDS(6, Binning(0.0, 1.0, 3), ks=3, sigma=1.0, start_update=0, start_smooth=1)
    model = build_model("mlp", VECTOR, mlp_hidden=(), fds=fds)
    generator = torch.Generator().manual_seed(1)
    epoch_features = torch.randn(30, 6, generator=generator) * torch.arange(1.0, 7.0)
    epoch_targets = torch.arange(30.0) % 3 + 0.5
    fds.update(epoch_features, epoch_targets, epoch=0)
    x = torch.randn(4, 6, generator=generator)
    targets = torch.tensor([0.5, 1.5, 2.5, 1.5])
    return model, x, targets


def test_fds_smooths_the_regressor_input_but_returns_pre_fds_features() -> None:
    model, x, targets = _fds_model()
    model.train()
    smoothed = model.fds.smooth(x, targets, 1)
    assert not torch.allclose(smoothed, x)  # the statistics above make smoothing visible
    out = model(x, targets, epoch=1)
    assert torch.equal(out.features, x)
    torch.testing.assert_close(out.preds, model.regressor(smoothed).squeeze(-1))


@pytest.mark.parametrize(
    ("training", "with_targets", "epoch"),
    [(False, True, 1), (True, True, 0), (True, False, 1), (True, True, None)],
    ids=["eval", "before-start-smooth", "no-targets", "no-epoch"],
)
def test_fds_is_identity_unless_training_with_targets_and_epoch(
    training: bool, with_targets: bool, epoch: int | None
) -> None:
    model, x, targets = _fds_model()
    model.train(training)
    out = model(x, targets if with_targets else None, epoch=epoch)
    torch.testing.assert_close(out.preds, model.regressor(x).squeeze(-1))
    assert torch.equal(out.features, x)


def test_fds_statistics_travel_in_the_model_state_dict(tmp_path: Path) -> None:
    """A model rebuilt from a saved state dict smooths exactly like the one that saved it: the
    FDS statistics are in the state dict, and the calibration derived from them (not saved) is
    rebuilt on loading."""
    model, x, targets = _fds_model()
    path = _save(model.state_dict(), tmp_path / "model.pt")
    torch.manual_seed(5)
    fds = FDS(6, Binning(0.0, 1.0, 3), ks=3, sigma=1.0, start_update=0, start_smooth=1)
    fresh = build_model("mlp", VECTOR, mlp_hidden=(), fds=fds)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    assert model.fds.num_samples.sum() == 30  # the source really holds one epoch's statistics
    for name in ("running_mean", "running_var", "smoothed_mean", "smoothed_var", "num_samples"):
        assert torch.equal(getattr(fresh.fds, name), getattr(model.fds, name)), name
    expected = model.train()(x, targets, epoch=1).preds
    assert torch.equal(fresh.train()(x, targets, epoch=1).preds, expected)


def test_fds_sized_for_another_feature_dim_is_rejected() -> None:
    with pytest.raises(ValueError, match="FDS feature_dim is 64; the backbone gives 256"):
        build_model("small_cnn", IMAGE, fds=FDS(64, Binning()))


# --- pretrained weights ---------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["resnet18", "small_cnn", "mlp"])
def test_backbone_state_dict_round_trip(arch: str, tmp_path: Path) -> None:
    shape = _shape_for(arch)
    torch.manual_seed(0)
    source = build_model(arch, shape)
    # Move BatchNorm statistics away from their init so they are checked too.
    source.train()(_batch(shape, n=4, seed=3))
    path = _save(source.backbone.state_dict(), tmp_path / "backbone.pt")
    torch.manual_seed(1)
    loaded = build_model(arch, shape, pretrained=path)
    x = _batch(shape, n=2, seed=4)
    assert torch.equal(loaded.eval()(x).features, source.eval()(x).features)


def test_torchvision_resnet_state_dict_loads_without_its_fc(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None).eval()
    path = _save(reference.state_dict(), tmp_path / "resnet18.pth")
    model = build_model("resnet18", IMAGE, pretrained=path).eval()
    reference.fc = nn.Identity()
    x = _batch(IMAGE)
    assert torch.equal(model(x).features, reference(x))


def _load_error(tmp_path: Path, arch: str, shape: tuple[int, ...], content: object) -> str:
    path = _save(content, tmp_path / "weights.pt")
    with pytest.raises(ConfigError) as info:
        build_model(arch, shape, pretrained=path)
    message = str(info.value)
    assert message.startswith("model.pretrained: ")
    assert str(path) in message
    return message


def test_missing_pretrained_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pt"
    with pytest.raises(ConfigError, match=r"model\.pretrained: file .*nope\.pt does not exist"):
        build_model("small_cnn", IMAGE, pretrained=path)


def test_pickled_module_is_refused_by_the_safe_loader(tmp_path: Path) -> None:
    message = _load_error(tmp_path, "mlp", VECTOR, nn.Linear(6, 128))
    assert "cannot read" in message and "weights-only" in message


def test_file_that_is_not_a_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    path.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(ConfigError, match=r"model\.pretrained: cannot read .*weights\.pt"):
        build_model("mlp", VECTOR, pretrained=path)


@pytest.mark.parametrize(
    ("content", "kind"),
    [([torch.zeros(2)], "list"), ({"0.weight": [1.0, 2.0]}, "dict"), ({1: torch.zeros(1)}, "dict")],
)
def test_file_that_is_not_a_state_dict(tmp_path: Path, content: object, kind: str) -> None:
    message = _load_error(tmp_path, "mlp", VECTOR, content)
    assert f"holds a {kind}, not a state dict" in message


def test_state_dict_of_another_architecture(tmp_path: Path) -> None:
    other = build_model("small_cnn", IMAGE).backbone.state_dict()
    message = _load_error(tmp_path, "resnet18", IMAGE, other)
    assert "missing keys: conv1.weight, bn1.weight, bn1.bias, ..." in message
    assert "unexpected keys: 0.0.weight, 0.1.weight, 0.1.bias, ..." in message


def test_state_dict_for_another_channel_count(tmp_path: Path) -> None:
    grey = build_model("small_cnn", (1, 32, 32)).backbone.state_dict()
    message = _load_error(tmp_path, "small_cnn", IMAGE, grey)
    assert message.endswith(
        "does not fit the backbone: 1 wrong shapes: 0.0.weight file (32, 1, 3, 3) "
        "vs model (32, 3, 3, 3)"
    )


def test_fc_keys_are_not_dropped_for_backbones_without_a_head(tmp_path: Path) -> None:
    state = build_model("mlp", VECTOR).backbone.state_dict()
    state["fc.weight"] = torch.zeros(1, 128)
    message = _load_error(tmp_path, "mlp", VECTOR, state)
    assert message.endswith("1 unexpected keys: fc.weight")


# --- config errors --------------------------------------------------------------------------


def test_unknown_arch_names_the_key_and_the_choices() -> None:
    with pytest.raises(ConfigError) as info:
        build_model("vgg16", IMAGE)
    assert str(info.value) == (
        "model.arch: unknown architecture 'vgg16'; "
        "allowed: resnet18, resnet34, resnet50, small_cnn, mlp"
    )


def test_mlp_on_images_says_which_archs_to_use() -> None:
    with pytest.raises(ConfigError, match=r"model\.arch: 'mlp' takes feature vectors") as info:
        build_model("mlp", IMAGE)
    assert str(info.value).endswith("use one of resnet18, resnet34, resnet50, small_cnn")


def test_cnn_on_vectors_says_to_use_mlp() -> None:
    with pytest.raises(ConfigError, match=r"model\.arch: 'small_cnn' takes images") as info:
        feature_dim("small_cnn", VECTOR)
    assert str(info.value).endswith("shape (6,); use one of mlp")


@pytest.mark.parametrize("hidden", [(0,), (16, -1), (8.5,)])
def test_bad_mlp_hidden(hidden: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match=r"model\.mlp_hidden: hidden sizes must be positive"):
        build_model("mlp", VECTOR, mlp_hidden=hidden)


@pytest.mark.parametrize("dropout", [-0.1, 1.0])
def test_bad_dropout(dropout: float) -> None:
    with pytest.raises(ConfigError, match=r"model\.dropout: must be in \[0, 1\)"):
        build_model("mlp", VECTOR, dropout=dropout)


def test_input_shape_of_the_wrong_rank_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"input_shape must be \(C, H, W\) or \(F,\)"):
        build_model("small_cnn", (32, 32))


# --- regressor re-training (RRT) -------------------------------------------------------------


def test_freeze_all_but_regressor() -> None:
    fds = FDS(256, Binning(0.0, 1.0, 4), ks=3, sigma=1.0)
    model = build_model("small_cnn", IMAGE, fds=fds)
    trainable = model.freeze_all_but_regressor()
    assert trainable == list(model.regressor.parameters())
    assert [name for name, p in model.named_parameters() if p.requires_grad] == [
        "regressor.weight",
        "regressor.bias",
    ]
    model.train()
    assert model.training and model.fds.training and model.regressor.training
    assert not any(module.training for module in model.backbone.modules())
    frozen_stats = {key: value.clone() for key, value in model.backbone.state_dict().items()}
    out = model(_batch(IMAGE, n=4))
    out.preds.sum().backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.regressor.weight.grad is not None
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, frozen_stats[key]), key


# --- CUDA -----------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("arch", ["resnet18", "small_cnn"])
def test_cuda_forward_backward_with_fds(arch: str) -> None:
    device = torch.device("cuda")
    dim = feature_dim(arch, IMAGE)
    fds = FDS(dim, Binning(0.0, 1.0, 4), ks=3, sigma=1.0)
    model = build_model(arch, IMAGE, fds=fds).to(device).train()
    x = _batch(IMAGE, n=8).to(device)
    targets = torch.arange(8.0, device=device) % 4
    fds.update(model(x).features.detach(), targets, epoch=0)
    out = model(x, targets, epoch=1)
    assert out.preds.device.type == "cuda" and out.preds.shape == (8,)
    out.preds.square().mean().backward()
    assert all(p.grad is not None for p in model.backbone.parameters())
