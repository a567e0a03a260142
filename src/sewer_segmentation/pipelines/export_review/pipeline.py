"""Wiring of export_review (namespace ``export_review`` in kedro viz)."""

from kedro.pipeline import Node, Pipeline

from .nodes import export_review

OUTPUTS = ["review_coco", "review_cvat", "review_yolo_labels", "review_yolo_data", "review_images", "review_order", "review_gallery"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [Node(export_review, ["refined_masks", "weak_images", "weak_box_masks", "params:export_review"], OUTPUTS, name="export_review")],
        namespace="export_review",
        inputs={"refined_masks", "weak_images", "weak_box_masks"},
        outputs=set(OUTPUTS),
        parameters={"params:export_review"},
    )
