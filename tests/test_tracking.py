"""What the project adds to MLflow: comparable stage runs, refinement scores, run names, code version."""

import subprocess

import mlflow
import pytest

from sewer_segmentation import __version__
from sewer_segmentation.tracking.runs import code_version, metric_name, refinement_metrics, run_name, stage_metrics, stage_tags

REPORT = {
    "stage": "round_2", "model_version": "2026-12-03T07.00.00Z", "refined_from": "round_1", "best_validation_score": 0.61,
    "improved_on_validation": True,
    "metrics": {"model": {"polygons": {"mean_iou": 0.6, "images": 8}}, "box_mask": {"polygons": {"mean_iou": 0.5, "images": 8}}},
}  # fmt: skip


def test_every_stage_logs_the_same_metric_names():
    baseline = {**REPORT, "stage": "baseline", "metrics": {"model": {"polygons": {"mean_iou": 0.4, "images": 8}},
                                                           "box_mask": {"polygons": {"mean_iou": 0.5, "images": 8}}}}  # fmt: skip
    assert stage_metrics(REPORT).keys() == stage_metrics(baseline).keys()
    assert stage_metrics(REPORT)["eval.model.polygons.mean_iou"] == 0.6 and stage_metrics(REPORT)["validation.best_score"] == 0.61
    tags = stage_tags(REPORT, {"dataset": "tiny", "round": "2", "pipeline": "refine", "code_version": "abc"})
    assert tags == {"dataset": "tiny", "round": "2", "code_version": "abc", "stage": "round_2", "model_version": "2026-12-03T07.00.00Z",
                    "refined_from": "round_1", "improved_on_validation": "True"}  # fmt: skip
    below = {**REPORT, "box_validation_score": 0.7, "below_boxes_on_validation": True}
    assert stage_metrics(below)["validation.box_masks_score"] == 0.7
    assert stage_tags(below, {})["below_boxes_on_validation"] == "True"


def test_refinement_scores_have_valid_metric_names(tmp_path):
    quality = {"used": "threshold@0.3", "methods": {"threshold@0.3": {"selection_vs_polygons": 0.8, "weak_vs_ground_truth": {"mean_iou": 0.7}},
                                                    "grabcut": {"selection_vs_polygons": 0.75}}}  # fmt: skip
    metrics = refinement_metrics(quality)
    assert metrics == {"refinement.threshold_0.3.selection_vs_polygons": 0.8, "refinement.threshold_0.3.weak_vs_ground_truth": 0.7,
                       "refinement.grabcut.selection_vs_polygons": 0.75}  # fmt: skip
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")  # no global MLflow state
    run = client.create_run(client.create_experiment("names"))
    for name, value in metrics.items():
        client.log_metric(run.info.run_id, name, value)  # MLflow refuses invalid names: this is the check
    assert client.get_run(run.info.run_id).data.metrics == metrics
    assert metric_name("a@b c/d-e") == "a_b c/d-e"


@pytest.mark.parametrize(("pipelines", "expected"), [
    (["__default__"], "__default__ · tiny · round 1"), (["refine"], "refine · tiny · round 1"),
    (["baseline"], "baseline · tiny"), (["predict"], "predict · tiny"),
])  # fmt: skip
def test_run_names_say_what_ran(pipelines, expected):
    assert run_name(pipelines, "tiny", 1) == expected


def test_code_version_is_the_commit_and_says_dirty(tmp_path):
    assert code_version(tmp_path) == __version__  # not a repository
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "a.txt").write_text("1")
    subprocess.run(["git", "add", "a.txt"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "one"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert code_version(tmp_path) == head
    (tmp_path / "a.txt").write_text("2")
    assert code_version(tmp_path) == head + "+dirty"
