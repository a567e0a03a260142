"""Segmentation models: UNetAttention and any segmentation-models-pytorch architecture by name.

A model is fully described by a JSON-able config (``architecture``, ``encoder_name``, ...); weights are
stored as safetensors beside it, so loading never unpickles code.
"""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path
from typing import Any

import segmentation_models_pytorch as smp
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from sewer_segmentation.errors import BadInputError, ConfigurationError
from sewer_segmentation.io.files import explaining_a_full_disk

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model_config.json"


class UNetAttention(smp.Unet):
    """smp ``Unet`` with an attention gate on the deepest encoder feature map.

    The gate is ``1x1 conv (C -> C/2) -> ReLU -> 1x1 conv (C/2 -> 1) -> sigmoid``; its output multiplies
    the feature map, followed by ``Dropout2d``. Decoder and head are smp's.
    """

    def __init__(self, *args: Any, gate_dropout: float = 0.2, **kwargs: Any):
        super().__init__(*args, **kwargs)
        channels = self.encoder.out_channels[-1]
        self.attention_gate = nn.Sequential(
            nn.Conv2d(channels, max(1, channels // 2), kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(max(1, channels // 2), 1, kernel_size=1),
            nn.Sigmoid(),
        )
        self.gate_dropout = nn.Dropout2d(p=gate_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.jit.is_scripting() or torch.jit.is_tracing()):
            self.check_input_shape(x)
        features = list(self.encoder(x))
        deepest = features[-1]
        features[-1] = self.gate_dropout(deepest * self.attention_gate(deepest))
        return self.segmentation_head(self.decoder(features))


ARCHITECTURES = {"UNetAttention": UNetAttention}


def architecture_names() -> list[str]:
    """Every architecture ``model.architecture`` may name: the project's own and segmentation-models-pytorch's."""
    smp_models = (n for n in dir(smp) if n[0].isupper() and isinstance(getattr(smp, n), type) and issubclass(getattr(smp, n), nn.Module))
    return sorted({*ARCHITECTURES, *smp_models})


def encoder_names() -> list[str]:
    """Every encoder ``model.encoder_name`` may name (segmentation-models-pytorch's)."""
    return sorted(smp.encoders.get_encoder_names())


def _smp_architecture(name: str):
    return ARCHITECTURES[name] if name in ARCHITECTURES else getattr(smp, name)


def build_model(config: dict) -> nn.Module:
    """Build the model described by ``config`` (see ``conf/base/parameters_baseline_training.yml``).

    Keys: ``architecture``, ``encoder_name``, ``encoder_weights`` (``null``, ``imagenet``, or a path to
    a local ``.pth``/``.safetensors`` state dict of the encoder), ``in_channels``, ``classes``,
    ``freeze_encoder``, ``freeze_batchnorm`` and ``args`` (any other keyword of the architecture).
    """
    config = {k: v for k, v in config.items() if k != "normalization"}
    architecture = _smp_architecture(config.get("architecture", "UNetAttention"))
    weights = config.get("encoder_weights")
    local_weights = weights if weights and Path(str(weights)).suffix in (".pth", ".pt", ".safetensors") else None
    kwargs = dict(
        encoder_name=config.get("encoder_name", "resnet34"),
        encoder_weights=None if local_weights else weights,
        in_channels=int(config.get("in_channels", 3)),
        classes=int(config.get("classes", 1)),
        **(config.get("args") or {}),
    )
    offline = bool(weights) and not local_weights and not _weights_host_reachable()
    try:
        with _hub_offline(offline):  # fail at once (cache only) instead of retrying for a minute
            model = architecture(**kwargs)
    except (OSError, ConnectionError, RuntimeError, ValueError) as exc:
        if weights and not local_weights and (offline or _looks_like_download_failure(exc)):
            raise ConfigurationError(
                f"could not download '{weights}' weights for encoder '{kwargs['encoder_name']}' ({type(exc).__name__}). "
                "This machine seems to be offline. Either set `model.encoder_weights: null` to train from scratch, "
                "or download the encoder weights elsewhere and set `model.encoder_weights` to the local file "
                "(a .pth or .safetensors state dict of the encoder)."
            ) from exc
        raise ConfigurationError(f"cannot build {architecture.__name__} with {kwargs}: {exc}") from exc
    if local_weights:
        _load_encoder_weights(model, Path(local_weights))
    if config.get("freeze_encoder"):
        for p in model.encoder.parameters():
            p.requires_grad = False
    return model


def _weights_host_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Pretrained encoder weights come from the Hugging Face hub: probe it once, quickly."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline(enabled: bool):
    if not enabled:
        yield
        return
    import huggingface_hub.constants as hub_constants  # noqa: PLC0415

    previous = hub_constants.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = previous


def _looks_like_download_failure(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    markers = ("connection", "resolve", "network", "urlopen", "offline", "timed out", "hub", "download", "http", "name or service")
    return any(m in text for m in markers)


def _load_encoder_weights(model: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise ConfigurationError(f"encoder weights file {path} does not exist")
    state = load_file(str(path)) if path.suffix == ".safetensors" else torch.load(path, map_location="cpu", weights_only=True)
    expected = set(model.encoder.state_dict())
    matching = expected & set(state)
    if len(matching) < len(expected) / 2:
        raise ConfigurationError(
            f"{path} does not look like weights of this encoder ({len(expected) - len(matching)} of {len(expected)} tensors missing)"
        )
    model.encoder.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)


def set_batchnorm_frozen(model: nn.Module, frozen: bool) -> None:
    """Put BatchNorm layers in eval mode (running statistics fixed) and stop their parameters' gradients.

    With batches of 2 (the original set-up) batch statistics are noise; frozen statistics are steadier.
    Must be re-applied after every ``model.train()``.
    """
    if not frozen:
        return
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            for p in module.parameters():
                p.requires_grad = False


# --------------------------------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------------------------------


def save_model(model: nn.Module, config: dict, folder: str | Path, extra: dict | None = None) -> None:
    """Write ``model.safetensors`` and ``model_config.json`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with explaining_a_full_disk(folder / WEIGHTS_FILE):
        save_file(state, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps({"model": config, **(extra or {})}, indent=2))


def read_model_config(folder: str | Path) -> dict:
    """``model_config.json`` of a saved model; a truncated or corrupt one is named."""
    path = Path(folder) / CONFIG_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or "model" not in meta:
            raise ValueError("no 'model' section")
        return meta
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: truncated or corrupt ({exc}); this model version cannot be used. "
                            f"Remove the folder {Path(folder)} (an older version is then used) or train the stage again") from None  # fmt: skip


def load_model(folder: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild the architecture from ``model_config.json`` and load the safetensors weights."""
    folder = Path(folder)
    meta = read_model_config(folder)
    config = {**meta["model"], "encoder_weights": None}  # weights come from the file, never downloaded
    model = build_model(config)
    try:
        state = load_file(str(folder / WEIGHTS_FILE))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for a damaged file
        raise BadInputError(f"{folder / WEIGHTS_FILE}: truncated or corrupt ({str(exc).splitlines()[0][:200]}); this model version cannot "
                            f"be used. Remove the folder {folder} (an older version is then used) or train the stage again") from None  # fmt: skip
    model.load_state_dict(state)
    model.eval()
    return model, meta
