"""The MLflow pyfunc model of a trained model (MLflow "models from code").

MLflow copies this file into every logged model, so it imports nothing from the project: a logged model
is a TorchScript network plus this file and ``tiling.py`` (shipped as MLflow ``code_paths``, torch only),
and loads with torch, numpy and opencv alone, in any process
(``mlflow.pyfunc.load_model("models:/sewer-segmentation-<dataset>@best")``, ``mlflow models serve``).

Two ways in, each with its own way out:

- **Encoded images** (what ``mlflow models serve`` is sent): a table with an ``image`` column of PNG or
  JPEG files, as base64 text (JSON) or bytes (Python); frames of any size, several per request. Out comes
  one row per frame: ``mask`` (a PNG of the binary mask, 0/255, base64), ``defect_share`` (the share of
  the frame's pixels in the mask), ``height`` and ``width``. The ``threshold`` predict parameter binarizes
  (default: the one the model was logged with).
- **Arrays** (Python callers): ``N x H x W x 3`` (or one ``H x W x 3``) RGB uint8 frames of one size; out
  comes the defect probability per pixel, float32 in [0, 1], at the frames' own size (``N x H x W``).

Every frame is resized to the model's size, or, for a model trained with ``image_size.mode: native``,
predicted at its own scale by tiles: the same resizing, tiling and normalization as the project's own
predictions.
"""

import base64
import json
import warnings

import cv2
import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel


class SewerSegmentationPyfunc(PythonModel):
    def load_context(self, context):
        with warnings.catch_warnings():  # TorchScript's deprecation notice: it is what loads with torch alone
            warnings.simplefilter("ignore", FutureWarning)
            self.network = torch.jit.load(context.artifacts["network"], map_location="cpu").eval()
        with open(context.artifacts["preprocessing"], encoding="utf-8") as f:
            config = json.load(f)
        self.height, self.width = int(config["height"]), int(config["width"])
        self.mean = np.asarray(config["mean"], np.float32) * 255.0
        self.std = np.asarray(config["std"], np.float32) * 255.0
        self.native, self.overlap = config.get("mode") == "native", int(config.get("overlap", 64))
        self.threshold = float(config.get("threshold", 0.5))

    def _resize(self, frame: np.ndarray) -> np.ndarray:
        if frame.shape[:2] == (self.height, self.width):
            return frame
        shrinking = self.height * self.width < frame.shape[0] * frame.shape[1]
        return cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)

    def predict(self, context, model_input, params=None):
        if isinstance(model_input, pd.DataFrame | dict):
            threshold = float((params or {}).get("threshold", self.threshold))
            return self._predict_encoded(model_input, threshold)
        return self._predict_arrays(model_input)

    def _predict_encoded(self, table, threshold: float) -> pd.DataFrame:
        """One row per encoded frame of the ``image`` column: its mask as a base64 PNG and its defect share."""
        if "image" not in table:
            raise ValueError("expected a column 'image' of PNG or JPEG files (base64 text or bytes)")
        rows = []
        for number, value in enumerate(list(table["image"])):
            frame = _decoded(value, number)
            mask = (self._predict_arrays(frame) >= threshold).astype(np.uint8) * 255
            png = cv2.imencode(".png", mask)[1].tobytes()
            rows.append({"mask": base64.b64encode(png).decode("ascii"), "defect_share": float((mask > 0).mean()),
                         "height": int(mask.shape[0]), "width": int(mask.shape[1])})  # fmt: skip
        return pd.DataFrame(rows, columns=["mask", "defect_share", "height", "width"])

    def _predict_arrays(self, model_input) -> np.ndarray:
        frames = np.asarray(model_input)
        single = frames.ndim == 3
        if single:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected RGB frames H x W x 3 or N x H x W x 3, got shape {frames.shape}")
        frames = frames.astype(np.uint8)
        if self.native:
            return self._predict_tiled(frames[0] if single else frames, single)
        batch = np.stack([(self._resize(f).astype(np.float32) - self.mean) / self.std for f in frames])
        with torch.no_grad():
            logits = self.network(torch.from_numpy(batch.transpose(0, 3, 1, 2).copy()))
            probabilities = torch.sigmoid(logits.float())
            full = torch.nn.functional.interpolate(probabilities, size=frames.shape[1:3], mode="bilinear", align_corners=False)
        out = full[:, 0].clamp(0, 1).numpy().astype(np.float32)
        return out[0] if single else out


    def _predict_tiled(self, frames: np.ndarray, single: bool) -> np.ndarray:
        from tiling import predict_tiled  # noqa: PLC0415 - shipped beside this file (code_paths)

        def probabilities(tiles):
            return torch.sigmoid(self.network(tiles).float())

        out = []
        with torch.no_grad():
            for frame in frames[None] if single else frames:
                x = torch.from_numpy(((frame.astype(np.float32) - self.mean) / self.std).transpose(2, 0, 1).copy())
                out.append(predict_tiled(probabilities, x, self.height, self.width, self.overlap)[0].clamp(0, 1).numpy())
        stacked = np.stack(out).astype(np.float32)
        return stacked[0] if single else stacked


def _decoded(value, number: int) -> np.ndarray:
    """An RGB frame from a PNG/JPEG file given as base64 text or bytes (an RGB array passes through)."""
    if isinstance(value, np.ndarray) and value.ndim == 3:
        return value
    try:
        data = base64.b64decode(value, validate=True) if isinstance(value, str) else bytes(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"image {number}: not base64 text or bytes ({exc})") from None
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        raise ValueError(f"image {number}: not a PNG or JPEG file ({len(data)} bytes)")
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


mlflow.models.set_model(SewerSegmentationPyfunc())
