"""Inference: a trained model, the device and precision it runs at, and batched prediction.

Importable without Lightning or Kedro: the I/O layer (``datasets.py``), the predict pipeline and
``sewer-segmentation predict`` need a model and its predictions, not the training loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sewer_segmentation.data.samples import FrameSize, frame_size, normalization_for, to_model_input
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.imaging import to_uint8
from sewer_segmentation.modelling.config import InferenceParams
from sewer_segmentation.modelling.tiling import predict_tiled
from sewer_segmentation.progress import progress_bar
from sewer_segmentation.schema import plain

# --------------------------------------------------------------------------------------------------
# Precision and devices
# --------------------------------------------------------------------------------------------------


def cpu_has_fast_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matrix work runs natively (measured ~2x faster training here)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(setting: str | int, accelerator: str = "auto") -> str:
    """``32``, ``bf16-mixed``, ``16-mixed`` as given; ``auto`` (inference) picks bf16-mixed on GPUs that
    support it and on CPUs with native bf16, else 32-bit. Training measures instead (``precision.py``)."""
    setting = str(setting)
    if setting != "auto":
        return setting
    uses_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if uses_gpu:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_fast_bf16() else "32"


def inference_device(accelerator: str = "auto") -> torch.device:
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


@dataclass
class TrainedModel:
    """A trained model with everything needed to save, reload and describe it."""

    model: torch.nn.Module
    model_config: dict
    image_size: dict
    metadata: dict = field(default_factory=dict)


@torch.inference_mode()
def predict_probabilities(
    model: torch.nn.Module,
    images: list[np.ndarray],
    model_config: dict,
    image_size: dict,
    batch_size: int = 16,
    precision: str = "auto",
    accelerator: str = "auto",
    flip_tta: bool = False,
) -> list[np.ndarray]:
    """Defect probability per pixel for each frame, at the frame's own size (float32 in [0, 1]).

    ``resize`` models: frames are resized to the training size, predicted in batches and the
    probabilities resized back (bilinear). ``native`` models: each frame is predicted at its own scale by
    overlapping tiles of the training size, ``batch_size`` tiles at a time (``modelling/tiling.py``).
    ``flip_tta`` averages with the prediction of the horizontally flipped frame (or tile).
    """
    size = frame_size(image_size)
    device = inference_device(accelerator)
    precision = resolve_precision(precision, accelerator)
    use_bf16 = precision.startswith("bf16")
    model = model.to(device).eval()
    mean, std = normalization_for(model_config)

    def probabilities(batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            probs = torch.sigmoid(model(batch).float())
            if flip_tta:
                probs = (probs + torch.sigmoid(model(batch.flip(-1)).float()).flip(-1)) / 2
        return probs.float()

    if size.native:
        return [_predict_native(probabilities, image, size, mean, std, batch_size, device) for image in images]
    out: list[np.ndarray] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        probs = probabilities(to_model_input(chunk, size.height, size.width, mean, std).to(device))
        for image, prob in zip(chunk, probs, strict=True):
            h, w = image.shape[:2]
            full = F.interpolate(prob[None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
            out.append(full.clamp(0, 1).cpu().numpy())
    return out


def _predict_native(probabilities, image: np.ndarray, size: FrameSize, mean, std, batch_size: int, device: torch.device) -> np.ndarray:
    frame = to_model_input([image], None, None, mean, std)[0].to(device)
    probs = predict_tiled(probabilities, frame, size.height, size.width, size.overlap, batch_size)
    return probs[0].clamp(0, 1).cpu().numpy()


@dataclass
class Prediction:
    """One frame's outcome: its probability map (float32 in [0, 1], the frame's size) or why there is none."""

    image_id: str
    image: np.ndarray | None = None
    probability: np.ndarray | None = None
    error: str | None = None


def _read(image_id: str, read: Callable[[], np.ndarray]) -> Prediction:
    try:
        return Prediction(image_id, image=read())
    except Exception as exc:  # noqa: BLE001 - any unreadable frame is reported, never fatal here
        # the project's own message: raised directly (a Ray worker reads the file itself) or under Kedro's DatasetError
        cause = exc if isinstance(exc, BadInputError) else (exc.__cause__ or exc)
        return Prediction(image_id, error=f"unreadable: {str(cause).split(': ', 1)[-1]}")


def load_trained_model(folder: str | Path) -> TrainedModel:
    """A saved model version (``<stage>/<version>/``: ``model.safetensors`` and ``model_config.json``)."""
    from sewer_segmentation.modelling.models import load_model  # noqa: PLC0415 - segmentation-models-pytorch

    model, meta = load_model(folder)
    metadata = {**meta.get("metadata", {}), "version": Path(folder).name, "path": str(folder)}
    return TrainedModel(model, meta["model"], meta["image_size"], metadata)


def predict_frames(trained: TrainedModel, frames: dict[str, Callable[[], np.ndarray]], settings: InferenceParams | dict,
                   description: str | None = None) -> Iterator[Prediction]:  # fmt: skip
    """The one batched-prediction loop: every frame of ``frames`` (id -> loader), in id order.

    Frames are read and predicted ``settings["batch_size"]`` at a time (with a progress bar when
    ``description`` is given), at ``settings["precision"]`` and with ``settings["flip_tta"]``. A frame that
    cannot be read, or a batch that fails, never stops the others: the batch is retried frame by frame
    and each frame that still fails is yielded with its ``error`` (never as an all-background mask), for
    the caller to report.
    Yielding frame by frame keeps memory at one batch, whatever the number of frames.
    """
    ids = sorted(frames)
    settings = plain(settings)
    batch_size = int(settings.get("batch_size", 16))
    options = {"precision": settings.get("precision", "auto"), "flip_tta": bool(settings.get("flip_tta", False))}

    def predict(batch: list[Prediction]) -> None:
        maps = predict_probabilities(trained.model, [p.image for p in batch], trained.model_config, trained.image_size,
                                     batch_size=len(batch), **options)  # fmt: skip
        for p, probability in zip(batch, maps, strict=True):
            p.probability = probability

    starts = range(0, len(ids), batch_size)
    for start in progress_bar(starts, desc=description, unit="batch") if description else starts:
        batch = [_read(i, frames[i]) for i in ids[start : start + batch_size]]
        readable = [p for p in batch if p.error is None]
        try:
            if readable:
                predict(readable)
        except Exception:  # noqa: BLE001 - narrowed below, frame by frame
            for p in readable:
                try:
                    predict([p])
                except Exception as exc:  # noqa: BLE001 - reported per frame
                    p.error = f"{type(exc).__name__}: {exc}"
        yield from batch


def predict_split(trained: TrainedModel, images, inference: InferenceParams) -> dict[str, np.ndarray]:
    """Probability maps (uint8, 0..255) for every image of a split, at the image's own size (``inference``:
    the section's model, or a dict of its keys). Every image must be predicted: a score on part of eval
    (or of baseline_val) would not compare with other stages."""
    probabilities, failed = {}, []
    for prediction in predict_frames(trained, dict(images), inference):
        if prediction.error:
            failed.append(f"{prediction.image_id} ({prediction.error})")
        else:
            probabilities[prediction.image_id] = to_uint8(prediction.probability)
    if failed:
        raise BadInputError(f"{len(failed)} images of a split could not be predicted: {', '.join(failed[:5])}")
    return probabilities
