"""Wiring of baseline_training (namespace ``baseline`` in kedro viz): plan, then the shared training stage."""

from kedro.pipeline import Node, Pipeline

from sewer_segmentation.pipelines import training_stage

from .nodes import STAGE, plan_baseline_training

SPLITS = {"split_manifest", "baseline_train_images", "baseline_train_masks", "baseline_val_images", "baseline_val_masks", "eval_images"}


def create_pipeline(**kwargs) -> Pipeline:
    plan = Node(
        plan_baseline_training,
        inputs=["split_manifest", "baseline_train_images", "baseline_train_masks", "baseline_val_images", "baseline_val_masks",
                "eval_images", "params:model", "params:image_size", "params:baseline_training.training"],  # fmt: skip
        outputs="training_plan",
        name="plan_training",
    )
    planning = Pipeline([plan], namespace=STAGE, inputs=SPLITS,
                        parameters={"params:model", "params:image_size", "params:baseline_training.training"})  # fmt: skip
    return planning + training_stage.pipeline.create_pipeline(STAGE)
