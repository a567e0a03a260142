"""Nodes of the final_training pipeline: a model trained on refined weak masks + hand-labelled masks.

By default a round fine-tunes the model the stage before handed on (the one that refined its masks):
the starting weights are scored first, and the round guard (``modelling/round_guard.py``) decides
whether the trained weights or the start are handed on. Training and evaluation on the same eval
split as the baseline are the shared ``training_stage`` pipeline's; this module plans the round's
training, runs the optional oracle and writes the round's report.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from sewer_segmentation.data.boxes import frame_boxes
from sewer_segmentation.data.samples import frame_size, load_box_samples, load_samples
from sewer_segmentation.data.splits import (
    BASELINE_TRAIN,
    BASELINE_VAL,
    EVAL,
    WEAK,
    WEAK_HOLDOUT,
    check_model_matches_splits,
    check_no_held_out_images,
    check_splits_agree,
    split_fingerprint,
)
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.imaging import binarize, by_image_id
from sewer_segmentation.modelling.evaluation import frames_that_differ, score_predictors, stages_gallery
from sewer_segmentation.modelling.inference import TrainedModel, predict_frames, predict_split
from sewer_segmentation.modelling.plan import TrainingPlan, box_validation_score, labelled_sampling_weights, weak_holdout_scoring, with_measured_box_priors
from sewer_segmentation.params import FinalTrainingParams, ImageSizeParams, InferenceParams, ModelParams, TrainingParams
from sewer_segmentation.refinement.masks import RefinedMasks
from sewer_segmentation.reporting.reports import rounds_chart, rounds_markdown, summarize_rounds
from sewer_segmentation.stage import Stage

logger = logging.getLogger(__name__)


def repeated_round_warning(stage: Stage, previous: dict) -> str | None:
    """Why this round would repeat the one before it, or None. A round whose guard handed on its start
    leaves the same weights; the next round then refines the same masks with them and trains (from them, or
    fresh) with the same seed and settings: the same training, refused again (seen on bench/quality.py crack)."""
    before = previous.get("stage")
    if not previous.get("kept_initial_weights"):  # only a round the guard refused hands on its start
        return None
    return (f"{stage}: {before} handed on the weights it started from (its trained weights were refused), so {stage} refines "
            f"the same masks with the same model and trains with the same seed and settings: it repeats {before}. Change "
            "something first (final_training.weak_targets, mask_refinement.method, final_training.round_guard, or more "
            "hand-labelled images)")


def _round_model_config(model: ModelParams, previous_model: TrainedModel, init_from: str) -> dict:
    """Fine-tuning continues the previous model as it was built (its architecture, encoder and freezing,
    even if ``params:model`` changed since), with no pretrained weights to fetch: they are overwritten."""
    if init_from != "best":
        return model.as_dict()
    return {**previous_model.model_config, "encoder_weights": None}


def plan_round_training(
    split_manifest: pd.DataFrame, refined: RefinedMasks, weak_images, train_images, train_masks, val_images, val_masks, val_box_masks,
    eval_images, holdout_images, box_lists: pd.DataFrame, previous_model: TrainedModel, model: ModelParams, image_size: ImageSizeParams,
    training: TrainingParams, final: FinalTrainingParams, round_number: int,
) -> TrainingPlan:  # fmt: skip
    """The weak pool (its refined masks with their weight maps, its boxes through the box losses, or both:
    ``final.weak_targets``) plus the hand-labelled baseline_train, starting from the best model so far
    (or fresh). The split folders and the refined masks are checked against the manifest first: no eval
    image (and no image of another split) can reach the training set."""
    stage = Stage.round(round_number)
    check_splits_agree(split_manifest, {f"{BASELINE_TRAIN}/images": train_images, f"{BASELINE_TRAIN}/masks": train_masks,
                                        f"{BASELINE_VAL}/images": val_images, f"{BASELINE_VAL}/masks": val_masks,
                                        f"{BASELINE_VAL}/box_masks": val_box_masks, EVAL: eval_images, WEAK: weak_images,
                                        WEAK_HOLDOUT: holdout_images})  # fmt: skip
    check_model_matches_splits(split_manifest, previous_model.metadata, "the model this round starts from")
    check_no_held_out_images(split_manifest, refined.masks, "the refined masks of this round")
    stray = sorted(set(refined.masks) - set(weak_images))
    if stray:
        raise BadInputError(f"the refined masks hold {len(stray)} images that are not in the weak pool ({', '.join(stray[:5])}): "
                            "they were made before the last data_engineering run; "
                            f"run `{stage.command()}` again")  # fmt: skip
    repeat = repeated_round_warning(stage, previous_model.metadata)
    if repeat:
        logger.warning(repeat)
    height, width = frame_size(image_size).resize  # (None, None) in native mode: frames keep their size
    targets = final.weak_targets
    weak = _weak_samples(targets, weak_images, refined, box_lists, split_manifest, (height, width))
    labelled = load_samples(train_images, train_masks, height, width, description="baseline_train")
    val = load_samples(val_images, val_masks, height, width, description="baseline_val")
    round_training = final.training(training)
    training_dict = _with_weak_box_priors(round_training.as_dict(), targets, labelled, box_lists, split_manifest, stage.name)
    check_no_held_out_images(split_manifest, [s.image_id for s in weak + labelled + val], f"{stage}'s training and validation sets")
    return TrainingPlan(
        stage=stage.name,
        train=weak + labelled,
        val=val,
        box_validation_score=box_validation_score(val, val_box_masks, round_training.save_by_metric),
        model_config=_round_model_config(model, previous_model, final.init_from),
        training=training_dict,
        image_size=image_size.as_dict(),
        initial_state=previous_model.model.state_dict() if final.init_from == "best" else None,
        sample_weights=labelled_sampling_weights(len(weak), len(labelled), final.labelled_share),
        previous_model=previous_model,
        guard=final.round_guard,
        starts_from=previous_model.metadata,
        **weak_holdout_scoring(holdout_images, box_lists, split_manifest, labelled, training_dict),
        metadata={"split_fingerprint": split_fingerprint(split_manifest), "round": stage.number, "weak_targets": targets},
    )


def _with_weak_box_priors(training: dict, targets: str, labelled: list, box_lists: pd.DataFrame, manifest: pd.DataFrame, stage: str) -> dict:
    """The box fill range and projection coverage measured on baseline_train, when the weak pool trains through the box losses."""
    if targets == "refined":
        return training
    return with_measured_box_priors(training, labelled, frame_boxes(box_lists, manifest, [s.image_id for s in labelled]), stage)


def _weak_samples(targets: str, weak_images, refined: RefinedMasks, box_lists: pd.DataFrame, split_manifest: pd.DataFrame, size: tuple) -> list:
    """The weak pool's training samples: its refined masks with their weight maps (``refined``), its boxes
    for the box losses (``boxes``), or both on the same frames (``both``)."""
    frames = {i: weak_images[i] for i in refined.masks}
    if targets == "refined":
        return load_samples(frames, refined.masks, *size, refined.weights, description="refined weak")
    masks, weights = (refined.masks, refined.weights) if targets == "both" else (None, None)
    return load_box_samples(frames, frame_boxes(box_lists, split_manifest, frames), *size, masks, weights, description="weak boxes")


def train_oracle(round_plan: TrainingPlan, weak_images, train_images, eval_images, eval_masks, ground_truth, final: FinalTrainingParams,
                 seed: int, inference: InferenceParams) -> dict:  # fmt: skip
    """Synthetic data only, off by default: the round's start, model and budget trained on the true masks
    of the same images, with no validation guard and the last step's weights; its eval IoU is the
    ceiling refinement (and box supervision) is closing in on."""
    truth = by_image_id(ground_truth)
    if not final.oracle.enabled or not truth:
        return {"enabled": False}
    height, width = frame_size(round_plan.image_size).resize
    trained_ids = {s.image_id for s in round_plan.train}

    def with_truth(images, description):
        ids = [i for i in images if i in truth and i in trained_ids]
        return load_samples({i: images[i] for i in ids}, {i: truth[i] for i in ids}, height, width, description=description)

    from sewer_segmentation.modelling.training import train_model  # noqa: PLC0415 - Lightning, only when the oracle runs

    weak, labelled = with_truth(weak_images, "oracle weak"), with_truth(train_images, "oracle labelled")
    trained = train_model(weak + labelled, round_plan.val, round_plan.model_config, round_plan.training, round_plan.image_size, seed,
                          stage="oracle", initial_state=round_plan.initial_state, keep_last=True,
                          sample_weights=labelled_sampling_weights(len(weak), len(labelled), final.labelled_share))  # fmt: skip
    predictions = {i: binarize(p) for i, p in predict_split(trained, eval_images, inference).items()}
    summary, _ = score_predictors({"oracle": predictions}, {"polygons": eval_masks})
    return {"enabled": True, "train_images": len(weak) + len(labelled), "eval": summary["oracle"]["polygons"]}


def assemble_round_metrics(eval_report: dict, refinement_quality: dict, failures, oracle: dict, round_number: int) -> dict:
    """Everything the round report needs about this round, in one plain JSON file."""
    return {
        **eval_report,
        "round": round_number,
        "refinement": refinement_quality,
        "failed_predictions": failures.to_dict(orient="records"),
        "oracle": oracle,
    }


def plot_stages_gallery(eval_images, eval_masks, baseline_per_image: pd.DataFrame, round_per_image: pd.DataFrame, stage_models: dict,
                        round_model: TrainedModel, inference: InferenceParams, n_cases: int) -> np.ndarray:  # fmt: skip
    """Every stage up to this round on the same eval frames: those this round gained most and lost most on
    against the baseline (each stage's own gallery shows its own best and worst frames, so they never line
    up). ``stage_models``: loaders of the saved stages; ``round_model``: this round's."""
    column = "model.polygons.iou"
    first, last = (table.set_index(table.image_id.astype(str))[column] for table in (baseline_per_image, round_per_image))
    frames = frames_that_differ(first, last, int(n_cases))
    chosen = {i: eval_images[i] for i in frames}
    current = str(round_model.metadata.get("stage"))
    loaders = {**stage_models, current: lambda: round_model}  # this round's model, whether or not it is saved yet
    stage_masks = {}
    for stage in sorted((s for s in loaders if Stage.parse(s) <= Stage.parse(current)), key=Stage.parse):
        trained = loaders[stage]()
        stage_masks[stage] = {p.image_id: np.where(p.probability >= 0.5, 255, 0).astype(np.uint8) for p in predict_frames(trained, chosen, inference.as_dict())}
    title = f"Every stage on the eval frames {round_model.metadata.get('stage')} changed most (gains first)"
    return stages_gallery(eval_images, eval_masks, stage_masks, frames, title)


def build_rounds_report(current_round: dict, baseline_metrics: dict, all_stage_metrics: dict) -> tuple[str, np.ndarray]:
    """``rounds.md`` and ``rounds.png`` from every stage whose metrics file exists.

    ``current_round`` and ``baseline_metrics`` are also among ``all_stage_metrics`` (files on disk);
    taking them as inputs makes the report wait until this run has written them.
    """
    stages = {key: load() if callable(load) else load for key, load in all_stage_metrics.items()
              if (stage := Stage.from_name(key)) is not None and not stage.is_baseline}  # fmt: skip
    stages["baseline"] = baseline_metrics
    stages[Stage.round(current_round["round"]).name] = current_round
    summary = summarize_rounds(stages)
    return rounds_markdown(summary), rounds_chart(summary)
