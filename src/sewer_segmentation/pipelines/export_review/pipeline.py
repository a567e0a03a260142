"""Wiring of export_review (namespace ``export_review`` in kedro viz)."""

from kedro.pipeline import Node, Pipeline

from .nodes import export_review

#: Both sources, each optional (the one not exported may not exist): round r's refined masks with the weak
#: pool, or the predict pipeline's masks and table with its folder of frames.
INPUTS = ["review_refined_masks", "weak_images", "weak_box_masks", "review_prediction_masks", "review_predictions_table", "inference_images"]
OUTPUTS = ["review_coco", "review_cvat", "review_yolo_labels", "review_yolo_data", "review_images", "review_order", "review_gallery"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [Node(export_review, [*INPUTS, "params:export_review", "params:round"], OUTPUTS, name="export_review")],
        namespace="export_review",
        inputs=set(INPUTS),
        outputs=set(OUTPUTS),
        parameters={"params:export_review", "params:round"},
    )
