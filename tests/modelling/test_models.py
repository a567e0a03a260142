import time

import pytest
import torch

from sewer_segmentation.errors import ConfigurationError
from sewer_segmentation.modelling import models
from sewer_segmentation.modelling.models import UNetAttention, build_model, load_model, save_model

SMALL = {"encoder_name": "resnet18", "encoder_weights": None, "args": {"decoder_channels": [32, 16, 16, 8, 8]}}


def test_unet_attention_has_the_gate_and_predicts_one_channel():
    model = build_model({"architecture": "UNetAttention", **SMALL}).eval()
    assert isinstance(model, UNetAttention)
    gate = model.attention_gate
    assert gate[0].in_channels == 512 and gate[0].out_channels == 256 and gate[2].out_channels == 1
    x = torch.randn(2, 3, 64, 96)
    assert model(x).shape == (2, 1, 64, 96)
    with torch.no_grad():  # the gate really takes part: zeroing it changes the output
        before = model(x)
        gate[2].bias.fill_(-50.0)
        assert not torch.allclose(before, model(x))


@pytest.mark.parametrize("architecture", ["Unet", "UnetPlusPlus", "FPN", "DeepLabV3Plus", "Linknet"])
def test_any_smp_architecture_by_name(architecture):
    config = {"architecture": architecture, "encoder_name": "resnet18", "encoder_weights": None}
    assert build_model(config).eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1, 64, 64)


def test_unknown_architecture_or_encoder_is_refused_by_the_parameter_model_naming_the_choices():
    from pydantic import ValidationError

    from sewer_segmentation.params import ModelParams

    with pytest.raises(ValidationError, match=r"unknown architecture \(did you mean Unet\?\); choose one of .*UNetAttention.*UnetPlusPlus"):
        ModelParams(architecture="UNetX")
    with pytest.raises(ValidationError, match="unknown encoder"):
        ModelParams(encoder_name="resnet1800")
    assert ModelParams(encoder_name="tu-resnet10t").encoder_name == "tu-resnet10t"  # any timm encoder


def test_freeze_encoder_and_batchnorm():
    model = build_model({"architecture": "Unet", **SMALL, "freeze_encoder": True})
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.decoder.parameters())
    models.set_batchnorm_frozen(model.train(), True)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)


def test_save_and_load_reproduce_outputs_without_pickle(tmp_path):
    config = {"architecture": "UNetAttention", **SMALL}
    model = build_model(config).eval()
    save_model(model, config, tmp_path / "m", extra={"image_size": {"height": 64, "width": 64}})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.safetensors", "model_config.json"]
    loaded, meta = load_model(tmp_path / "m")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert meta["image_size"] == {"height": 64, "width": 64}


@pytest.mark.parametrize("damaged", ["model.safetensors", "model_config.json"])
def test_a_truncated_model_file_is_named_with_what_to_do(tmp_path, damaged):
    from sewer_segmentation.errors import BadInputError

    config = {"architecture": "UNetAttention", **SMALL}
    save_model(build_model(config), config, tmp_path / "m")
    path = tmp_path / "m" / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BadInputError, match=rf"m/{damaged}: truncated or corrupt .*Remove the folder .* or train the stage again"):
        load_model(tmp_path / "m")


def test_offline_imagenet_request_fails_fast_with_a_clear_message(monkeypatch):
    monkeypatch.setattr(models, "_weights_host_reachable", lambda *a, **k: False)
    start = time.perf_counter()
    with pytest.raises(ConfigurationError) as err:
        build_model({"architecture": "UNetAttention", "encoder_name": "resnet34", "encoder_weights": "imagenet"})
    assert time.perf_counter() - start < 20
    message = str(err.value)
    assert "encoder_weights: null" in message and "local file" in message


def test_local_encoder_weights_file(tmp_path):
    donor = build_model({"architecture": "Unet", **SMALL})
    torch.save(donor.encoder.state_dict(), tmp_path / "encoder.pth")
    model = build_model({"architecture": "Unet", **SMALL, "encoder_weights": str(tmp_path / "encoder.pth")})
    for a, b in zip(donor.encoder.state_dict().values(), model.encoder.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ConfigurationError, match="does not exist"):
        build_model({"architecture": "Unet", **SMALL, "encoder_weights": str(tmp_path / "missing.pth")})


def test_a_full_disk_while_saving_a_model_says_where_space_ran_out(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from sewer_segmentation.errors import StorageFullError

    def short_write(*_args, **_kwargs):
        raise RuntimeError("unexpected pos 1234")  # what torch and safetensors raise on a full disk

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(models, "save_file", short_write)
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(10**9, 10**9, 1024))
    config = {"architecture": "UNetAttention", **SMALL}
    with pytest.raises(StorageFullError, match=r"no space left on the disk holding .*m \(0 MB free\) while writing model.safetensors"):
        save_model(build_model(config), config, tmp_path / "m")
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(10**12, 0, 10**12))
    with pytest.raises(RuntimeError, match="unexpected pos"):  # with space left it is another problem: shown as it is
        save_model(build_model(config), config, tmp_path / "m")
