"""Nodes of the baseline_training pipeline: what the baseline trains on.

A fresh model trained on the hand-labelled baseline_train split, its weights selected on baseline_val.
Training, evaluation on eval and the figures are the shared ``training_stage`` pipeline's.
"""

from __future__ import annotations

import pandas as pd

from sewer_segmentation.data.samples import check_image_size, load_samples
from sewer_segmentation.data.splits import BASELINE_TRAIN, BASELINE_VAL, EVAL, check_splits_agree, split_fingerprint
from sewer_segmentation.modelling.plan import TrainingPlan

STAGE = "baseline"


def plan_baseline_training(
    split_manifest: pd.DataFrame, train_images, train_masks, val_images, val_masks, eval_images,
    model: dict, image_size: dict, training: dict,
) -> TrainingPlan:  # fmt: skip
    """The baseline's training set (baseline_train) and validation set (baseline_val), decoded once.
    The split folders are checked against the manifest first (no eval image can be trained on)."""
    check_splits_agree(split_manifest, {f"{BASELINE_TRAIN}/images": train_images, f"{BASELINE_TRAIN}/masks": train_masks,
                                        f"{BASELINE_VAL}/images": val_images, f"{BASELINE_VAL}/masks": val_masks, EVAL: eval_images})  # fmt: skip
    height, width = check_image_size(image_size["height"], image_size["width"])
    return TrainingPlan(
        stage=STAGE,
        train=load_samples(train_images, train_masks, height, width, description="baseline_train"),
        val=load_samples(val_images, val_masks, height, width, description="baseline_val"),
        model_config=model,
        training=training,
        image_size=image_size,
        metadata={"split_fingerprint": split_fingerprint(split_manifest)},
    )
