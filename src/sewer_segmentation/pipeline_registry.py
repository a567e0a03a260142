"""Project pipelines.

- ``data_engineering``: raw folders -> splits, manifest and data report.
- ``baseline``: data_engineering + baseline_training.
- ``__default__`` (plain ``kedro run``): everything available, in dependency order.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from sewer_segmentation.pipelines import data_engineering


def register_pipelines() -> dict[str, Pipeline]:
    de = data_engineering.pipeline.create_pipeline()
    return {
        "data_engineering": de,
        "__default__": de,
    }
