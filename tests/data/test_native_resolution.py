"""image_size.mode native: crops at the frame's own scale for training, overlapping tiles for prediction."""

import itertools

import numpy as np
import pytest
import torch

from sewer_segmentation.data.boxes import FrameBoxes
from sewer_segmentation.data.samples import (
    FrameSize,
    Sample,
    SegmentationDataset,
    build_augmentation,
    frame_size,
    load_box_samples,
    projection_flags,
)
from sewer_segmentation.modelling.box_losses import projection_loss
from sewer_segmentation.modelling.inference import TrainedModel, predict_frames, predict_probabilities
from sewer_segmentation.modelling.models import build_model
from sewer_segmentation.modelling.tiling import edge_window, pad_frame, predict_tiled, tile_origins
from sewer_segmentation.modelling.training import train_model

MODEL = {"architecture": "Unet", "encoder_name": "resnet18", "encoder_weights": None, "args": {"decoder_channels": [16, 16, 8, 8, 8]}}
NATIVE = {"height": 64, "width": 96, "mode": "native", "tile": {"overlap": 32}}


def small_receptive_field_model() -> torch.nn.Module:
    """Two 3x3 convolutions: each output pixel sees 2 pixels around it, well inside a quarter of the overlap."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3, padding=1)).eval()


@pytest.mark.parametrize(("length", "tile", "overlap"), [(64, 64, 32), (200, 64, 32), (96, 64, 0), (1000, 256, 64)])
def test_tiles_cover_the_axis_and_end_flush_with_it(length, tile, overlap):
    origins = tile_origins(length, tile, overlap)
    assert origins[0] == 0 and origins[-1] + tile == length
    assert all(b - a <= tile - overlap for a, b in itertools.pairwise(origins))


def test_a_frame_that_fits_in_one_tile_predicts_exactly_as_untiled():
    model = build_model(MODEL).eval()
    frame = torch.randn(3, 64, 96)
    with torch.no_grad():
        assert torch.equal(predict_tiled(model, frame, 64, 96, 32), model(frame[None])[0])
        small = torch.randn(3, 40, 50)  # smaller than a tile: padded, predicted once, cropped back
        expected = model(pad_frame(small, 64, 96)[None])[0, :, :40, :50]
        assert torch.equal(predict_tiled(model, small, 64, 96, 32), expected)


@pytest.mark.parametrize("shape", [(300, 451), (128, 1000), (97, 97)])
def test_stitched_tiles_match_the_whole_frame_for_a_small_receptive_field(shape):
    model = small_receptive_field_model()
    frame = torch.randn(3, *shape)
    with torch.no_grad():
        whole = model(frame[None])[0]
        tiled = predict_tiled(model, frame, 64, 96, 32, batch_size=5)
    assert tiled.shape == whole.shape
    interior = (slice(None), slice(4, shape[0] - 4), slice(4, shape[1] - 4))  # the frame's own edges are padded differently
    assert float((tiled - whole)[interior].abs().mean()) < 1e-4
    assert float((tiled - whole)[interior].abs().max()) < 1e-4


def test_blending_reproduces_any_map_and_batches_bound_memory():
    """An identity 'model' comes back unchanged through the windows, for a 4K frame too; no call sees
    more tiles than the batch."""
    batches = []

    def identity(tiles):
        batches.append(len(tiles))
        return tiles[:, :1]

    frame = torch.rand(3, 2160, 3840)
    out = predict_tiled(identity, frame, 256, 256, 64, batch_size=16)
    assert torch.allclose(out, frame[:1], atol=1e-5)
    assert max(batches) == 16 and sum(batches) == len(tile_origins(2160, 256, 64)) * len(tile_origins(3840, 256, 64))


def test_edge_windows_vanish_next_to_a_shared_edge_and_stay_one_at_the_frame_edge():
    window = edge_window(128, 64, ramp_start=True, ramp_end=False)
    assert float(window[:16].max()) == 0 and float(window[48:].min()) == 1
    assert float(edge_window(128, 64, False, False).min()) == 1


def test_frame_size_reads_and_checks_the_parameters():
    size = frame_size(NATIVE)
    assert size == FrameSize(64, 96, "native", 0.5, 32) and size.resize == (None, None)
    assert frame_size({"height": 64, "width": 64}).resize == (64, 64)
    from pydantic import ValidationError

    from sewer_segmentation.params import ImageSizeParams

    assert frame_size(ImageSizeParams.model_validate(NATIVE)) == size
    for bad, message in [({**NATIVE, "mode": "tiles"}, "'resize' or 'native'"), ({**NATIVE, "tile": {"overlap": 48}}, "multiple of 32"),
                         ({**NATIVE, "tile": {"overlap": 64}}, "below the tile size"), ({**NATIVE, "crop": {"box_bias": 2}}, "less than or equal to 1"),
                         ({"height": 60, "width": 64}, "multiple of 32")]:  # fmt: skip
        with pytest.raises(ValidationError, match=message):
            ImageSizeParams.model_validate(bad)


def _frame(seed: int, h: int = 192, w: int = 288) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    target = np.zeros((h, w), np.float32)
    y, x = rng.integers(10, h - 30), rng.integers(10, w - 30)
    image[y : y + 12, x : x + 12] = 220
    target[y : y + 12, x : x + 12] = 1
    return image, target


def test_crops_with_box_bias_one_always_hold_the_defect():
    image, target = _frame(1)
    size = frame_size({**NATIVE, "crop": {"box_bias": 1.0}})
    dataset = SegmentationDataset([Sample("a", image, target)], (0.5,) * 3, (0.25,) * 3, build_augmentation(None, 0, crop=size), crops=True)
    for _ in range(20):
        x, y, w = dataset[0]
        assert x.shape == (3, 64, 96) and y.sum() > 0 and bool((w == 1).all())


def test_box_supervised_crops_centre_on_boxes_and_flag_cut_boxes():
    image, _ = _frame(2)
    boxes = {"a": FrameBoxes(np.array([[150, 100, 170, 112]]), 192, 288)}
    samples = load_box_samples({"a": lambda: image}, boxes, None, None)
    assert samples[0].image.shape == (192, 288, 3) and samples[0].boxes.tolist() == [[150, 100, 170, 112]]
    size = frame_size({**NATIVE, "crop": {"box_bias": 1.0}})
    dataset = SegmentationDataset(samples, (0.5,) * 3, (0.25,) * 3, build_augmentation(None, 0, with_boxes=True, crop=size), max_boxes=2, crops=True)
    for _ in range(20):
        _, _, _, crop_boxes, supervised, lab = dataset[0]
        assert crop_boxes.shape == (2, 6) and float(supervised) == 1 and lab.shape == (3, 64, 96)
        x0, y0, x1, y1, rows_hold, columns_hold = crop_boxes[0].tolist()
        assert x1 > x0 and y1 > y0  # the box is in the crop
        assert rows_hold == float(x0 > 0.5 and x1 < 95.5) and columns_hold == float(y0 > 0.5 and y1 < 63.5)


def test_a_box_cut_by_the_crop_keeps_only_the_projection_that_still_holds():
    flags = projection_flags(np.array([[0, 10, 20, 30], [5, 10, 20, 64], [5, 10, 20, 30]], np.float32), 64, 96)
    assert flags.tolist() == [[0, 1], [1, 0], [1, 1]]
    # A diagonal crack cut at the box's left edge: its rows inside the crop are not all crossed, its columns are.
    probs = torch.zeros(1, 1, 32, 32)
    for i in range(16):
        probs[0, 0, 16 + i, i] = 1  # the crop shows the lower half of the crack (x 0..15, y 16..31)
    whole = torch.tensor([[[0.0, 0, 16, 32]]])  # the box as cut: x0=0 edge
    assert float(projection_loss(probs, whole)) > 0.1  # both projections: the upper rows look empty
    cut = torch.tensor([[[0.0, 0, 16, 32, 0, 1]]])  # rows no longer hold: only the columns count
    assert float(projection_loss(probs, cut)) < 1e-6


def test_native_training_predicts_frames_of_any_size(tmp_path):
    train = [Sample(f"t{i}", *_frame(i)) for i in range(6)]
    val = [Sample("v0", *_frame(10, 150, 200)), Sample("v1", *_frame(11, 256, 320))]  # sizes differ: one frame per batch
    training = {"steps": 6, "validations": 2, "batch_size": 4, "learning_rate": 0.01, "loss": {"name": "dice"}, "precision": "32",
                "accelerator": "cpu", "devices": 1, "progress_bar": False, "augmentation": {"hflip": 0.5}}  # fmt: skip
    trained = train_model(train, val, MODEL, training, NATIVE, 0, "native", tmp_path)
    assert trained.image_size == {"height": 64, "width": 96, "mode": "native", "tile": {"overlap": 32}}
    assert len(trained.metadata["history"]["val"]) == 2
    frames = [_frame(20, 100, 130)[0], _frame(21, 600, 900)[0]]
    probs = predict_probabilities(trained.model, frames, MODEL, trained.image_size, batch_size=4, precision="32", accelerator="cpu")
    assert [p.shape for p in probs] == [(100, 130), (600, 900)]
    assert all(0 <= p.min() and p.max() <= 1 for p in probs)
    # the batched-prediction loop (eval, refinement, predict) takes the same path
    predictions = list(predict_frames(trained, {"a": lambda: frames[1]}, {"batch_size": 3, "precision": "32"}))
    assert np.allclose(predictions[0].probability, probs[1], atol=1e-6)


def test_tiled_prediction_of_a_native_model_matches_the_whole_frame_where_tiles_agree():
    """A real UNet has a receptive field far wider than the overlap, so tiles and the whole frame differ
    a little near seams; the blend keeps that small (a regression guard for the windows)."""
    model = build_model(MODEL).eval()
    frame = np.random.default_rng(0).integers(0, 255, (256, 384, 3), dtype=np.uint8)
    trained = TrainedModel(model, MODEL, NATIVE)
    tiled = predict_probabilities(trained.model, [frame], MODEL, NATIVE, precision="32", accelerator="cpu")[0]
    whole = predict_probabilities(trained.model, [frame], MODEL, {"height": 256, "width": 384}, precision="32", accelerator="cpu")[0]
    assert float(np.abs(tiled - whole).mean()) < 0.05


NATIVE_PYFUNC_SCRIPT = """
import sys
sys.modules["sewer_segmentation"] = None  # importing any project code would fail
import mlflow, numpy as np
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
np.save(sys.argv[4], model.predict(np.load(sys.argv[3])[None]))
"""


def test_the_mlflow_model_of_a_native_model_predicts_by_tiles_without_project_code(tmp_path):
    import subprocess
    import sys

    import mlflow

    from sewer_segmentation.tracking.registry import log_pyfunc_model

    torch.manual_seed(0)
    trained = TrainedModel(build_model(MODEL).eval(), MODEL, NATIVE)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        # an experiment of this store: an earlier test may have left another store's experiment selected
        with mlflow.start_run(experiment_id=mlflow.create_experiment("native-pyfunc")):
            info = log_pyfunc_model(trained, "model", None, {})
    finally:
        mlflow.set_tracking_uri(before)
    frame = np.random.default_rng(3).integers(0, 255, (150, 250, 3), dtype=np.uint8)  # three tiles wide, three high
    np.save(tmp_path / "frame.npy", frame)
    result = subprocess.run([sys.executable, "-c", NATIVE_PYFUNC_SCRIPT, uri, info.model_uri, str(tmp_path / "frame.npy"), str(tmp_path / "out.npy")],
                            cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    served = np.load(tmp_path / "out.npy")
    expected = predict_probabilities(trained.model, [frame], MODEL, NATIVE, precision="32", accelerator="cpu")[0]
    assert served.shape == (1, 150, 250)
    assert np.abs(served[0] - expected).max() < 1e-4


def test_resizing_frames_far_larger_than_the_training_size_is_warned_about():
    from sewer_segmentation.data.samples import downscale_warning

    demo = frame_size({"height": 128, "width": 160})
    warning = downscale_warning([576, 576, 480], [704, 704, 640], demo)
    assert warning and "704x576 (median)" in warning and "4.5x down to 160x128" in warning and "image_size.mode=native" in warning
    assert downscale_warning([240] * 3, [320] * 3, demo) is None  # the demo: 2x
    assert downscale_warning([576], [704], frame_size(NATIVE)) is None
