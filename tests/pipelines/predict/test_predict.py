"""The predict pipeline's node on an in-memory folder of frames."""

import numpy as np

from sewer_segmentation.modelling.inference import TrainedModel
from sewer_segmentation.modelling.models import build_model
from sewer_segmentation.params import PredictParams
from sewer_segmentation.pipelines.predict.nodes import predict_folder

MODEL = {"architecture": "Unet", "encoder_name": "resnet18", "encoder_weights": None, "args": {"decoder_channels": [16, 16, 8, 8, 8]}}


def test_frames_with_the_same_name_never_overwrite_each_other():
    trained = TrainedModel(build_model(MODEL).eval(), MODEL, {"height": 64, "width": 64})
    rng = np.random.default_rng(0)
    frames = {name: (lambda s=size: rng.integers(0, 255, (*s, 3), dtype=np.uint8))
              for name, size in (("same.jpg", (40, 50)), ("same.png", (60, 30)), ("other.png", (64, 64)), ("notes.txt", (1, 1)),
                                 ("sub/a.jpg", (32, 32)), ("sub__a.jpg", (33, 33)))}  # fmt: skip
    masks, overlays, table = predict_folder(trained, frames, PredictParams(precision="32", batch_size=2, models_root="unused"))
    # sub/a.jpg and sub__a.jpg share even "sub__a.jpg": a hash of each path keeps them apart
    assert set(masks) == set(overlays) and len(masks) == 5
    assert {"same.jpg", "same.png", "other"} <= set(masks) and sorted(m.shape for k, m in masks.items() if k.startswith("sub__a.jpg-")) == [(32, 32), (33, 33)]
    assert masks["same.jpg"].shape == (40, 50) and masks["same.png"].shape == (60, 30)
    status = table.set_index("image").status
    assert (status[["same.jpg", "same.png", "other.png"]] == "ok").all() and status["notes.txt"].startswith("ignored")


def test_a_model_is_chosen_by_stage_name_round_number_or_best(tmp_path):
    from sewer_segmentation.datasets import SegmentationModelDataset  # noqa: PLC0415
    from sewer_segmentation.pipelines.predict.nodes import load_chosen_model  # noqa: PLC0415

    for stage, score in (("baseline", 0.5), ("round_1", 0.7), ("round_2", 0.6)):
        SegmentationModelDataset(path=str(tmp_path / stage)).save(
            TrainedModel(build_model(MODEL).eval(), MODEL, {"height": 64, "width": 64}, {"stage": stage, "best_validation_score": score}))
    chosen = {choice: load_chosen_model(choice, str(tmp_path)).metadata["stage"] for choice in ("baseline", "1", "round_2", "best")}
    assert chosen == {"baseline": "baseline", "1": "round_1", "round_2": "round_2", "best": "round_2"}  # the newest stage


def test_two_folders_of_frames_predicted_by_one_model_get_two_output_folders(tmp_path):
    from tests.conftest import new_project, project_catalog

    project = new_project(tmp_path / "project")
    paths = set()
    for folder in ("survey_a/frames", "survey_b/frames"):
        catalog = project_catalog(project, dataset="tiny", predict_model="baseline", inference_folder=str(tmp_path / folder))
        paths.add(catalog.get("prediction_masks")._root)
    assert len(paths) == 2 and all("/predictions/baseline/frames-" in p for p in paths)
