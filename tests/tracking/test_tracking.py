"""What the project adds to MLflow: comparable stage runs, refinement scores, run names, code version."""

import os
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
    private = {k: tags.pop(k) for k in ("mlflow.user", "mlflow.source.name")}
    assert tags == {"dataset": "tiny", "round": "2", "code_version": "abc", "stage": "round_2", "model_version": "2026-12-03T07.00.00Z",
                    "refined_from": "round_1", "improved_on_validation": "True", "handed_on": "trained"}  # fmt: skip
    assert stage_tags({**REPORT, "kept_initial_weights": True}, {})["handed_on"] == "start"
    guarded = stage_metrics({**REPORT, "guard_difference": -0.01, "guard_standard_error": 0.02, "weak_holdout": {"frames": 3, "per_frame": {"a": 1.0}}})
    assert guarded["selection.vs_start"] == -0.01 and guarded["selection.vs_start_standard_error"] == 0.02
    assert guarded["weak_holdout.frames"] == 3 and not any("per_frame" in name for name in guarded)
    assert "/" not in private["mlflow.source.name"] and private["mlflow.user"] in ("", os.environ.get("SEWER_SEGMENTATION_MLFLOW_USER"))
    below = {**REPORT, "box_validation_score": 0.7, "below_boxes_on_validation": True}
    assert stage_metrics(below)["validation.box_masks_score"] == 0.7
    assert stage_tags(below, {})["below_boxes_on_validation"] == "True"
    signals = {**REPORT, "selection_signal": "combined", "selection_score": 0.66,
               "weak_holdout": {"frames": 17, "box_agreement": 0.71, "box_coverage": 0.8, "outside_share": 0.1}}  # fmt: skip
    logged = stage_metrics(signals)
    assert logged["weak_holdout.box_agreement"] == 0.71 and logged["weak_holdout.frames"] == 17 and logged["selection.score"] == 0.66
    assert stage_tags(signals, {})["selection_signal"] == "combined"
    assert "weak_holdout.box_agreement" not in stage_metrics({**signals, "weak_holdout": {"frames": 0, "box_agreement": None}})


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


def test_runs_left_running_by_a_dead_process_are_marked_killed_and_live_ones_are_not(tmp_path):
    import sys

    from mlflow.tracking import MlflowClient

    from sewer_segmentation.tracking.runs import PROCESS_TAG, mark_dead_runs_killed, process_tag

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("x", artifact_location=str(tmp_path / "artifacts"))
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    host = process_tag().rpartition(":")[0]
    dead = client.create_run(experiment, tags={PROCESS_TAG: f"{host}:{finished.stdout.strip()}"}).info.run_id  # kill -9
    alive = client.create_run(experiment, tags={PROCESS_TAG: process_tag()}).info.run_id
    elsewhere = client.create_run(experiment, tags={PROCESS_TAG: "another-host:1"}).info.run_id  # cannot be told: left
    current = client.create_run(experiment, tags={PROCESS_TAG: f"{host}:{finished.stdout.strip()}"}).info.run_id
    assert mark_dead_runs_killed(client, experiment, current) == [dead]
    status = {run_id: client.get_run(run_id).info.status for run_id in (dead, alive, elsewhere, current)}
    assert status == {dead: "KILLED", alive: "RUNNING", elsewhere: "RUNNING", current: "RUNNING"}


def test_ctrl_c_ends_the_open_run_killed_not_finished(tmp_path):
    from sewer_segmentation.cli import _with_clear_user_errors

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        mlflow.set_experiment("interrupted")  # not the experiment an earlier test left selected
        started = {}

        def interrupted_training(**_):
            started["run"] = mlflow.start_run().info.run_id
            raise SystemExit(1)  # what Lightning raises after a KeyboardInterrupt

        with pytest.raises(SystemExit):
            _with_clear_user_errors(interrupted_training)()
        assert mlflow.active_run() is None
        assert mlflow.get_run(started["run"]).info.status == "KILLED"
    finally:
        mlflow.set_tracking_uri(None)


def test_runs_record_paths_relative_to_the_project_and_no_user_name_unless_given(tmp_path, monkeypatch):
    from sewer_segmentation.tracking.runs import USER_VARIABLE, portable_path, private_tags

    project = tmp_path / "project"
    assert portable_path(project / "data/01_raw/inference", project) == "data/01_raw/inference"
    assert portable_path(project, project) == "."
    assert portable_path("/home/alice/frames/site7", project) == "frames/site7"
    tags = {"project_path": str(project), "mlflow.source.name": "/home/alice/.venv/bin/kedro", "mlflow.user": "alice"}
    monkeypatch.delenv(USER_VARIABLE, raising=False)
    assert private_tags(tags, project) == {"mlflow.user": "", "project_path": ".", "mlflow.source.name": "kedro"}
    monkeypatch.setenv(USER_VARIABLE, "inspection-team")
    assert private_tags(tags, project)["mlflow.user"] == "inspection-team"


def test_a_stage_trains_in_its_own_child_run_which_a_failure_ends_failed_and_the_pipelines_run_goes_on(tmp_path):
    from types import SimpleNamespace

    from sewer_segmentation.hooks.tracking import StageRunsHook
    from sewer_segmentation.modelling.plan import TrainingPlan

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        mlflow.set_experiment("stages")
        hook, plan = StageRunsHook(), TrainingPlan("round_2", [], [], {"architecture": "Unet"}, {"steps": 4}, {"height": 64})
        node = SimpleNamespace(name="round.train_model", inputs=["round.training_plan", "params:seed"])
        with mlflow.start_run() as parent:
            hook.before_node_run(node, None, {"round.training_plan": plan, "params:seed": 7}, False, None)
            child = mlflow.active_run().info.run_id
            assert child != parent.info.run_id  # the training logs into the stage's run
            hook.on_node_error(RuntimeError("out of memory"), node, None, {}, False, None)
            assert mlflow.active_run().info.run_id == parent.info.run_id  # the pipeline's run is still open
        run = mlflow.get_run(child)
        assert run.info.status == "FAILED" and run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["stage"] == "round_2" and run.data.params["training.steps"] == "4" and run.data.params["seed"] == "7"
    finally:
        mlflow.set_tracking_uri(None)
