"""Wiring of one training stage, instantiated once per stage under its namespace.

``baseline_training`` and ``final_training`` each add the node that plans their training (a
``<stage>.training_plan``) and reuse this pipeline's nodes as they are, with dataset names prefixed by the
stage (``baseline.model``, ``round.model``, ...; see conf/base/catalog.yml). A round renames its
``round.metrics`` to ``round.eval_report`` and adds the nodes that complete the round's report.
"""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from kedro.pipeline import Node, Pipeline

from sewer_segmentation.modelling.inference import predict_split

from .nodes import evaluate_predictions, plot_learning_curves, plot_prediction_gallery, train_stage_model

#: Inputs shared by every stage (the eval split and, on synthetic data, the ground truth).
SHARED_INPUTS = {"eval_images", "eval_masks", "eval_box_masks", "raw_ground_truth"}
SHARED_PARAMETERS = {"params:seed", "params:inference", "params:inference.gallery_cases", "params:model_selection"}


def create_pipeline(stage: str = "stage") -> Pipeline:
    """train -> predict eval -> score -> plots, with every dataset name prefixed by ``<stage>.``."""
    nodes = [
        Node(train_stage_model, ["training_plan", "params:seed", "params:model_selection", "params:inference"], ["model", "training_history"],
             name="train_model"),
        Node(predict_split, ["model", "eval_images", "params:inference"], "eval_probabilities", name="predict_eval_images"),
        Node(evaluate_predictions, ["eval_probabilities", "eval_masks", "eval_box_masks", "raw_ground_truth", "model"],
             ["metrics", "eval_per_image", "mlflow_metrics"], name="evaluate_on_eval"),  # fmt: skip
        Node(plot_learning_curves, ["training_history", "model"], "learning_curves", name="plot_learning_curves"),
        Node(plot_prediction_gallery, ["eval_images", "eval_masks", "eval_probabilities", "eval_per_image", "params:inference.gallery_cases", "model"],
             "prediction_gallery", name="plot_prediction_gallery"),  # fmt: skip
    ]
    return Pipeline(nodes, namespace=stage, inputs=SHARED_INPUTS, parameters=SHARED_PARAMETERS)


@contextmanager
def naming_other_stages() -> Iterator[None]:
    """Wiring that names another stage's output (``baseline.metrics``, ``baseline.model``). Kedro warns
    about every dotted dataset name it did not prefix itself, but these are exactly its namespaced names."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"One or more dataset names contain '\.'", category=UserWarning)
        yield
