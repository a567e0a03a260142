"""``sewer-segmentation predict FRAME...``: masks without a Kedro session."""

import subprocess
import sys

import cv2
import numpy as np

from sewer_segmentation.datasets import SegmentationModelDataset
from sewer_segmentation.io.imaging import decode_image
from sewer_segmentation.modelling.inference import TrainedModel, predict_probabilities
from sewer_segmentation.modelling.models import build_model

CONFIG = {"architecture": "Unet", "encoder_name": "resnet18", "encoder_weights": None}
SIZE = {"height": 64, "width": 96}


def test_masks_are_written_at_each_frames_size_and_an_unreadable_frame_is_named(tmp_path):
    model = build_model(CONFIG).eval()
    SegmentationModelDataset(path=str(tmp_path / "models/baseline")).save(
        TrainedModel(model, CONFIG, SIZE, {"best_validation_score": 0.5})
    )
    frame = tmp_path / "frame 1.jpg"
    cv2.imwrite(str(frame), np.random.default_rng(0).integers(0, 255, (90, 130, 3), dtype=np.uint8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    result = subprocess.run(
        [sys.executable, "-m", "sewer_segmentation", "predict", str(broken), str(frame), "--models-root", str(tmp_path / "models"),
         "--out", str(tmp_path / "out"), "--threshold", "0.5"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().startswith(f"Error: {broken}: unreadable") and not (tmp_path / "out/broken.png").exists()
    mask = cv2.imread(str(tmp_path / "out/frame 1.png"), cv2.IMREAD_GRAYSCALE)
    trained = SegmentationModelDataset(path=str(tmp_path / "models/baseline")).load()
    expected = predict_probabilities(trained.model, [decode_image(frame.read_bytes())], CONFIG, SIZE)[0] >= 0.5
    assert mask.shape == (90, 130) and np.array_equal(mask > 0, expected)


def test_a_missing_model_or_frame_is_one_line(tmp_path):
    command = [sys.executable, "-m", "sewer_segmentation", "predict", "nope.jpg", "--models-root", str(tmp_path / "models")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"Error: no trained model in {tmp_path / 'models'}. Run `kedro run --pipeline=baseline` first. "
                                     f"(models are looked for in {tmp_path / 'models'}: run this inside the project, or pass "
                                     "--models-root DIR or --dataset NAME)")  # fmt: skip


def test_folders_and_glob_patterns_name_their_image_files(tmp_path):
    from sewer_segmentation.quick_predict import expand_frames  # noqa: PLC0415

    for name in ("survey/a.jpg", "survey/day2/b.PNG", "survey/notes.txt", "single.bmp", "empty/readme.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    folder, pattern, single = str(tmp_path / "survey"), str(tmp_path / "survey/**/*.jpg"), str(tmp_path / "single.bmp")
    frames, problems = expand_frames([folder, pattern, single, str(tmp_path / "empty"), str(tmp_path / "nope.jpg"), str(tmp_path / "*.gif")])
    assert [f.relative_to(tmp_path).as_posix() for f in frames] == ["survey/a.jpg", "survey/day2/b.PNG", "single.bmp"]  # each once
    assert problems == [f"{tmp_path / 'empty'}: no image files (jpg, jpeg, png, bmp) in this folder", f"{tmp_path / 'nope.jpg'}: no such file or folder",
                        f"{tmp_path / '*.gif'}: no image files (jpg, jpeg, png, bmp) match"]  # fmt: skip


def test_frames_that_share_a_name_get_masks_that_never_overwrite_each_other():
    from sewer_segmentation.quick_predict import mask_names

    names = mask_names(["survey/d1/a.jpg", "survey/d2/a.jpg", "b.jpg", "b.png", "c.jpg"])
    assert names == {"survey/d1/a.jpg": "d1__a", "survey/d2/a.jpg": "d2__a", "b.jpg": "b.jpg", "b.png": "b.png", "c.jpg": "c"}


def test_a_threshold_outside_0_to_1_is_refused_by_name():
    from sewer_segmentation.quick_predict import parse_args, probability

    assert probability("0.25") == 0.25
    for bad in ("nan", "inf", "1.5", "-0.1"):
        try:
            parse_args(["frame.jpg", "--threshold", bad])
        except SystemExit as stop:
            assert stop.code == 2
        else:
            raise AssertionError(f"--threshold {bad} was accepted")


def test_a_registered_mlflow_model_predicts_like_the_saved_stage_and_without_a_kedro_banner(tmp_path):
    import mlflow

    from sewer_segmentation.tracking.registry import log_pyfunc_model

    model = build_model(CONFIG).eval()
    trained = TrainedModel(model, CONFIG, SIZE, {"best_validation_score": 0.5})
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    try:
        with mlflow.start_run(experiment_id=mlflow.MlflowClient().create_experiment("quick-predict")):
            log_pyfunc_model(trained, "baseline_model_pyfunc", "sewer-segmentation-x", {"stage": "baseline"})
        mlflow.MlflowClient().set_registered_model_alias("sewer-segmentation-x", "best", "1")
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.random.default_rng(1).integers(0, 255, (70, 110, 3), dtype=np.uint8))
    command = [sys.executable, "-m", "sewer_segmentation", "predict", str(frame), "--model", "models:/sewer-segmentation-x@best",
               "--tracking-uri", store, "--out", str(tmp_path / "out")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "kedro" not in (result.stdout + result.stderr).lower()  # no Kedro session, so no Kedro banner
    expected = predict_probabilities(model, [decode_image(frame.read_bytes())], CONFIG, SIZE)[0] >= 0.5
    mask = cv2.imread(str(tmp_path / "out/frame.png"), cv2.IMREAD_GRAYSCALE)
    assert mask.shape == (70, 110) and (np.mean((mask > 0) == expected)) > 0.999  # TorchScript: the same network

    result = subprocess.run([*command[:6], "models:/sewer-segmentation-x@nope", *command[7:]], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: models:/sewer-segmentation-x@nope: no such model in the MLflow store"), result.stderr
    assert result.stderr.strip().endswith("(pass --tracking-uri with the MLflow store that holds it)")
