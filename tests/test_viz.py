"""`kedro viz build` works offline and shows every pipeline, namespace and dataset."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from sewer_segmentation.pipeline_registry import register_pipelines
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_viz_build_contains_every_pipeline_and_dataset(kedro_project):
    shutil.rmtree(kedro_project / "src")
    shutil.copytree(REPO / "src", kedro_project / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    result = subprocess.run([sys.executable, "-m", "kedro", "viz", "build"], cwd=kedro_project, env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0 and "Success" in result.stdout + result.stderr, result.stderr[-3000:]
    api = kedro_project / "build" / "api"
    main = json.loads((api / "main").read_text())
    registered = register_pipelines()
    assert {p["id"] for p in main["pipelines"]} == set(registered)
    # the training stages are groups named after the stage: the baseline, and the round
    assert {"data_engineering", "baseline", "mask_refinement", "round"} <= set(main["modular_pipelines"])
    for name, pipeline in registered.items():
        shown = json.loads((api / "pipelines" / name).read_text())
        names = {n["name"] for n in shown["nodes"]}
        assert pipeline.datasets() - names == set(), name  # every dataset of the pipeline is drawn
    predict = json.loads((api / "pipelines" / "predict").read_text())
    assert "predict" in predict["modular_pipelines"]
    # the data folders' layers, from the catalog's metadata (no cycle, or kedro-viz draws none), in the order data flows
    layers = main["layers"]
    assert set(layers) == {"raw", "intermediate", "primary", "feature", "model_input", "models", "model_output", "reporting"}
    assert layers.index("raw") < layers.index("primary") < layers.index("models") < layers.index("reporting")
    layer_of = {n["name"]: n.get("layer") for n in main["nodes"] if n["type"] == "data"}
    assert layer_of["raw_images"] == "raw" and layer_of["split_manifest"] == "primary" and layer_of["baseline.model"] == "models"
