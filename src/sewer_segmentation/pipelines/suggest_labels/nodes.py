"""Nodes of suggest_labels: rank the weak pool by what a hand label would teach the newest model
(``modelling/acquisition.py``), write the list, a gallery and the review export of exactly those frames."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pandas as pd

from sewer_segmentation.data.boxes import frame_boxes
from sewer_segmentation.data.review import binarize
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.modelling.acquisition import box_disagreement, box_entropy, box_share, pooled_features, rank_frames
from sewer_segmentation.modelling.inference import TrainedModel, predict_frames
from sewer_segmentation.params import ExportReviewParams, InferenceParams, SuggestParams
from sewer_segmentation.pipelines.export_review.nodes import tool_files
from sewer_segmentation.reporting.plots import image_grid, overlay

logger = logging.getLogger(__name__)


def score_weak_pool(model: TrainedModel, weak_images, train_images, box_lists: pd.DataFrame, split_manifest: pd.DataFrame,
                    inference: InferenceParams) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """Per weak frame: its near-duplicate cluster (or group), the model's uncertainty inside its boxes, its
    mask's disagreement with them and the share of the frame its boxes cover; and the encoder's
    pooled features of the weak frames and of baseline_train (the frames already labelled)."""
    if not weak_images:
        raise BadInputError("the weak pool is empty: there is no box-only frame to suggest")
    boxes = frame_boxes(box_lists, split_manifest, list(weak_images))
    clusters = split_manifest.set_index(split_manifest.image_id.astype(str))["cluster_id"]
    rows, reach = [], (model.metadata.get("weak_holdout") or {}).get("reach", 1.0)  # the reach the model's stage was scored with
    for prediction in predict_frames(model, weak_images, inference.as_dict(), description="suggest: weak pool"):
        if prediction.error:
            logger.warning("Skipping %s: %s", prediction.image_id, prediction.error)
            continue
        probability, its_boxes = prediction.probability, boxes[prediction.image_id].boxes
        rows.append({"image_id": prediction.image_id, "cluster": str(clusters[prediction.image_id]),
                     "uncertainty": box_entropy(probability, its_boxes), "uncertain_pixels": box_entropy(probability, its_boxes, total=True),
                     "disagreement": box_disagreement(probability, its_boxes, reach=reach), "box_share": box_share(its_boxes, probability.shape)})  # fmt: skip
    size = (int(model.image_size["height"]), int(model.image_size["width"]))
    features = pooled_features(model.model, {**weak_images, **train_images}, model.model_config, size)
    scores = pd.DataFrame(rows, columns=["image_id", "cluster", "uncertainty", "uncertain_pixels", "disagreement", "box_share"])
    return scores, {"pool": features, "labelled": sorted(train_images)}


def choose_frames_to_label(scores: pd.DataFrame, features: dict, suggest: SuggestParams, seed: int) -> pd.DataFrame:
    """``next_to_label.csv``: ``suggest.budget`` frames by ``suggest.method``, one per cluster (fewer, with a
    warning, when the pool has fewer clusters)."""
    pool = features["pool"]
    labelled = np.stack([pool[i] for i in features["labelled"]]) if features["labelled"] else None
    chosen = rank_frames(scores, suggest.budget, suggest.method, pool, labelled, seed=seed, candidate_factor=suggest.candidate_factor)
    if len(chosen) < suggest.budget:
        logger.warning("Only %d near-duplicate clusters in the weak pool: %d frames suggested instead of %d",
                       scores.cluster.nunique(), len(chosen), suggest.budget)  # fmt: skip
    logger.info("Suggested %d frames to hand-label (%s): %s", len(chosen), suggest.method, ", ".join(chosen.frame.head(5)))
    return chosen


def export_suggestions(next_to_label: pd.DataFrame, model: TrainedModel, weak_images, box_lists: pd.DataFrame, split_manifest: pd.DataFrame,
                       inference: InferenceParams, export: ExportReviewParams) -> tuple:  # fmt: skip
    """The suggested frames with the model's masks as pre-annotations, in the labelling tools' formats
    (the same files as export_review), and a gallery of them with their boxes."""
    chosen = {i: weak_images[i] for i in next_to_label.frame}
    scores = dict(zip(next_to_label.frame, next_to_label.score, strict=True))
    masks = {p.image_id: binarize(p.probability, export.threshold) for p in predict_frames(model, chosen, inference.as_dict()) if not p.error}
    frames = [{"image_id": i, "file_name": f"images/{i}.png", "mask": masks[i], "score": float(scores[i])} for i in next_to_label.frame if i in masks]
    coco, cvat, yolo, data_yaml, images = tool_files(frames, weak_images, export.category)
    boxes = frame_boxes(box_lists, split_manifest, list(chosen))
    return coco, cvat, yolo, data_yaml, images, suggestions_gallery(next_to_label, weak_images, masks, boxes)


def suggestions_gallery(next_to_label: pd.DataFrame, weak_images, masks: dict, boxes: dict, count: int = 12) -> np.ndarray:
    """The first suggested frames in order: the model's mask (orange) and the frame's boxes (green), with
    the score it was ranked by (next_to_label.csv says which score and why each was chosen)."""
    panels = []
    for rank, row in enumerate(next_to_label.head(count).itertuples(), start=1):
        if row.frame not in masks:
            continue
        image = overlay(weak_images[row.frame](), masks[row.frame].astype(np.uint8) * 255, (255, 128, 0))
        for x0, y0, x1, y1 in boxes[row.frame].boxes:
            cv2.rectangle(image, (int(x0), int(y0)), (int(x1) - 1, int(y1) - 1), (0, 220, 0), 1)
        panels.append((f"{rank}. {row.frame} (score {score_text(row.score)})", image))
    return image_grid([panels[i : i + 4] for i in range(0, len(panels), 4)], title="frames to hand-label next, in order")


def score_text(score: float) -> str:
    """A ranking score as a person reads it: summed pixel entropies in whole numbers (2,204 rather than
    2.2e+03), mean scores to three significant digits."""
    return f"{score:,.0f}" if abs(score) >= 100 else f"{score:.3g}"
