"""Nodes of the predict pipeline: a chosen model applied to a folder of new frames."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pandas as pd

from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.imaging import IMAGE_EXTENSIONS, has_image_extension, image_id_of
from sewer_segmentation.modelling.inference import TrainedModel, predict_frames
from sewer_segmentation.params import PredictParams
from sewer_segmentation.reporting.plots import overlay
from sewer_segmentation.tracking.registry import load_chosen_model  # noqa: F401 - the pipeline's first node

logger = logging.getLogger(__name__)

PREDICTION_COLUMNS = ["image", "status", "width", "height", "defect_area_fraction", "mean_confidence", "regions", "boxes"]


def _regions(mask: np.ndarray) -> list[list[int]]:
    """Bounding boxes ``[x0, y0, x1, y1]`` (exclusive ends) of the connected regions of a 0/255 mask."""
    n, _, stats, _ = cv2.connectedComponentsWithStats((mask > 127).astype(np.uint8), connectivity=8)
    return [[int(x), int(y), int(x + w), int(y + h)] for x, y, w, h, _area in stats[1:n]]


def _output_ids(names: list[str]) -> dict[str, str]:
    """Output name of each frame: its id (``sub/a.jpg`` -> ``sub__a``), or, where two frames share one
    (``a.jpg`` and ``a.png``), the id with the extension kept (``a.jpg``, ``a.png``); where even that is
    shared (``sub/a.jpg`` and ``sub__a.jpg``), a short hash of the frame's path is added. No mask overwrites
    another."""
    ids = {name: image_id_of(name) for name in names}
    counts = pd.Series(list(ids.values()), dtype=object).value_counts()
    out = {name: (i + PurePosixPath(name).suffix if counts[i] > 1 else i) for name, i in ids.items()}
    counts = pd.Series(list(out.values()), dtype=object).value_counts()
    out = {name: (o + "-" + hashlib.sha1(name.encode()).hexdigest()[:8] if counts[o] > 1 else o) for name, o in out.items()}
    for name in sorted(n for n in names if out[n] != ids[n]):
        logger.warning("%s shares its name with another frame: its mask and overlay are named %s.png", name, out[name])
    return out


def _summary_row(name: str, image: np.ndarray, mask: np.ndarray, probability: np.ndarray) -> dict:
    defect = mask > 0
    boxes = _regions(mask)
    return {
        "image": name,
        "status": "ok",
        "width": image.shape[1],
        "height": image.shape[0],
        "defect_area_fraction": round(float(defect.mean()), 6),
        "mean_confidence": round(float(probability[defect].mean()) if defect.any() else 0.0, 4),
        "regions": len(boxes),
        "boxes": ";".join(" ".join(map(str, b)) for b in boxes),
    }


def predict_folder(trained: TrainedModel, frames, params: PredictParams) -> tuple[dict, dict, pd.DataFrame]:
    """Masks (0/255, each frame's own size), overlays and a summary table for every frame.

    Frames are read and predicted in batches with a progress bar; a frame that cannot be read is listed
    with its error in the table and skipped.
    """
    threshold = params.threshold
    names = sorted(n for n in frames if has_image_extension(n))
    ignored = sorted(n for n in frames if not has_image_extension(n))
    if not names:
        folder = Path(params.input_folder)
        problem = "does not exist" if not folder.exists() else f"holds no image files ({', '.join(IMAGE_EXTENSIONS)})"
        raise BadInputError(f"{folder}: {problem}; pass the folder of frames with --params=inference_folder=<folder>")
    output_ids = _output_ids(names)
    masks, overlays, rows = {}, {}, []
    for name in ignored:
        rows.append({"image": name, "status": "ignored: not an image file extension"})
    for prediction in predict_frames(trained, {name: frames[name] for name in names}, params, description="predict"):
        name = prediction.image_id
        if prediction.error:
            rows.append({"image": name, "status": prediction.error})
            logger.warning("Skipping %s: %s", name, prediction.error)
            continue
        image, prob = prediction.image, prediction.probability
        mask = np.where(prob >= threshold, 255, 0).astype(np.uint8)
        masks[output_ids[name]] = mask
        overlays[output_ids[name]] = overlay(image, mask, (255, 60, 60), 0.5)
        rows.append(_summary_row(name, image, mask, prob))
    table = pd.DataFrame(rows, columns=PREDICTION_COLUMNS).sort_values("image").reset_index(drop=True)
    table[["width", "height", "regions"]] = table[["width", "height", "regions"]].astype("Int64")
    logger.info("Predicted %d frames (%d skipped)", len(masks), int((table.status != "ok").sum()))
    return masks, overlays, table
