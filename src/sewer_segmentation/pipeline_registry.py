"""Project pipelines.

- ``data_engineering``: raw folders -> splits, manifest and data report.
- ``baseline``: data_engineering + baseline_training.
- ``baseline_training`` and ``final_training`` plan their training and share one ``training_stage``
  pipeline (train -> predict eval -> score -> plots), namespaced ``baseline`` and ``round``.
- ``refine``: mask_refinement + final_training for round ``round`` (``--params=round:2``).
- ``predict``: a chosen model applied to a folder of new frames.
  Refinement and ``predict`` run here or on a Ray cluster (``--params=engine=ray``, docs/scaling.md).
- ``export_review``: round ``round``'s refined masks out to labelling tools (COCO, CVAT XML, YOLO segmentation).
- ``suggest_labels``: the weak-pool frames to hand-label next (``suggest.budget``, ``suggest.method``), exported likewise.
- ``__default__`` (plain ``kedro run``): data_engineering, baseline_training, then refinement round 1.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, pipeline

from sewer_segmentation.pipelines import (
    baseline_training,
    data_engineering,
    export_review,
    final_training,
    mask_refinement,
    predict,
    suggest_labels,
    training_stage,
)


def register_pipelines() -> dict[str, Pipeline]:
    de = data_engineering.pipeline.create_pipeline()
    bt = baseline_training.pipeline.create_pipeline()
    mr = mask_refinement.pipeline.create_pipeline()
    ft = final_training.pipeline.create_pipeline()
    return {
        "data_engineering": de,
        "baseline_training": bt,
        "mask_refinement": mr,
        "final_training": ft,
        "baseline": de + bt,
        "refine": mr + ft,
        "predict": predict.pipeline.create_pipeline(),
        "export_review": export_review.pipeline.create_pipeline(),
        "suggest_labels": suggest_labels.pipeline.create_pipeline(),
        "__default__": de + bt + _round_1_after_baseline(mr + ft),
    }


def _round_1_after_baseline(refine: Pipeline) -> Pipeline:
    """In one run, round 1 must wait for the baseline model trained in that run: name it directly."""
    with training_stage.pipeline.naming_other_stages():
        return pipeline(refine, inputs={"previous_model": "baseline.model"})
