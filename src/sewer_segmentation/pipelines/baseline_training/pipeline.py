"""Wiring of baseline_training (namespace ``baseline_training`` in kedro viz)."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    evaluate_predictions,
    plot_learning_curves,
    plot_prediction_gallery,
    predict_eval_images,
    train_baseline_model,
)


def create_pipeline(**kwargs) -> Pipeline:
    nodes = [
        Node(
            train_baseline_model,
            inputs=["baseline_train_images", "baseline_train_masks", "baseline_val_images", "baseline_val_masks",
                    "params:model", "params:image_size", "params:training", "params:seed"],  # fmt: skip
            outputs=["baseline_model", "baseline_training_history"],
            name="train_baseline_model",
        ),
        Node(predict_eval_images, ["baseline_model", "eval_images", "params:inference"], "eval_probabilities",
             name="predict_eval_images"),  # fmt: skip
        Node(
            evaluate_predictions,
            inputs=["eval_probabilities", "eval_masks", "eval_box_masks", "raw_ground_truth", "baseline_model", "params:stage"],
            outputs=["baseline_metrics", "baseline_eval_per_image", "baseline_mlflow_metrics"],
            name="evaluate_on_eval",
        ),
        Node(plot_learning_curves, ["baseline_training_history", "params:stage"], "baseline_learning_curves",
             name="plot_learning_curves"),  # fmt: skip
        Node(
            plot_prediction_gallery,
            inputs=["eval_images", "eval_masks", "eval_probabilities", "baseline_eval_per_image",
                    "params:inference.gallery_cases", "params:stage"],  # fmt: skip
            outputs="baseline_prediction_gallery",
            name="plot_prediction_gallery",
        ),
    ]
    return Pipeline(
        nodes,
        namespace="baseline_training",
        inputs={"baseline_train_images", "baseline_train_masks", "baseline_val_images", "baseline_val_masks",
                "eval_images", "eval_masks", "eval_box_masks", "raw_ground_truth"},  # fmt: skip
        outputs={"baseline_model", "baseline_training_history", "baseline_metrics", "baseline_eval_per_image",
                 "baseline_mlflow_metrics", "baseline_learning_curves", "baseline_prediction_gallery"},  # fmt: skip
        parameters={"params:model": "params:model", "params:image_size": "params:image_size",
                    "params:training": "params:baseline_training.training",
                    "params:seed": "params:seed", "params:inference": "params:inference",
                    "params:inference.gallery_cases": "params:inference.gallery_cases",
                    "params:stage": "params:baseline_training.stage"},  # fmt: skip
    )
