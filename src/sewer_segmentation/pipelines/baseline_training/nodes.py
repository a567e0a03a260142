"""Nodes of the baseline_training pipeline (also reused by final_training).

Train on the hand-labelled baseline_train split, select the checkpoint on baseline_val, then evaluate
the saved model once on eval beside two trivial predictors: the box mask itself and all background.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from sewer_segmentation.data import check_image_size, load_samples
from sewer_segmentation.evaluation import best_and_worst_gallery, flatten_for_mlflow, learning_curves, score_predictors
from sewer_segmentation.imaging import binarize, by_image_id, to_uint8
from sewer_segmentation.splits import BASELINE_TRAIN, BASELINE_VAL, EVAL, check_splits_agree, split_fingerprint
from sewer_segmentation.training import TrainedModel, predict_probabilities, train_model

logger = logging.getLogger(__name__)


def train_baseline_model(
    split_manifest: pd.DataFrame, train_images, train_masks, val_images, val_masks, eval_images,
    model: dict, image_size: dict, training: dict, seed: int,
) -> tuple[TrainedModel, dict]:  # fmt: skip
    """A fresh model trained on hand-labelled masks; returns the model and its training history.
    The split folders are checked against the manifest first (no eval image can be trained on)."""
    check_splits_agree(split_manifest, {f"{BASELINE_TRAIN}/images": train_images, f"{BASELINE_TRAIN}/masks": train_masks,
                                        f"{BASELINE_VAL}/images": val_images, f"{BASELINE_VAL}/masks": val_masks, EVAL: eval_images})  # fmt: skip
    height, width = check_image_size(image_size["height"], image_size["width"])
    train = load_samples(train_images, train_masks, height, width, description="baseline_train")
    val = load_samples(val_images, val_masks, height, width, description="baseline_val")
    trained = train_model(train, val, model, training, image_size, seed, stage="baseline")
    trained.metadata["split_fingerprint"] = split_fingerprint(split_manifest)
    return trained, trained.metadata["history"]


def predict_images(trained: TrainedModel, images, inference: dict) -> dict[str, np.ndarray]:
    """Probability maps (uint8, 0..255) for every image of a split, at the image's own size."""
    ids = sorted(images)
    probabilities = predict_probabilities(
        trained.model,
        [images[i]() for i in ids],
        trained.model_config,
        trained.image_size,
        batch_size=int(inference["batch_size"]),
        precision=inference.get("precision", "auto"),
        flip_tta=bool(inference.get("flip_tta", False)),
    )
    return {i: to_uint8(p) for i, p in zip(ids, probabilities, strict=True)}


def evaluate_predictions(
    eval_probabilities: dict, eval_masks, eval_box_masks, ground_truth, trained: TrainedModel, stage: str
) -> tuple[dict, pd.DataFrame, dict]:
    """Eval metrics of the model, the box masks and an all-background prediction.

    Scored against hand-drawn polygons and, where it exists (synthetic data), against ground truth.
    Returns the report (saved as ``<stage>_metrics.json``), the per-image table and MLflow metrics.
    """
    model_masks = {i: binarize(p) for i, p in eval_probabilities.items()}
    box_masks = {i: eval_box_masks[i]() for i in eval_box_masks if i in model_masks}
    background = {i: np.zeros_like(m) for i, m in model_masks.items()}
    truth = {i: load for i, load in by_image_id(ground_truth).items() if i in model_masks}
    summary, per_image = score_predictors(
        {"model": model_masks, "box_mask": box_masks, "all_background": background},
        {"polygons": eval_masks, "ground_truth": truth},
    )
    report = {
        "stage": stage,
        "model_version": trained.metadata.get("version"),
        "selected_by": trained.metadata.get("selected_by"),
        "best_validation_score": trained.metadata.get("best_validation_score"),
        "kept_initial_weights": trained.metadata.get("kept_initial_weights", False),
        "refined_from": trained.metadata.get("refined_from"),
        "improved_on_validation": trained.metadata.get("improved_on_validation"),
        "eval_images": len(model_masks),
        "threshold": 0.5,
        "metrics": summary,
    }
    model_iou = summary["model"]["polygons"]["mean_iou"]
    box_iou = summary["box_mask"]["polygons"]["mean_iou"]
    logger.info("%s eval mean IoU %.3f (box masks %.3f, all background %.3f)", stage, model_iou, box_iou,
                summary["all_background"]["polygons"]["mean_iou"])  # fmt: skip
    return report, per_image, flatten_for_mlflow(summary)


def plot_learning_curves(history: dict, stage: str) -> np.ndarray:
    return learning_curves(history, stage)


def plot_prediction_gallery(eval_images, eval_masks, eval_probabilities: dict, per_image: pd.DataFrame, n_cases: int, stage: str):
    """Best and worst eval images by IoU against the hand-drawn masks."""
    scores = per_image.set_index("image_id")["model.polygons.iou"]
    predictions = {i: binarize(p) for i, p in eval_probabilities.items()}
    return best_and_worst_gallery(eval_images, eval_masks, predictions, scores, int(n_cases), f"{stage}: best and worst eval images")
