"""Nodes of the baseline_training pipeline: what the baseline trains on.

A fresh model trained on the hand-labelled baseline_train split, its weights selected on baseline_val.
With ``baseline_training.joint.enabled`` it trains on the weak pool's boxes too, from the start (the
box losses of ``modelling/box_losses.py``), instead of waiting for refinement rounds. Training,
evaluation on eval and the figures are the shared ``training_stage`` pipeline's.
"""

from __future__ import annotations

import logging

import pandas as pd

from sewer_segmentation.data.boxes import frame_boxes
from sewer_segmentation.data.samples import downscale_warning, frame_size, load_box_samples, load_samples
from sewer_segmentation.data.splits import (
    BASELINE_TRAIN,
    BASELINE_VAL,
    EVAL,
    WEAK,
    WEAK_HOLDOUT,
    check_no_held_out_images,
    check_splits_agree,
    split_fingerprint,
)
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.modelling.plan import TrainingPlan, box_validation_score, labelled_sampling_weights, weak_holdout_scoring, with_measured_box_priors
from sewer_segmentation.params import ImageSizeParams, JointParams, ModelParams, TrainingParams

STAGE = "baseline"

logger = logging.getLogger(__name__)


def plan_baseline_training(
    split_manifest: pd.DataFrame, train_images, train_masks, val_images, val_masks, val_box_masks, eval_images, weak_images,
    holdout_images, box_lists: pd.DataFrame, model: ModelParams, image_size: ImageSizeParams, training: TrainingParams, joint: JointParams,
) -> TrainingPlan:  # fmt: skip
    """The baseline's training set (baseline_train, plus the weak pool's boxes when ``joint.enabled``)
    and validation set (baseline_val), decoded once, and the box masks' own validation score. The split
    folders are checked against the manifest first (no eval image can be trained on)."""
    check_splits_agree(split_manifest, {f"{BASELINE_TRAIN}/images": train_images, f"{BASELINE_TRAIN}/masks": train_masks,
                                        f"{BASELINE_VAL}/images": val_images, f"{BASELINE_VAL}/masks": val_masks,
                                        f"{BASELINE_VAL}/box_masks": val_box_masks, EVAL: eval_images, WEAK: weak_images,
                                        WEAK_HOLDOUT: holdout_images})  # fmt: skip
    size = frame_size(image_size)
    height, width = size.resize  # (None, None) in native mode: frames keep their size
    labelled_frames = split_manifest[split_manifest.split.isin([BASELINE_TRAIN, BASELINE_VAL])]
    warning = downscale_warning(labelled_frames.height.astype(int), labelled_frames.width.astype(int), size)
    if warning:
        logger.warning(warning)
    labelled = load_samples(train_images, train_masks, height, width, description="baseline_train")
    weak, sample_weights, training_dict = [], None, training.as_dict()
    if joint.enabled:
        if not weak_images:
            raise BadInputError("baseline_training.joint.enabled needs box-only frames, and the weak pool is empty")
        weak = load_box_samples(weak_images, frame_boxes(box_lists, split_manifest, weak_images), height, width, description="weak boxes")
        sample_weights = labelled_sampling_weights(len(weak), len(labelled), joint.labelled_share)
        labelled_boxes = frame_boxes(box_lists, split_manifest, [s.image_id for s in labelled])
        training_dict = with_measured_box_priors(training_dict, labelled, labelled_boxes, STAGE)
    val = load_samples(val_images, val_masks, height, width, description="baseline_val")
    check_no_held_out_images(split_manifest, [s.image_id for s in weak + labelled + val], "the baseline's training and validation sets")
    return TrainingPlan(
        stage=STAGE,
        train=weak + labelled,
        val=val,
        box_validation_score=box_validation_score(val, val_box_masks, training.save_by_metric),
        model_config=model.as_dict(),
        training=training_dict,
        image_size=image_size.as_dict(),
        sample_weights=sample_weights,
        **weak_holdout_scoring(holdout_images, box_lists, split_manifest, labelled, training_dict),
        metadata={"split_fingerprint": split_fingerprint(split_manifest), "joint": joint.enabled},
    )
