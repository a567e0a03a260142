"""Wiring of baseline_training (namespace ``baseline`` in kedro viz): plan, then the shared training stage."""

from kedro.pipeline import Node, Pipeline

from sewer_segmentation.pipelines import training_stage

from .nodes import STAGE, plan_baseline_training

SPLITS = {"split_manifest", "baseline_train_images", "baseline_train_masks", "baseline_val_images", "baseline_val_masks",
          "baseline_val_box_masks", "eval_images",
          "weak_images", "weak_holdout_images", "box_lists"}  # fmt: skip
PARAMETERS = {"params:model", "params:image_size", "params:baseline_training.training", "params:baseline_training.joint"}


def create_pipeline(**kwargs) -> Pipeline:
    plan = Node(
        plan_baseline_training,
        inputs=["split_manifest", "baseline_train_images", "baseline_train_masks", "baseline_val_images", "baseline_val_masks",
                "baseline_val_box_masks", "eval_images", "weak_images", "weak_holdout_images", "box_lists", "params:model", "params:image_size",
                "params:baseline_training.training", "params:baseline_training.joint"],  # fmt: skip
        outputs="training_plan",
        name="plan_training",
    )
    planning = Pipeline([plan], namespace=STAGE, inputs=SPLITS, parameters=PARAMETERS)
    return planning + training_stage.pipeline.create_pipeline(STAGE)
