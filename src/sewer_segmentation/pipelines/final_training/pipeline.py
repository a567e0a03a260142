"""Wiring of final_training (namespace ``final_training`` in kedro viz)."""

from kedro.pipeline import Node, Pipeline

from sewer_segmentation.pipelines.baseline_training.pipeline import evaluation_nodes

from .nodes import assemble_round_metrics, build_rounds_report, train_final_model, train_oracle

TRAINING = ["params:model", "params:image_size", "params:baseline_training.training", "params:final_training", "params:seed"]


def create_pipeline(**kwargs) -> Pipeline:
    nodes = [
        Node(
            train_final_model,
            inputs=["split_manifest", "refined_masks", "weak_images", "baseline_train_images", "baseline_train_masks",
                    "baseline_val_images", "baseline_val_masks", "eval_images", "previous_model", *TRAINING, "params:round"],  # fmt: skip
            outputs=["round_model", "round_training_history"],
            name="train_final_model",
        ),
        *evaluation_nodes("round", "round_eval_report", "params:final_training.stage"),
        Node(
            train_oracle,
            inputs=["weak_images", "baseline_train_images", "baseline_val_images", "baseline_val_masks",
                    "eval_images", "eval_masks", "raw_ground_truth", "previous_model", *TRAINING, "params:inference"],  # fmt: skip
            outputs="oracle_result",
            name="train_oracle",
        ),
        Node(
            assemble_round_metrics,
            inputs=["round_eval_report", "refinement_quality", "refinement_failures", "oracle_result", "params:round"],
            outputs="round_metrics",
            name="assemble_round_metrics",
        ),
        Node(build_rounds_report, ["round_metrics", "baseline_metrics", "all_stage_metrics"], ["rounds_report_md", "rounds_report_png"],
             name="build_rounds_report"),  # fmt: skip
    ]
    return Pipeline(
        nodes,
        namespace="final_training",
        inputs={"split_manifest", "refined_masks", "weak_images", "baseline_train_images", "baseline_train_masks", "baseline_val_images",
                "baseline_val_masks", "previous_model", "eval_images", "eval_masks", "eval_box_masks", "raw_ground_truth",
                "refinement_quality", "refinement_failures", "all_stage_metrics", "baseline_metrics"},  # fmt: skip
        outputs={"round_model", "round_training_history", "round_eval_per_image", "round_mlflow_metrics", "round_metrics",
                 "rounds_report_md", "rounds_report_png", "round_learning_curves", "round_prediction_gallery"},  # fmt: skip
        parameters={*TRAINING, "params:round", "params:inference", "params:inference.gallery_cases", "params:final_training.stage"},
    )
