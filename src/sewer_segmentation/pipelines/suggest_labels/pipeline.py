"""Wiring of suggest_labels (namespace ``suggest_labels`` in kedro viz)."""

from kedro.pipeline import Node, Pipeline

from .nodes import choose_frames_to_label, export_suggestions, score_weak_pool

INPUTS = {"suggestion_model", "weak_images", "baseline_train_images", "box_lists", "split_manifest"}
OUTPUTS = ["next_to_label", "suggestion_coco", "suggestion_cvat", "suggestion_yolo_labels", "suggestion_yolo_data", "suggestion_frames",
           "suggestions_gallery"]  # fmt: skip


def create_pipeline(**kwargs) -> Pipeline:
    nodes = [
        Node(score_weak_pool, ["suggestion_model", "weak_images", "baseline_train_images", "box_lists", "split_manifest", "params:inference"],
             ["pool_scores", "pool_features"], name="score_weak_pool"),  # fmt: skip
        Node(choose_frames_to_label, ["pool_scores", "pool_features", "params:suggest", "params:seed"], "next_to_label", name="choose_frames_to_label"),
        Node(export_suggestions, ["next_to_label", "suggestion_model", "weak_images", "box_lists", "split_manifest", "params:inference",
                                  "params:export_review"], OUTPUTS[1:], name="export_suggestions"),  # fmt: skip
    ]
    return Pipeline(nodes, namespace="suggest_labels", inputs=INPUTS, outputs=set(OUTPUTS),
                    parameters={"params:inference", "params:suggest", "params:seed", "params:export_review"})  # fmt: skip
