"""Wiring of mask_refinement (namespace ``mask_refinement`` in kedro viz)."""

from kedro.pipeline import Node, Pipeline

from sewer_segmentation.pipelines.baseline_training.nodes import predict_eval_images

from .nodes import build_refined_masks, plot_refinement_gallery, predict_pool, score_refinement_methods


def create_pipeline(**kwargs) -> Pipeline:
    nodes = [
        Node(predict_pool, ["previous_model", "weak_images", "params:inference"],
             ["weak_probabilities", "refinement_failures"], name="predict_weak_pool"),  # fmt: skip
        Node(predict_eval_images, ["previous_model", "eval_images", "params:inference"], "eval_probabilities",
             name="predict_eval_images"),  # fmt: skip
        Node(build_refined_masks, ["weak_probabilities", "weak_images", "weak_box_masks", "params:mask_refinement"],
             "refined_masks", name="build_refined_masks"),  # fmt: skip
        Node(
            score_refinement_methods,
            inputs=["refined_masks", "weak_probabilities", "weak_images", "weak_box_masks", "raw_ground_truth",
                    "eval_probabilities", "eval_images", "eval_box_masks", "eval_masks", "params:mask_refinement"],  # fmt: skip
            outputs="refinement_quality",
            name="score_refinement_methods",
        ),
        Node(plot_refinement_gallery,
             ["weak_images", "weak_box_masks", "refined_masks", "raw_ground_truth",
              "params:mask_refinement.gallery_cases", "params:round"],
             "refinement_gallery", name="plot_refinement_gallery"),  # fmt: skip
    ]
    return Pipeline(
        nodes,
        namespace="mask_refinement",
        inputs={"previous_model", "weak_images", "weak_box_masks", "raw_ground_truth", "eval_images", "eval_box_masks", "eval_masks"},
        outputs={"refined_masks", "refinement_failures", "refinement_quality", "refinement_gallery"},
        parameters={"params:inference", "params:mask_refinement", "params:mask_refinement.gallery_cases", "params:round"},
    )
