"""Wiring of baseline_training (namespace ``baseline_training`` in kedro viz)."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    evaluate_predictions,
    plot_learning_curves,
    plot_prediction_gallery,
    predict_images,
    train_baseline_model,
)


def evaluation_nodes(prefix: str, report: str, stage: str) -> list[Node]:
    """Predict the eval split with ``<prefix>_model``, score it and draw the figures.

    Shared by baseline_training and final_training; ``report`` names the metrics output and ``stage``
    the parameter holding the stage name (``baseline``, ``round_2``).
    """
    model, per_image = f"{prefix}_model", f"{prefix}_eval_per_image"
    return [
        Node(predict_images, [model, "eval_images", "params:inference"], "eval_probabilities", name="predict_eval_images"),
        Node(evaluate_predictions, ["eval_probabilities", "eval_masks", "eval_box_masks", "raw_ground_truth", model, stage],
             [report, per_image, f"{prefix}_mlflow_metrics"], name="evaluate_on_eval"),  # fmt: skip
        Node(plot_learning_curves, [f"{prefix}_training_history", stage], f"{prefix}_learning_curves", name="plot_learning_curves"),
        Node(plot_prediction_gallery, ["eval_images", "eval_masks", "eval_probabilities", per_image, "params:inference.gallery_cases", stage],
             f"{prefix}_prediction_gallery", name="plot_prediction_gallery"),  # fmt: skip
    ]


def create_pipeline(**kwargs) -> Pipeline:
    nodes = [
        Node(
            train_baseline_model,
            inputs=["split_manifest", "baseline_train_images", "baseline_train_masks", "baseline_val_images", "baseline_val_masks",
                    "eval_images", "params:model", "params:image_size", "params:baseline_training.training", "params:seed"],  # fmt: skip
            outputs=["baseline_model", "baseline_training_history"],
            name="train_baseline_model",
        ),
        *evaluation_nodes("baseline", "baseline_metrics", "params:baseline_training.stage"),
    ]
    return Pipeline(
        nodes,
        namespace="baseline_training",
        inputs={"split_manifest", "baseline_train_images", "baseline_train_masks", "baseline_val_images", "baseline_val_masks",
                "eval_images", "eval_masks", "eval_box_masks", "raw_ground_truth"},  # fmt: skip
        outputs={"baseline_model", "baseline_training_history", "baseline_metrics", "baseline_eval_per_image",
                 "baseline_mlflow_metrics", "baseline_learning_curves", "baseline_prediction_gallery"},  # fmt: skip
        parameters={"params:model", "params:image_size", "params:baseline_training.training", "params:seed",
                    "params:inference", "params:inference.gallery_cases", "params:baseline_training.stage"},  # fmt: skip
    )
