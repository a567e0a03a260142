"""Wiring of mask_refinement (namespace ``mask_refinement`` in kedro viz)."""

from kedro.pipeline import Node, Pipeline

from sewer_segmentation.modelling.inference import predict_split

from .nodes import (
    build_refined_masks,
    choose_refinement_method,
    merge_refined_shards,
    plot_refinement_gallery,
    predict_pool,
    score_merged_refinement,
    score_refinement_methods,
)


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
        Node(predict_pool, ["split_manifest", "previous_model", "weak_images", "params:inference"],
             ["weak_probabilities", "refinement_failures"], name="predict_weak_pool"),  # fmt: skip
        *selection_nodes(),
        Node(build_refined_masks, ["weak_probabilities", "weak_images", "weak_box_masks", "refinement_choice", "params:mask_refinement"],
             "refined_masks", name="build_refined_masks"),  # fmt: skip
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
        inputs={"split_manifest", "weak_images", "weak_box_masks", "raw_ground_truth", *SELECTION_INPUTS},
        outputs={"refined_masks", "refinement_failures", "refinement_quality", "refinement_gallery"},
        parameters={"params:inference", "params:mask_refinement", "params:mask_refinement.gallery_cases", "params:round"},
    )


def create_shard_pipeline(**kwargs) -> Pipeline:
    """One shard of a round's refinement (``mask_refinement.shard.index`` of ``.count``), for machines
    that refine one weak pool in parallel; ``create_merge_pipeline`` joins the shards. Every shard makes
    the same (deterministic) method choice on baseline_val."""
    return Pipeline(
        [
            Node(predict_pool, ["split_manifest", "previous_model", "weak_images", "params:inference", "params:mask_refinement"],
                 ["weak_probabilities", "refinement_shard_failures"], name="predict_weak_shard"),  # fmt: skip
            *selection_nodes(),
            Node(build_refined_masks, ["weak_probabilities", "weak_images", "weak_box_masks", "refinement_choice", "params:mask_refinement"],
                 "refined_mask_shard", name="build_refined_shard"),  # fmt: skip
        ],
        namespace="mask_refinement",
        inputs={"split_manifest", "weak_images", "weak_box_masks", *SELECTION_INPUTS},
        # the choice is kept beside the shard, for the merge's report
        outputs={"refined_mask_shard": "refined_mask_shard", "refinement_shard_failures": "refinement_shard_failures",
                 "refinement_choice": "refinement_shard_choice"},
        parameters={"params:inference", "params:mask_refinement"},
    )


def create_merge_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(merge_refined_shards, ["refined_mask_shards", "refinement_shard_failure_files", "params:mask_refinement.shard.count"],
                 ["refined_masks", "refinement_failures"], name="merge_refined_shards"),  # fmt: skip
            Node(score_merged_refinement, ["refined_masks", "refinement_shard_choices", "raw_ground_truth", "params:mask_refinement.shard.count"],
                 "refinement_quality", name="score_merged_refinement"),  # fmt: skip
        ],
        namespace="mask_refinement",
        inputs={"refined_mask_shards", "refinement_shard_failure_files", "refinement_shard_choices", "raw_ground_truth"},
        outputs={"refined_masks", "refinement_failures", "refinement_quality"},
        parameters={"params:mask_refinement.shard.count"},
    )
