"""Nodes of a training stage (the baseline or a refinement round).

The stage's own pipeline (baseline_training, final_training) decides *what* to train on and from which
weights, as a ``TrainingPlan``; these nodes train it, select the weights on validation, then evaluate the
saved model once on eval beside two trivial predictors: the box mask itself and all background.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from sewer_segmentation.io.imaging import binarize, by_image_id
from sewer_segmentation.modelling.evaluation import best_and_worst_gallery, flatten_for_mlflow, learning_curves, score_predictors
from sewer_segmentation.modelling.inference import TrainedModel
from sewer_segmentation.modelling.plan import TrainingPlan

logger = logging.getLogger(__name__)


def train_stage_model(plan: TrainingPlan, seed: int) -> tuple[TrainedModel, dict]:
    """Train ``plan``; returns the model (best validated weights) and its training history.

    A plan that fine-tunes (``plan.starts_from``) records whether the stage beat its starting model on
    validation, and says so loudly when it did not.
    """
    from sewer_segmentation.modelling.training import train_model  # noqa: PLC0415 - Lightning, only when a stage trains

    trained = train_model(
        plan.train, plan.val, plan.model_config, plan.training, plan.image_size, seed, stage=plan.stage,
        initial_state=plan.initial_state, sample_weights=plan.sample_weights, min_improvement=plan.min_improvement,
    )  # fmt: skip
    trained.metadata.update(plan.metadata)
    trained.metadata.update(box_comparison(trained.metadata.get("best_validation_score"), plan.box_validation_score))
    if trained.metadata["below_boxes_on_validation"]:
        logger.warning("%s: %s", plan.stage, below_boxes_message(trained.metadata))
    if plan.starts_from is not None:
        trained.metadata.update(improvement_record(plan.starts_from, trained.metadata))
        if not trained.metadata["improved_on_validation"]:
            kept = trained.metadata.get("kept_initial_weights")
            logger.warning("%s did not improve on %s on validation (%s %s vs %s): %s", plan.stage, plan.starts_from.get("stage"),
                           trained.metadata["selected_by"], _fmt(trained.metadata.get("best_validation_score")),
                           _fmt(plan.starts_from.get("best_validation_score")), "its starting weights were kept" if kept else "see rounds.md")  # fmt: skip
    return trained, trained.metadata["history"]


def box_comparison(score: float | None, box_score: float | None) -> dict:
    """The box masks' validation score beside the model's, and whether the model is below it."""
    below = score is not None and box_score is not None and score < box_score
    return {"box_validation_score": box_score, "below_boxes_on_validation": bool(below)}


def below_boxes_message(record: dict) -> str:
    """What a model below its box masks on validation means, and what to try (log, rounds.md, run summary)."""
    return (f"the model scores BELOW THE BOX MASKS on validation ({record.get('selected_by', 'validation')} "
            f"{_fmt(record.get('best_validation_score'))} vs {_fmt(record.get('box_validation_score'))}): it is worse than the boxes it was "
            "given. Try more steps (baseline_training.training.steps), a larger image_size, box supervision "
            "(a round with final_training.weak_targets both or boxes; baseline_training.joint.enabled for the baseline) "
            "or more hand-labelled images")  # fmt: skip


def improvement_record(start: dict, trained: dict) -> dict:
    """Where a fine-tuned model came from and whether it beat it on validation (never on eval)."""
    previous, score = start.get("best_validation_score"), trained.get("best_validation_score")
    improved = not trained.get("kept_initial_weights") and score is not None and (previous is None or score > previous)
    return {
        "refined_from": start.get("stage"),
        "refined_from_version": start.get("version"),
        "refined_from_validation_score": previous,
        "improved_on_validation": bool(improved),
    }


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def evaluate_predictions(
    eval_probabilities: dict, eval_masks, eval_box_masks, ground_truth, trained: TrainedModel
) -> tuple[dict, pd.DataFrame, dict]:
    """Eval metrics of the model, the box masks and an all-background prediction.

    Scored against hand-drawn polygons and, where it exists (synthetic data), against ground truth.
    Returns the report (the baseline's ``baseline_metrics.json``; part of a round's ``round_<r>_metrics.json``),
    the per-image table and MLflow metrics.
    """
    stage = trained.metadata.get("stage")
    model_masks = {i: binarize(p) for i, p in eval_probabilities.items()}
    box_masks = {i: eval_box_masks[i]() for i in eval_box_masks if i in model_masks}
    background = {i: np.zeros_like(m) for i, m in model_masks.items()}
    truth = {i: load for i, load in by_image_id(ground_truth).items() if i in model_masks}
    summary, per_image = score_predictors(
        {"model": model_masks, "box_mask": box_masks, "all_background": background},
        {"polygons": eval_masks, "ground_truth": truth},
    )
    described = ("version", "selected_by", "best_validation_score", "box_validation_score", "below_boxes_on_validation", "refined_from",
                 "improved_on_validation")  # fmt: skip
    report = {
        "stage": stage,
        **{("model_version" if key == "version" else key): trained.metadata.get(key) for key in described},
        "kept_initial_weights": trained.metadata.get("kept_initial_weights", False),
        "eval_images": len(model_masks),
        "threshold": 0.5,
        "metrics": summary,
    }
    model_iou = summary["model"]["polygons"]["mean_iou"]
    box_iou = summary["box_mask"]["polygons"]["mean_iou"]
    logger.info("%s eval mean IoU %.3f (box masks %.3f, all background %.3f)", stage, model_iou, box_iou,
                summary["all_background"]["polygons"]["mean_iou"])  # fmt: skip
    return report, per_image, flatten_for_mlflow(summary)


def plot_learning_curves(history: dict, trained: TrainedModel) -> np.ndarray:
    return learning_curves(history, trained.metadata.get("stage", ""))


def plot_prediction_gallery(eval_images, eval_masks, eval_probabilities: dict, per_image: pd.DataFrame, n_cases: int, trained: TrainedModel):
    """Best and worst eval images by IoU against the hand-drawn masks."""
    scores = per_image.set_index("image_id")["model.polygons.iou"]
    predictions = {i: binarize(p) for i, p in eval_probabilities.items()}
    title = f"{trained.metadata.get('stage')}: best and worst eval images"
    return best_and_worst_gallery(eval_images, eval_masks, predictions, scores, int(n_cases), title)
