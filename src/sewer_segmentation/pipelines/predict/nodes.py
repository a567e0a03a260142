"""Nodes of the predict pipeline: a chosen model applied to a folder of new frames."""

from __future__ import annotations

import hashlib
import logging
from functools import partial
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pandas as pd

from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.files import StagedFolder, StagingArea, staged_folders
from sewer_segmentation.io.imaging import IMAGE_EXTENSIONS, has_image_extension, image_id_of, read_file, write_file
from sewer_segmentation.modelling.inference import TrainedModel, predict_frames
from sewer_segmentation.params import PredictParams, RayParams
from sewer_segmentation.reporting.plots import overlay
from sewer_segmentation.tracking.registry import load_chosen_model  # noqa: F401 - the pipeline's first node

logger = logging.getLogger(__name__)

PREDICTION_COLUMNS = ["image", "status", "width", "height", "defect_area_fraction", "mean_confidence", "regions", "boxes"]


def _regions(mask: np.ndarray) -> list[list[int]]:
    """Bounding boxes ``[x0, y0, x1, y1]`` (exclusive ends) of the connected regions of a 0/255 mask."""
    n, _, stats, _ = cv2.connectedComponentsWithStats((mask > 127).astype(np.uint8), connectivity=8)
    return [[int(x), int(y), int(x + w), int(y + h)] for x, y, w, h, _area in stats[1:n]]


def output_ids(names: list[str]) -> dict[str, str]:
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


def predict_folder(
    trained: TrainedModel, frames, params: PredictParams, engine: str = "local", ray: RayParams = RayParams(),  # noqa: B008 - frozen
    masks_staging: StagingArea | None = None, overlays_staging: StagingArea | None = None,
) -> tuple[dict | StagedFolder, dict | StagedFolder, pd.DataFrame]:  # fmt: skip
    """Masks (0/255, each frame's own size), overlays and a summary table for every frame.

    ``engine: local``: frames are read and predicted in batches here, with a progress bar. ``engine: ray``:
    on the Ray cluster, the workers writing masks and overlays into staging folders that the datasets
    then commit. A frame that cannot be read is listed with its error in the table and skipped.
    """
    names = sorted(n for n in frames if has_image_extension(n))
    ignored = sorted(n for n in frames if not has_image_extension(n))
    if not names:
        folder = Path(params.input_folder)
        problem = "does not exist" if not folder.exists() else f"holds no image files ({', '.join(IMAGE_EXTENSIONS)})"
        raise BadInputError(f"{folder}: {problem}; pass the folder of frames with --params=inference_folder=<folder>")
    names_out = output_ids(names)
    if engine == "ray":
        masks, overlays, rows = _predict_on_ray(trained, frames, names, names_out, params, ray, masks_staging, overlays_staging)
    else:
        masks, overlays, rows = _predict_here(trained, frames, names, names_out, params)
    rows += [{"image": name, "status": "ignored: not an image file extension"} for name in ignored]
    for row in rows:
        if row["status"] != "ok" and not row["status"].startswith("ignored"):
            logger.warning("Skipping %s: %s", row["image"], row["status"])
    table = pd.DataFrame(rows, columns=PREDICTION_COLUMNS).sort_values("image").reset_index(drop=True)
    table[["width", "height", "regions"]] = table[["width", "height", "regions"]].astype("Int64")
    logger.info("Predicted %d frames (%d skipped)", int((table.status == "ok").sum()), int((table.status != "ok").sum()))
    return masks, overlays, table


def _outputs(name: str, image: np.ndarray, probability: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """One frame's mask, overlay and summary row: the same on every engine."""
    mask = np.where(probability >= threshold, 255, 0).astype(np.uint8)
    return mask, overlay(image, mask, (255, 60, 60), 0.5), _summary_row(name, image, mask, probability)


def _predict_here(trained: TrainedModel, frames, names: list[str], out_ids: dict, params: PredictParams) -> tuple[dict, dict, list]:
    masks, overlays, rows = {}, {}, []
    for prediction in predict_frames(trained, {name: frames[name] for name in names}, params, description="predict"):
        if prediction.error:
            rows.append({"image": prediction.image_id, "status": prediction.error})
            continue
        out = out_ids[prediction.image_id]
        masks[out], overlays[out], row = _outputs(prediction.image_id, prediction.image, prediction.probability, params.threshold)
        rows.append(row)
    return masks, overlays, rows


def _predict_on_ray(trained, frames, names, out_ids, params, ray, masks_staging, overlays_staging) -> tuple[StagedFolder, StagedFolder, list]:
    from sewer_segmentation.scaling.ray_engine import FrameJob, file_of, run_frames  # noqa: PLC0415 - Ray only when asked for

    with staged_folders(masks_staging, overlays_staging) as (masks, overlays):
        jobs = [FrameJob(name, file_of(frames[name], "frames"), {"output": out_ids[name]}) for name in names]
        finish = partial(write_prediction, threshold=params.threshold, masks=str(masks), overlays=str(overlays))
        statuses = run_frames(jobs, trained, params, finish, ray, description="predict on ray")
    rows = [s["row"] if "row" in s else {"image": s["image_id"], "status": s["error"]} for s in statuses]
    return StagedFolder(masks), StagedFolder(overlays), rows


def write_prediction(result, threshold: float, masks: str, overlays: str) -> dict:
    """On a Ray worker: one frame's mask and overlay, written where the datasets would write them."""
    image = read_file(**result.frame)
    mask, shown, row = _outputs(result.image_id, image, result.probability, threshold)
    for folder, array in ((masks, mask), (overlays, shown)):
        write_file(Path(folder) / f"{result.extra['output']}.png", array)
    return {"row": row}
