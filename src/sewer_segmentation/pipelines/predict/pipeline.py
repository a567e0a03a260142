"""Wiring of predict (namespace ``predict`` in kedro viz)."""

from kedro.pipeline import Node, Pipeline

from .nodes import load_chosen_model, predict_folder


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(load_chosen_model, ["params:predict.model", "params:predict.models_root", "params:predict.tracking_uri"], "prediction_model",
                 name="load_chosen_model"),
            Node(predict_folder, ["prediction_model", "inference_images", "params:predict", "params:engine", "params:ray",
                                  "prediction_masks_staging", "prediction_overlays_staging"],
                 ["prediction_masks", "prediction_overlays", "predictions_table"], name="predict_folder"),  # fmt: skip
        ],
        namespace="predict",
        inputs={"inference_images", "prediction_masks_staging", "prediction_overlays_staging"},
        outputs={"prediction_masks", "prediction_overlays", "predictions_table"},
        parameters={"params:predict", "params:predict.model", "params:predict.models_root", "params:predict.tracking_uri", "params:engine", "params:ray"},
    )
