"""Datasets as real exports have them: numeric file names, and several datasets in one checkout."""

import json

import pandas as pd
import pytest

from sewer_segmentation.io.files import list_versions
from tests.conftest import make_dataset, run_kedro

pytestmark = pytest.mark.slow

FAST = ("image_size.height=64,image_size.width=96,baseline_training.training.steps=4,baseline_training.training.validations=2,"
        "final_training.training_overrides.steps=2")  # fmt: skip


def rename_to_numbers(raw):
    """frame_00012.jpg -> 00012.jpg everywhere (images, box masks, labels.csv, ground truth)."""
    truth = raw.parent / f"{raw.name}_ground_truth"
    for folder in (raw / "images", raw / "masks", truth):
        for path in folder.iterdir():
            path.rename(path.with_name(path.name.removeprefix("frame_")))
    labels = raw / "labels.csv"
    labels.write_text(labels.read_text().replace("frame_", ""))


def test_numeric_file_names_run_end_to_end(kedro_project):
    raw = make_dataset(kedro_project, "numbers")
    rename_to_numbers(raw)
    result = run_kedro(kedro_project, f"--params=dataset=numbers,{FAST}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    manifest = pd.read_csv(kedro_project / "data/03_primary/numbers/split_manifest.csv", dtype=str)
    assert manifest.image_id.str.fullmatch(r"\d{5}").all()  # leading zeros kept: ids are text
    report = json.loads((kedro_project / "data/08_reporting/numbers/data_report.json").read_text())
    assert report["box_coarseness"]["box_vs_polygon_iou"]["images"] == 16  # every polygon scored against its box
    per_image = pd.read_csv(kedro_project / "data/08_reporting/numbers/round_1_eval_per_image.csv", dtype=str)
    assert set(per_image.image_id) <= set(manifest.image_id)
    assert (kedro_project / "data/08_reporting/numbers/rounds.md").is_file()


def test_two_datasets_in_one_checkout_never_cross(kedro_project):
    make_dataset(kedro_project, "A")
    make_dataset(kedro_project, "B", seed=11, defect_class="Obstacle")
    for name in ("A", "B"):
        result = run_kedro(kedro_project, "--pipeline=baseline", f"--params=dataset={name},{FAST}")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # A newer baseline of A must not be what round 1 of B starts from.
    result = run_kedro(kedro_project, "--pipeline=baseline_training", f"--params=dataset=A,{FAST}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    result = run_kedro(kedro_project, "--pipeline=refine", f"--params=dataset=B,round:1,{FAST}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((kedro_project / "data/08_reporting/B/round_1_metrics.json").read_text())
    b_baseline = list_versions(kedro_project / "data/06_models/B/baseline")
    assert len(b_baseline) == 1 and len(list_versions(kedro_project / "data/06_models/A/baseline")) == 2
    config = json.loads(next((kedro_project / "data/06_models/B/round_1").glob("*/model_config.json")).read_text())
    assert config["metadata"]["refined_from"] == "baseline" and config["metadata"]["refined_from_version"] == b_baseline[0]
    assert metrics["refined_from"] == "baseline"
    assert not (kedro_project / "data/06_models/A/round_1").exists()
    assert not (kedro_project / "data/04_feature/A").exists()
    # splits of A and B are separate folders with their own images
    a_ids = set(pd.read_csv(kedro_project / "data/03_primary/A/split_manifest.csv", dtype=str).source_file)
    b_ids = set(pd.read_csv(kedro_project / "data/03_primary/B/split_manifest.csv", dtype=str).source_file)
    assert a_ids and b_ids
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{kedro_project / 'mlflow.db'}")
    def pipeline_runs(experiment):  # the runs of `kedro run`, not the training stages' child runs
        runs = mlflow.search_runs(experiment_names=[experiment])
        return runs[runs["tags.mlflow.parentRunId"].isna()]

    assert len(pipeline_runs("sewer_segmentation-A")) == 2 and len(pipeline_runs("sewer_segmentation-B")) == 2
