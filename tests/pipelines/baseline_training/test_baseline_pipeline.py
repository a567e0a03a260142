"""The baseline pipeline end to end on a tiny dataset, through the real CLI."""

import json

import mlflow
import numpy as np
import pytest

from sewer_segmentation.datasets import FolderDataset, SegmentationModelDataset
from sewer_segmentation.io.files import list_versions
from sewer_segmentation.modelling.inference import predict_split
from sewer_segmentation.pipelines.training_stage.nodes import evaluate_predictions
from tests.conftest import make_dataset, run_cli, run_kedro

pytestmark = pytest.mark.slow

FAST = "dataset=tiny,image_size.height=64,image_size.width=96,baseline_training.training.steps=6,baseline_training.training.validations=3"


def folder(project, split, kind, k):
    return FolderDataset(
        path=str(project / f"data/03_primary/tiny/{split}/{kind}"),
        dataset={"type": "sewer_segmentation.datasets.ImageDataset", "kind": k},
        filename_suffix=".png",
    ).load()


def test_baseline_trains_evaluates_tracks_and_reloads(kedro_project):
    make_dataset(kedro_project)
    result = run_kedro(kedro_project, "--pipeline=baseline", f"--params={FAST}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = result.stdout + result.stderr  # quiet where it used to be noisy (conf/logging.yml)
    assert "Running node: train_model" in log, log[-3000:]
    assert "Loading data from" not in log and "GPU available" not in log and "litlogger" not in log

    models_dir = kedro_project / "data/06_models/tiny/baseline"
    versions = list_versions(models_dir)
    assert len(versions) == 1
    assert sorted(p.name for p in (models_dir / versions[0]).iterdir()) == ["model.safetensors", "model_config.json"]

    report = json.loads((kedro_project / "data/08_reporting/tiny/baseline_metrics.json").read_text())
    metrics = report["metrics"]
    assert report["selected_by"] == "val_mean_iou" and report["model_version"] == versions[0]
    assert set(metrics) == {"model", "box_mask", "all_background"}
    assert metrics["all_background"]["polygons"]["mean_iou"] == 0.0
    assert 0 < metrics["box_mask"]["polygons"]["mean_iou"] < 1
    assert "ground_truth" in metrics["model"]

    # The saved weights reproduce the reported eval metrics.
    trained = SegmentationModelDataset(path=str(models_dir)).load()
    eval_images = folder(kedro_project, "eval", "images", "image")
    probabilities = predict_split(trained, eval_images, {"batch_size": 4})
    again, _, _ = evaluate_predictions(
        probabilities, folder(kedro_project, "eval", "masks", "mask"),
        folder(kedro_project, "eval", "box_masks", "mask"), {}, trained,
    )  # fmt: skip
    assert again["metrics"]["model"]["polygons"] == pytest.approx(metrics["model"]["polygons"], abs=1e-4)

    # One MLflow run holds parameters, step metrics, eval metrics, figures and the model.
    mlflow.set_tracking_uri(f"sqlite:///{kedro_project / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["sewer_segmentation-tiny"])
    assert len(runs) == 2  # the pipeline's run and the baseline stage's child run
    run = runs[runs["tags.mlflow.parentRunId"].isna()].iloc[0]
    assert run["tags.pipeline"] == "baseline" and run["tags.round"] == "1" and run["tags.mlflow.runName"] == "baseline · tiny"
    assert run["tags.code_version"]  # the git commit, or the package version outside a checkout
    # no absolute paths or user names in the run: the project path is relative, the user name dropped
    assert run["tags.project_path"] == "." and run["tags.mlflow.user"] == "" and "/" not in run["tags.mlflow.source.name"]
    assert run["tags.sewer.process"].rpartition(":")[2].isdigit()  # <host>:<pid>: a later run can tell a killed one
    stage = runs[runs["tags.mlflow.parentRunId"] == run["run_id"]].iloc[0]
    assert stage["tags.mlflow.runName"] == "baseline" and stage["tags.stage"] == "baseline"
    assert stage["metrics.eval.model.polygons.mean_iou"] == pytest.approx(metrics["model"]["polygons"]["mean_iou"])
    assert stage["metrics.validation.best_score"] == pytest.approx(report["best_validation_score"])
    assert stage["metrics.validation.box_masks_score"] == pytest.approx(report["box_validation_score"])  # the boxes beside it
    assert run["params.baseline_training.training.steps"] == "6"
    # typed sections reach kedro-mlflow as models: still one flattened key per value, never a model's text
    logged = {k.removeprefix("params."): v for k, v in run.items() if k.startswith("params.") and isinstance(v, str)}  # NaN: a child run's key
    assert logged["baseline_training.training.loss.name"] == "tversky" and logged["model.architecture"] == "UNetAttention"
    assert logged["inference.batch_size"] == "16" and logged["image_size.height"] == "64"
    assert not any("Params(" in value or "=" in value for value in logged.values()), logged
    assert run["metrics.baseline.eval.model.polygons.mean_iou"] == pytest.approx(metrics["model"]["polygons"]["mean_iou"])
    client = mlflow.MlflowClient()
    # the training curves are the stage's own: in its child run, under the same names in every stage
    assert len(client.get_metric_history(stage["run_id"], "train_loss")) == 6  # one per step, sent in batches
    assert len(client.get_metric_history(stage["run_id"], "val_mean_iou")) == 3
    assert stage["params.training.steps"] == "6" and stage["params.model.architecture"] == "UNetAttention"
    artifacts = {a.path for a in client.list_artifacts(run["run_id"], "baseline")}
    assert {"baseline/baseline_learning_curves.png", "baseline/baseline_prediction_gallery.png",
            "baseline/baseline_eval_per_image.csv"} <= artifacts  # fmt: skip
    from sewer_segmentation.tracking.registry import load_logged_model

    # the pipeline's run id finds the model its stage's run logged (TorchScript: the same weights)
    logged = load_logged_model(run["run_id"], f"sqlite:///{kedro_project / 'mlflow.db'}").model.state_dict()
    expected = trained.model.state_dict()
    assert sorted(logged) == sorted(expected) and all(np.array_equal(logged[k].numpy(), expected[k].numpy()) for k in expected)

    # A second run adds a version beside the first one.
    result = run_kedro(kedro_project, "--pipeline=baseline_training", f"--params={FAST}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list_versions(models_dir)) == 2 and list_versions(models_dir)[0] == versions[0]
    # Each run saves its timings as a new version of the catalog's run_timings: the first run's stay.
    timings = sorted((kedro_project / "data/08_reporting/tiny/run_timings.json").iterdir())
    first, second = (json.loads((t / "run_timings.json").read_text()) for t in timings)
    assert first["pipelines"] == ["baseline"] and second["pipelines"] == ["baseline_training"]
    assert "baseline.train_model" in first["seconds_by_node"] and "data_engineering" in first["seconds_by_namespace"]


def test_offline_imagenet_request_is_one_clear_message(kedro_project):
    make_dataset(kedro_project)
    result = run_kedro(
        kedro_project, "--pipeline=baseline", f"--params={FAST},model.encoder_weights=imagenet",
        env={"HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Error: ConfigurationError: could not download 'imagenet' weights" in output
    assert "encoder_weights: null" in output
    assert "Traceback" not in output


def test_image_size_not_multiple_of_32_stops_the_run_before_anything_is_written(kedro_project):
    make_dataset(kedro_project)
    result = run_cli(kedro_project, "--pipeline=baseline", "--params=dataset=tiny,image_size.height=100")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "image_size.height=100: Input should be a multiple of 32 (nearest: 96)" in result.output
    assert not (kedro_project / "data/03_primary/tiny").exists()
