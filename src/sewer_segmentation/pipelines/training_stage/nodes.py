"""Nodes of a training stage (the baseline or a refinement round).

The stage's own pipeline (baseline_training, final_training) decides *what* to train on and from which
weights, as a ``TrainingPlan``; these nodes train it, select the weights on validation, then evaluate the
saved model once on eval beside two trivial predictors: the box mask itself and all background.
"""

from __future__ import annotations

import copy
import logging
import math

import numpy as np
import pandas as pd

from sewer_segmentation.io.imaging import binarize, by_image_id
from sewer_segmentation.modelling.box_agreement import box_agreement, selection_score
from sewer_segmentation.modelling.evaluation import best_and_worst_gallery, flatten_for_mlflow, learning_curves, score_predictors
from sewer_segmentation.modelling.inference import TrainedModel, predict_split
from sewer_segmentation.modelling.plan import TrainingPlan
from sewer_segmentation.modelling.round_guard import decide, selection_standard_error
from sewer_segmentation.params import InferenceParams, ModelSelectionParams
from sewer_segmentation.stats import paired_standard_error

logger = logging.getLogger(__name__)

#: Below this many held-out frames the box agreement is flagged as noisy (as refinement flags few images).
FEW_HOLDOUT_FRAMES = 5


def train_stage_model(plan: TrainingPlan, seed: int, selection: ModelSelectionParams, inference: InferenceParams) -> tuple[TrainedModel, dict]:
    """Train ``plan``; returns the model (best validated weights) and its training history.

    The trained model is scored on the weak_holdout frames' boxes, and stages are compared by
    ``selection.signal`` (``modelling/box_agreement.py``): the validation metric, the box agreement, or
    their mean. A plan that fine-tunes (``plan.starts_from``) hands on its trained weights or its starting
    ones as the round guard decides (``plan.guard``, ``modelling/round_guard.py``), and says so loudly.
    """
    from sewer_segmentation.modelling.training import train_model  # noqa: PLC0415 - Lightning, only when a stage trains

    signal = selection.signal
    # The rule `better` by validation alone is decided during training (BestWeights: the start is the first
    # candidate); otherwise training keeps its best validated weights and the stage compares them below.
    in_training = plan.guard.rule == "better" and signal == "validation"
    trained = train_model(
        plan.train, plan.val, plan.model_config, plan.training, plan.image_size, seed, stage=plan.stage,
        initial_state=plan.initial_state, sample_weights=plan.sample_weights,
        min_improvement=plan.guard.min_improvement if in_training else -math.inf,
    )  # fmt: skip
    trained.metadata.update(plan.metadata)
    trained.metadata["weak_holdout"] = holdout_agreement(trained, plan, inference)
    trained.metadata["selection_signal"] = signal
    trained.metadata["selection_score"] = selection_score(signal, trained.metadata.get("best_validation_score"),
                                                          trained.metadata["weak_holdout"]["box_agreement"])  # fmt: skip
    if plan.previous_model is not None and not in_training:
        apply_round_guard(trained, plan, signal, inference)
    trained.metadata.update(box_comparison(trained.metadata.get("best_validation_score"), plan.box_validation_score))
    if trained.metadata["below_boxes_on_validation"]:
        logger.warning("%s: %s", plan.stage, below_boxes_message(trained.metadata))
    _log_holdout(plan.stage, trained.metadata, signal)
    if plan.starts_from is not None:
        trained.metadata.update(improvement_record(plan.starts_from, trained.metadata))
        if not trained.metadata["improved_on_validation"] and trained.metadata.get("kept_initial_weights"):
            logger.warning("%s did not improve on %s (%s score %s vs %s): its starting weights were kept", plan.stage,
                           plan.starts_from.get("stage"), signal, _fmt(trained.metadata.get("selection_score")),
                           _fmt(trained.metadata.get("refined_from_selection_score")))  # fmt: skip
    return trained, trained.metadata["history"]


def _log_holdout(stage: str, metadata: dict, signal: str) -> None:
    agreement = metadata["weak_holdout"]
    if signal != "validation" and agreement["frames"] < FEW_HOLDOUT_FRAMES:
        logger.warning("%s: only %d weak_holdout frames: the box agreement, and so the %s score, is noisy%s", stage,
                       agreement["frames"], signal, " (validation alone decides)" if not agreement["frames"] else "")  # fmt: skip
    if agreement["frames"]:
        logger.info("%s: box agreement on %d weak_holdout frames %.3f (coverage %.3f, outside the boxes %.3f); %s score %s",
                    stage, agreement["frames"], agreement["box_agreement"], agreement["box_coverage"], agreement["outside_share"],
                    signal, _fmt(metadata["selection_score"]))  # fmt: skip


def holdout_agreement(trained: TrainedModel, plan: TrainingPlan, inference: InferenceParams | dict) -> dict:
    """Box agreement of ``trained`` on the plan's weak_holdout frames, predicted as eval is."""
    if not plan.holdout_images:
        return box_agreement({}, {}, reach=plan.box_reach)
    probabilities = predict_split(trained, plan.holdout_images, inference)
    return box_agreement(probabilities, plan.holdout_boxes, reach=plan.box_reach)


