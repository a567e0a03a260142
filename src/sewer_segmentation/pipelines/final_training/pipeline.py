"""Wiring of final_training (namespace ``round`` in kedro viz): plan the round's training, the shared
training stage, then the oracle and the rounds report."""

from kedro.pipeline import Node, Pipeline

from sewer_segmentation.pipelines import training_stage

from .nodes import assemble_round_metrics, build_rounds_report, plan_round_training, plot_stages_gallery, train_oracle

STAGE = "round"
SPLITS = {"split_manifest", "weak_images", "baseline_train_images", "baseline_train_masks", "baseline_val_images", "baseline_val_masks",
          "baseline_val_box_masks",
          "eval_images", "eval_masks", "raw_ground_truth", "weak_holdout_images", "box_lists"}  # fmt: skip
PARAMETERS = {"params:model", "params:image_size", "params:baseline_training.training", "params:final_training", "params:seed",
              "params:round", "params:inference", "params:inference.gallery_cases"}  # fmt: skip


def create_pipeline(**kwargs) -> Pipeline:
    nodes = [
        Node(
            plan_round_training,
            inputs=["split_manifest", "refined_masks", "weak_images", "baseline_train_images", "baseline_train_masks", "baseline_val_images",
                    "baseline_val_masks", "baseline_val_box_masks", "eval_images", "weak_holdout_images", "box_lists", "previous_model",
                    "params:model", "params:image_size", "params:baseline_training.training", "params:final_training", "params:round"],  # fmt: skip
            outputs="training_plan",
            name="plan_training",
        ),
        Node(train_oracle, ["training_plan", "weak_images", "baseline_train_images", "eval_images", "eval_masks", "raw_ground_truth",
                            "params:final_training", "params:seed", "params:inference"], "oracle_result", name="train_oracle"),  # fmt: skip
        Node(assemble_round_metrics, ["eval_report", "refinement_quality", "refinement_failures", "oracle_result", "params:round"],
             "metrics", name="assemble_round_metrics"),  # fmt: skip
        Node(build_rounds_report, ["metrics", "baseline_metrics", "all_stage_metrics"], ["rounds_report_md", "rounds_report_png"],
             name="build_rounds_report"),  # fmt: skip
        Node(plot_stages_gallery, ["eval_images", "eval_masks", "baseline_eval_per_image", "eval_per_image", "all_stage_models", "model",
                                   "params:inference", "params:inference.gallery_cases"], "stages_gallery", name="plot_stages_gallery"),  # fmt: skip
    ]
    with training_stage.pipeline.naming_other_stages():
        return _round_pipeline(nodes)


def _round_pipeline(nodes: list[Node]) -> Pipeline:
    round_only = Pipeline(
        nodes,
        namespace=STAGE,
        inputs={**{name: name for name in (*SPLITS, "refined_masks", "previous_model", "refinement_quality", "refinement_failures", "all_stage_metrics",
                                           "all_stage_models")},
                "baseline_metrics": "baseline.metrics", "baseline_eval_per_image": "baseline.eval_per_image"},
        outputs={"rounds_report_md", "rounds_report_png", "stages_gallery"},
        parameters=PARAMETERS,
    )
    # The stage's eval report becomes part of the round's metrics (with the refinement's figures).
    stage = Pipeline(training_stage.pipeline.create_pipeline(STAGE), outputs={"round.metrics": "round.eval_report"})
    return round_only + stage
