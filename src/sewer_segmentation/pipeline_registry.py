"""Project pipelines.

- ``data_engineering``: raw folders -> splits, manifest and data report.
- ``baseline``: data_engineering + baseline_training.
- ``__default__`` (plain ``kedro run``): data_engineering, baseline_training, then refinement round 1.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from sewer_segmentation.pipelines import baseline_training, data_engineering


def register_pipelines() -> dict[str, Pipeline]:
    de = data_engineering.pipeline.create_pipeline()
    bt = baseline_training.pipeline.create_pipeline()
    return {
        "data_engineering": de,
        "baseline_training": bt,
        "baseline": de + bt,
        "__default__": de + bt,
    }