def _saved_agreement(plan: TrainingPlan) -> dict | None:
    """The box agreement the starting model was saved with, per frame, when it was measured on as many
    frames as the holdout holds now (the split fingerprint already guarantees the same splits): no second
    prediction."""
    saved = (plan.starts_from or {}).get("weak_holdout")
    if not saved or saved.get("frames") != len(plan.holdout_images) or "per_frame" not in saved:
        return None
    return saved if math.isclose(saved.get("reach", 1.0), plan.box_reach) else None  # counted up to another reach: score it again


def _start_scores(trained: TrainedModel, plan: TrainingPlan, inference: InferenceParams | dict) -> tuple[float | None, dict, dict]:
    """The start's validation score, its IoU per validation image and its box agreement on weak_holdout.
    A fine-tuning run scored its start before the first step; a fresh round's start (the model the stage
    before handed on) is scored here, the same way."""
    from sewer_segmentation.modelling.training import score_on_validation  # noqa: PLC0415 - Lightning, only when a stage trains

    meta = trained.metadata
    if plan.initial_state is not None or not plan.val:
        validation, per_image = meta.get("initial_validation_score"), meta.get("initial_validation_per_image") or {}
    else:
        validation, per_image = score_on_validation(plan.previous_model, plan.val, plan.training, str(meta.get("precision", "32")))
    return validation, per_image, _saved_agreement(plan) or holdout_agreement(plan.previous_model, plan, inference)


def apply_round_guard(trained: TrainedModel, plan: TrainingPlan, signal: str, inference: InferenceParams | dict) -> None:
    """The round's trained model compared with its start (``plan.previous_model``) on ``signal``: the
    start is handed on instead when ``plan.guard`` says so (``modelling/round_guard.py``). The standard
    error of the difference comes from the per-image differences on validation and the per-frame ones on
    weak_holdout."""
    meta = trained.metadata
    start_validation, start_per_image, start_agreement = _start_scores(trained, plan, inference)
    start_score = selection_score(signal, start_validation, start_agreement["box_agreement"])
    noise = selection_standard_error(
        signal,
        paired_standard_error(meta.get("validation_per_image") or {}, start_per_image),
        paired_standard_error(meta["weak_holdout"].get("per_frame") or {}, start_agreement.get("per_frame") or {}),
    )
    decision = decide(plan.guard, meta["selection_score"], start_score, noise)
    meta.update(start_selection_score=start_score, **decision.as_record())
    if decision.keep_trained:
        if decision.difference is not None and decision.difference < 0:
            logger.warning("%s: the trained weights score BELOW their start (%s %s vs %s), %s: they are handed on, and flagged in rounds.md",
                           plan.stage, signal, _fmt(meta["selection_score"]), _fmt(start_score), decision.reason)  # fmt: skip
        return
    logger.warning("%s: the trained weights (%s %s) are %s (start %s): the starting weights are handed on",
                   plan.stage, signal, _fmt(meta["selection_score"]), decision.reason, _fmt(start_score))  # fmt: skip
    start = plan.previous_model
    trained.model, trained.model_config, trained.image_size = copy.deepcopy(start.model), dict(start.model_config), dict(start.image_size)
    meta.update(kept_initial_weights=True, best_validation_score=start_validation, best_step=0, weak_holdout=start_agreement,
                selection_score=start_score, validation_per_image=start_per_image)  # fmt: skip


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
    """Where a fine-tuned model came from and whether it beat it on the selection signal (never on eval).
    When the stage compared them itself (the round guard after training) the start's score is the one
    this stage measured for it; when training did (rule ``better`` by validation), the validation score
    it was saved with. A start handed on again never counts as improved."""
    if "start_selection_score" in trained:  # compared by this stage, after training
        previous, score = trained["start_selection_score"], trained.get("selection_score")
    else:  # by validation, as training's guard compared them
        previous, score = start.get("best_validation_score"), trained.get("best_validation_score")
    improved = not trained.get("kept_initial_weights") and score is not None and (previous is None or score > previous)
    return {
        "refined_from": start.get("stage"),
        "refined_from_version": start.get("version"),
        "refined_from_validation_score": start.get("best_validation_score"),
        "refined_from_selection_score": previous,
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
                 "improved_on_validation", "selection_signal", "selection_score", "weak_holdout", "start_selection_score", "guard_difference",
                 "guard_standard_error", "guard_reason")  # fmt: skip
    report = {
        "stage": stage,
        **{("model_version" if key == "version" else key): trained.metadata.get(key) for key in described},
        "kept_initial_weights": trained.metadata.get("kept_initial_weights", False),
        "eval_images": len(model_masks),
        "threshold": 0.5,
        "metrics": summary,
        # per eval image, so that two stages' eval IoUs can be compared with the noise of these images
        "eval_iou_per_image": {str(i): round(float(v), 5) for i, v in zip(per_image["image_id"], per_image["model.polygons.iou"], strict=True)},
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
