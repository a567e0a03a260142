"""Nodes of the export_review pipeline: a round's refined masks (or the predict pipeline's masks), most
uncertain first, in the formats labelling tools import (``data/review.py``)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from sewer_segmentation.data.review import binarize, coco_document, coco_masks, cvat_xml, review_score, yolo_segmentation_lines
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.params import ExportReviewParams
from sewer_segmentation.pipelines.predict.nodes import output_ids
from sewer_segmentation.progress import progress_bar
from sewer_segmentation.refinement.masks import RefinedMasks
from sewer_segmentation.reporting.plots import image_grid, overlay

logger = logging.getLogger(__name__)


def review_frames(refined: RefinedMasks, weak_box_masks, params: ExportReviewParams, round_number: int = 1) -> list[dict]:
    """Every refined frame with its binarized mask and review score, lowest score (most uncertain) first."""
    if not refined.masks:
        raise BadInputError(f"round {round_number} has no refined masks to review: run `kedro run --pipeline=refine --params=round:{round_number}` "
                            "first (or export the predict pipeline's masks: --params=export_review.source=predictions)")  # fmt: skip
    missing = sorted(set(refined.masks) - set(weak_box_masks))
    if missing:
        raise BadInputError(f"{len(missing)} refined masks have no box mask in the weak pool ({', '.join(missing[:5])}): "
                            "they were made before the last data_engineering run; refine the round again")  # fmt: skip
    frames = []
    for image_id in progress_bar(sorted(refined.masks), desc="review export", unit="img"):
        soft = refined.masks[image_id]()
        frames.append({"image_id": image_id, "file_name": f"images/{image_id}.png", "mask": binarize(soft, params.threshold),
                       "score": review_score(soft, weak_box_masks[image_id]())})  # fmt: skip
    return sorted(frames, key=lambda f: (f["score"], f["image_id"]))


def prediction_frames(masks, table: pd.DataFrame | None, params: ExportReviewParams) -> list[dict]:
    """Every frame the predict pipeline predicted, with its mask (already binary) and as review score its
    mean confidence inside the mask (1 where it found nothing), lowest first. ``image_id`` is the name of
    the frame's mask file; ``source`` its frame in the input folder."""
    if table is None or not (table.status == "ok").any():
        raise BadInputError(f"no predictions to review for predict.model={params.model!r} on {params.input_folder}: run "
                            "`kedro run --pipeline=predict` with the same predict_model and inference_folder first")  # fmt: skip
    out_ids = output_ids([name for name, status in zip(table.image, table.status, strict=True) if not str(status).startswith("ignored")])
    frames = []
    for row in table[table.status == "ok"].itertuples():
        image_id = out_ids[row.image]
        score = float(row.mean_confidence) if int(row.regions) > 0 else 1.0
        frames.append({"image_id": image_id, "source": row.image, "file_name": f"images/{image_id}.png", "mask": masks[image_id]() > 127, "score": score})
    return sorted(frames, key=lambda f: (f["score"], f["image_id"]))


def export_review(
    refined: RefinedMasks, weak_images, weak_box_masks, prediction_masks, predictions_table, inference_images, params: ExportReviewParams,
    round_number: int,
):  # fmt: skip
    """COCO JSON, CVAT XML, YOLO segmentation labels and ``data.yaml``, the frames, and the review order of
    ``export_review.source``: round ``round_number``'s refined masks, or the predict pipeline's masks."""
    if params.source == "predictions":
        frames = prediction_frames(prediction_masks, predictions_table, params)
        images = {f["image_id"]: inference_images[f["source"]] for f in frames}
    else:
        frames, images = review_frames(refined, weak_box_masks, params, round_number), weak_images
    coco, cvat, yolo, data_yaml, images = tool_files(frames, images, params.category)
    order = pd.DataFrame([{"rank": i + 1, "image_id": f["image_id"], "review_score": round(f["score"], 4), "defect_pixels": int(f["mask"].sum())}
                          for i, f in enumerate(frames)])  # fmt: skip
    logger.info("Review export of the %s: %d frames, most uncertain first (%s)", params.source, len(frames), ", ".join(order.image_id.head(3)))
    return coco, cvat, yolo, data_yaml, images, order, review_gallery(coco, frames, images)


def tool_files(frames: list[dict], weak_images, category: str) -> tuple:
    """The files a labelling tool imports for ``frames`` (``image_id``, ``file_name``, binary ``mask``,
    ``score``): COCO JSON, CVAT XML, YOLO segmentation labels and ``data.yaml``, and the frames (loaders,
    copied one at a time). Shared by export_review and suggest_labels."""
    yolo = {f["image_id"]: "\n".join(yolo_segmentation_lines(f["mask"])) + "\n" for f in frames}
    data_yaml = f"path: .\ntrain: images\nval: images\nnames:\n  0: {category}\n"
    images = {f["image_id"]: weak_images[f["image_id"]] for f in frames}
    return coco_document(frames, category), cvat_xml(frames, category), yolo, data_yaml, images


def review_gallery(coco: dict, frames: list[dict], weak_images, count: int = 8) -> np.ndarray:
    """The first frames of the review order with the exported COCO masks drawn on them, decoded back from the
    exported JSON (pycocotools): what a reviewer opens first, as the labelling tool will show it."""
    decoded = coco_masks(coco)
    panels = [(f"{f['image_id']} (score {f['score']:.2f})", overlay(weak_images[f["image_id"]](), decoded[f["file_name"]].astype(np.uint8) * 255, (255, 64, 0)))
              for f in frames[:count]]  # fmt: skip
    return image_grid([panels[i : i + 4] for i in range(0, len(panels), 4)], title="review export: most uncertain first")
