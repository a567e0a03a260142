"""Wiring of mask_refinement (namespace ``mask_refinement`` in kedro viz)."""

from kedro.pipeline import Node, Pipeline

from sewer_segmentation.modelling.inference import predict_split

from .nodes import choose_refinement_method, plot_refinement_gallery, refine_weak_pool, score_refinement_methods


def selection_nodes() -> list[Node]:
    """Predict baseline_val with the refining model and choose the refinement method on it (never eval)."""
    return [
        Node(predict_split, ["previous_model", "baseline_val_images", "params:inference"], "selection_probabilities",
             name="predict_selection_images"),  # fmt: skip
        Node(choose_refinement_method,
             ["split_manifest", "selection_probabilities", "baseline_val_images", "baseline_val_box_masks", "baseline_val_masks", "params:mask_refinement"],
             "refinement_choice", name="choose_refinement_method"),  # fmt: skip
    ]


SELECTION_INPUTS = {"previous_model", "baseline_val_images", "baseline_val_box_masks", "baseline_val_masks"}


def create_pipeline(**kwargs) -> Pipeline:
    nodes = [
        *selection_nodes(),
        Node(refine_weak_pool,
             ["split_manifest", "previous_model", "weak_images", "weak_box_masks", "refinement_choice", "params:inference",
              "params:mask_refinement", "params:engine", "params:ray", "refined_masks_staging"],
             ["refined_masks", "refinement_failures", "weak_probabilities"], name="refine_weak_pool"),  # fmt: skip
        Node(
            score_refinement_methods,
            inputs=["refined_masks", "refinement_choice", "weak_probabilities", "weak_images", "weak_box_masks",
                    "raw_ground_truth", "params:mask_refinement"],  # fmt: skip
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
        inputs={"split_manifest", "weak_images", "weak_box_masks", "raw_ground_truth", "refined_masks_staging", *SELECTION_INPUTS},
        outputs={"refined_masks", "refinement_failures", "refinement_quality", "refinement_gallery"},
        parameters={"params:inference", "params:mask_refinement", "params:mask_refinement.gallery_cases", "params:round", "params:engine", "params:ray"},
    )
