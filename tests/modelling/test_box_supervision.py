"""Box supervision: the three box losses, the per-box lists, and boxes through the training data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sewer_segmentation.data.annotations import YoloBox, yolo_box_mask
from sewer_segmentation.data.boxes import FrameBoxes, boxes_from_mask, frame_boxes, yolo_pixel_boxes
from sewer_segmentation.data.layouts import Annotations
from sewer_segmentation.data.samples import Sample, SegmentationDataset, build_augmentation, load_box_samples, max_boxes_of
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.modelling.box_losses import (
    BoxSupervisionLoss,
    background_loss,
    box_pixel_masks,
    fill_loss,
    pairwise_loss,
    projection_loss,
)


def frame_probs(height=24, width=32) -> torch.Tensor:
    return torch.zeros(1, 1, height, width)


BOX = torch.tensor([[[4.0, 3.0, 20.0, 15.0]]])  # x0, y0, x1, y1


# -- projection ---------------------------------------------------------------------------------------


def test_projection_is_zero_when_every_row_and_column_of_the_box_is_reached():
    probs = frame_probs()
    # a thin diagonal line across the box touches every row and every column
    for i in range(16):
        probs[0, 0, 3 + min(11, int(i * 12 / 16)), 4 + i] = 1.0
    assert float(projection_loss(probs, BOX)) == pytest.approx(0.0, abs=1e-6)


def test_projection_is_positive_when_a_row_of_the_box_is_empty():
    probs = frame_probs()
    probs[0, 0, 3:15, 4:20] = 1.0
    full = float(projection_loss(probs, BOX))
    probs[0, 0, 9, :] = 0.0
    assert full == pytest.approx(0.0, abs=1e-6) and float(projection_loss(probs, BOX)) > 0.01


def test_projection_is_computed_per_box_so_overlapping_boxes_do_not_merge():
    probs = frame_probs()
    probs[0, 0, 3:15, 4:12] = 1.0  # fills the left box only
    left_only = torch.tensor([[[4.0, 3.0, 12.0, 15.0], [0.0, 0.0, 0.0, 0.0]]])
    both = torch.tensor([[[4.0, 3.0, 12.0, 15.0], [8.0, 3.0, 20.0, 15.0]]])  # the second box overlaps the first
    assert float(projection_loss(probs, left_only)) == pytest.approx(0.0, abs=1e-6)
    # as one merged box [4, 20) the rows would all be reached; per box, the right box misses its columns 12..19
    assert float(projection_loss(probs, both)) > 0.05


def test_projection_gradient_flows_into_the_prediction():
    logits = torch.zeros(1, 1, 24, 32, requires_grad=True)
    projection_loss(torch.sigmoid(logits), BOX).backward()
    assert logits.grad is not None and float(logits.grad.abs().sum()) > 0


# -- background ----------------------------------------------------------------------------------------


def test_background_is_positive_when_the_prediction_leaks_outside_the_boxes():
    inside = box_pixel_masks(BOX, 24, 32).any(dim=1, keepdim=True)
    logits = torch.full((1, 1, 24, 32), -10.0)
    logits[0, 0, 3:15, 4:20] = 10.0
    tight = float(background_loss(logits, inside))
    logits[0, 0, 0:2, :] = 10.0  # leak above the box
    assert tight < 1e-3 and float(background_loss(logits, inside)) > 0.5


# -- pairwise ------------------------------------------------------------------------------------------


def two_colour_frame() -> tuple[torch.Tensor, torch.Tensor]:
    """LAB colours of a frame whose left half is dark and right half bright, and the box over all of it."""
    lab = torch.zeros(1, 3, 24, 32)
    lab[:, 0, :, 16:] = 80.0
    inside = torch.ones(1, 1, 24, 32, dtype=torch.bool)
    return lab, inside


def test_pairwise_prefers_a_colour_consistent_mask_to_a_noisy_one_of_the_same_area():
    lab, inside = two_colour_frame()
    consistent = torch.full((1, 1, 24, 32), -6.0)
    consistent[..., 16:] = 6.0  # the bright half, exactly
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(24 * 32, generator=generator)[: 24 * 16]
    noisy = torch.full((24 * 32,), -6.0)
    noisy[order] = 6.0
    noisy = noisy.view(1, 1, 24, 32)
    assert int((consistent > 0).sum()) == int((noisy > 0).sum())
    assert float(pairwise_loss(consistent, lab, inside)) < 0.1 < float(pairwise_loss(noisy, lab, inside))


def test_pairwise_ignores_pairs_across_a_colour_edge():
    lab, inside = two_colour_frame()
    split = torch.full((1, 1, 24, 32), -6.0)
    split[..., 16:] = 6.0
    # the label changes only where the colour does: no similar pair disagrees
    assert float(pairwise_loss(split, lab, inside, dilation=1)) < 0.01


def test_pairwise_charges_a_filled_box_on_a_thin_defect_through_the_pairs_that_cross_its_edge():
    # A dark 2 px line on a uniform wall, boxed with a margin of wall around it: filling the whole box
    # satisfies every pair inside the box, but not the wall pairs across its edge (outside is 0).
    lab = torch.full((1, 3, 32, 32), 60.0)
    lab[:, :, 8:24, 15:17] = 10.0
    inside = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    inside[..., 8:24, 10:22] = True
    background = torch.full((1, 1, 32, 32), -6.0)
    filled, line = background.clone(), background.clone()
    filled[..., 8:24, 10:22] = 6.0
    line[..., 8:24, 15:17] = 6.0
    assert float(pairwise_loss(line, lab, inside, dilation=1)) < 0.01 < float(pairwise_loss(filled, lab, inside, dilation=1))


# -- the combined loss ---------------------------------------------------------------------------------


def test_box_loss_skips_frames_that_are_not_box_supervised():
    loss = BoxSupervisionLoss()
    logits = torch.randn(2, 1, 24, 32)
    boxes = BOX.repeat(2, 1, 1)
    lab = torch.zeros(2, 3, 24, 32)
    none, terms = loss(logits, boxes, torch.tensor([0.0, 0.0]), lab)
    assert float(none) == 0.0 and terms == {}
    one, terms = loss(logits, boxes, torch.tensor([1.0, 0.0]), lab)
    assert float(one) > 0 and set(terms) == {"projection", "background", "pairwise"}  # fill: no measured range


def test_fill_is_zero_inside_the_measured_range_and_grows_outside_it():
    thin = frame_probs()
    thin[0, 0, 3:15, 10:12] = 1.0  # a 2 px line through the 16 x 12 box: 1/8 of it
    filled = frame_probs()
    filled[0, 0, 3:15, 4:20] = 1.0
    assert float(fill_loss(thin, BOX, 0.05, 0.3)) == 0.0
    assert float(fill_loss(filled, BOX, 0.05, 0.3)) == pytest.approx(0.7)  # the whole box, 0.7 above the range
    assert float(fill_loss(frame_probs(), BOX, 0.05, 0.3)) == pytest.approx(0.05)  # nothing in the box
    # a box a crop cut (one projection no longer holds) says nothing about how much of it is filled
    cut = torch.tensor([[[4.0, 3.0, 20.0, 15.0, 0.0, 1.0]]])
    assert float(fill_loss(filled, cut, 0.05, 0.3)) == 0.0


def test_the_fill_term_is_off_without_a_measured_range():
    args = (torch.randn(1, 1, 24, 32), BOX, torch.tensor([1.0]), torch.zeros(1, 3, 24, 32))
    assert "fill" not in BoxSupervisionLoss(fill=1.0)(*args)[1]
    assert "fill" in BoxSupervisionLoss(fill=1.0, fill_range=(0.05, 0.3))(*args)[1]


def vertical_lines() -> tuple[list[Sample], dict]:
    """Six hand-labelled samples at 20 x 20, each a vertical line of 1..6 px wide and 10..5 px long in one
    10 x 10 box (drawn on the 40 x 40 frame)."""
    samples, boxes = [], {}
    for i, width in enumerate((1, 2, 3, 4, 5, 6)):
        target = np.zeros((20, 20), np.float32)
        target[5 + i : 15, 5 : 5 + width] = 1.0
        samples.append(Sample(f"f{i}", np.zeros((20, 20, 3), np.uint8), target))
        boxes[f"f{i}"] = FrameBoxes(np.array([[10, 10, 30, 30]]), 40, 40)  # a box of the full 40 x 40 frame: 5..15 at 20 x 20
    return samples, boxes


def test_the_fill_range_and_projection_coverage_are_measured_on_the_hand_drawn_masks_of_the_boxes():
    from sewer_segmentation.modelling.plan import box_shares, with_measured_box_priors

    samples, boxes = vertical_lines()
    shares = box_shares(samples, boxes)
    assert shares[:, 0] == pytest.approx([0.1, 0.18, 0.24, 0.28, 0.3, 0.3])  # pixels
    assert shares[:, 1] == pytest.approx([1.0, 0.9, 0.8, 0.7, 0.6, 0.5])  # rows
    assert shares[:, 2] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])  # columns
    training = {"box_loss": {"fill": 1.0, "fill_range": None, "fill_quantiles": (0.0, 1.0), "projection": 1.0,
                             "projection_coverage": None, "projection_quantile": 0.5}}  # fmt: skip
    measured = with_measured_box_priors(training, samples, boxes, "round_1")["box_loss"]
    assert measured["fill_range"] == pytest.approx([0.1, 0.3])
    assert measured["projection_coverage"] == pytest.approx(0.55)  # the median of rows and columns together
    given = {"box_loss": {"fill": 1.0, "fill_range": (0.1, 0.2), "projection": 1.0, "projection_coverage": 0.9}}
    assert with_measured_box_priors(given, samples, boxes, "round_1") is given  # what the user set stays
    off = {"box_loss": {"fill": 0.0, "projection": 0.0}}
    assert with_measured_box_priors(off, samples, boxes, "round_1") is off  # nothing to measure for terms that are off
    assert with_measured_box_priors(training, samples[:2], boxes, "round_1") is training  # too few boxes: left unset


def test_the_holdout_reach_reuses_the_coverage_measured_for_the_loss_and_measures_it_where_the_loss_did_not(monkeypatch):
    from sewer_segmentation.data import boxes as boxes_module
    from sewer_segmentation.modelling import plan

    samples, boxes = vertical_lines()
    monkeypatch.setattr(boxes_module, "frame_boxes", lambda *_args: boxes)
    monkeypatch.setattr(plan, "holdout_boxes", lambda *_args: {})
    unset = {"box_loss": {"projection": 0.0, "projection_coverage": None, "projection_quantile": 0.5}}  # e.g. weak_targets refined
    assert plan.weak_holdout_scoring({}, None, None, samples, unset)["box_reach"] == pytest.approx(0.55)
    assert plan.weak_holdout_scoring({}, None, None, samples[:2], unset)["box_reach"] == 1.0  # too few boxes: taken to be tight

    def never(*_args):
        raise AssertionError("the boxes were measured a second time")

    monkeypatch.setattr(plan, "box_shares", never)
    assert plan.weak_holdout_scoring({}, None, None, samples, {"box_loss": {"projection_coverage": 0.55}})["box_reach"] == 0.55


def test_a_box_no_polygon_reaches_is_false_not_loose_and_leaves_the_coverage_alone():
    from sewer_segmentation.modelling.plan import measured_reach

    holding = np.array([[0.2, 0.8, 0.9]] * 5)
    false_boxes = np.zeros((3, 3))
    low = {"projection_quantile": 0.1}
    assert measured_reach(np.vstack([holding, false_boxes]), low) == measured_reach(holding, low) == pytest.approx(0.8)
    assert measured_reach(holding, {}) == pytest.approx(0.85)  # the median of rows and columns by default
    assert measured_reach(np.vstack([holding[:4], false_boxes]), {}) is None  # too few boxes hold a defect
    assert measured_reach(false_boxes, {"projection_coverage": 0.6}) == 0.6  # what the user set wins


def test_a_faint_prediction_over_every_row_does_not_meet_a_lower_coverage():
    faint = frame_probs()
    faint[0, 0, 3:15, 4:20] = 0.4  # below the mask threshold everywhere: no defect drawn
    assert float(projection_loss(faint, BOX, coverage=0.5)) > 0.2


def test_too_few_boxes_holding_a_defect_leave_the_projection_asking_for_every_row(caplog):
    from sewer_segmentation.modelling.plan import with_measured_box_priors

    samples, boxes = [], {}
    for i in range(6):  # six boxes, only the first two of which hold the hand-drawn line
        target = np.zeros((20, 20), np.float32)
        target[5:15, 6:8] = 1.0 if i < 2 else 0.0
        samples.append(Sample(f"f{i}", np.zeros((20, 20, 3), np.uint8), target))
        boxes[f"f{i}"] = FrameBoxes(np.array([[5, 5, 15, 15]]), 20, 20)
    training = {"box_loss": {"fill": 1.0, "fill_range": None, "projection": 1.0, "projection_coverage": None}}
    measured = with_measured_box_priors(training, samples, boxes, "round_1")["box_loss"]
    assert measured["projection_coverage"] is None and measured["fill_range"] is not None
    assert "only 2 of 6 boxes on hand-labelled frames hold a hand-drawn defect" in caplog.text


def test_projection_asks_loose_boxes_only_for_the_measured_coverage():
    half = frame_probs()
    half[0, 0, 3:9, 4:20] = 1.0  # every column of the 16 x 12 box, half of its rows
    assert float(projection_loss(half, BOX, eps=0.0)) > 0.1  # a tight box's prior: every row
    assert float(projection_loss(half, BOX, eps=0.0, coverage=0.5)) == pytest.approx(0.0, abs=1e-6)
    quarter = frame_probs()
    quarter[0, 0, 3:6, 4:20] = 1.0
    assert float(projection_loss(quarter, BOX, eps=0.0, coverage=0.5)) > 0.05  # fewer rows than measured still cost
    assert float(projection_loss(frame_probs(), BOX, coverage=0.5)) > float(projection_loss(quarter, BOX, coverage=0.5))


def test_an_unmeasured_coverage_takes_boxes_to_be_tight():
    probs = frame_probs()
    probs[0, 0, 3:9, 4:20] = 1.0
    logits = torch.logit(probs.clamp(1e-4, 1 - 1e-4))
    args = (logits, BOX, torch.tensor([1.0]), torch.zeros(1, 3, 24, 32))
    tight = BoxSupervisionLoss(background=0.0, pairwise=0.0)(*args)[1]["projection"]
    assert tight == pytest.approx(float(projection_loss(probs, BOX)), abs=1e-3) and tight > 0.1
    assert BoxSupervisionLoss(background=0.0, pairwise=0.0, projection_coverage=0.5)(*args)[1]["projection"] < 0.01


def test_a_zero_weight_turns_a_term_off():
    loss = BoxSupervisionLoss(pairwise=0.0, background=0.0)
    _, terms = loss(torch.randn(1, 1, 24, 32), BOX, torch.tensor([1.0]), torch.zeros(1, 3, 24, 32))
    assert set(terms) == {"projection"}


def test_unknown_box_loss_keys_are_refused_with_the_nearest_name():
    from sewer_segmentation.params import TrainingParams, problems_of

    lines = problems_of("baseline_training.training", TrainingParams, {"box_loss": {"projektion": 1.0}})
    assert lines == ["baseline_training.training.box_loss.projektion: no such parameter (did you mean projection?)"]


# -- per-box lists -------------------------------------------------------------------------------------


def test_mask_components_become_one_box_each():
    mask = np.zeros((40, 60), np.uint8)
    mask[5:15, 10:30] = 255
    mask[20:35, 40:55] = 255
    assert sorted(map(tuple, boxes_from_mask(mask).tolist())) == [(10, 5, 30, 15), (40, 20, 55, 35)]
    assert boxes_from_mask(np.zeros((8, 8), np.uint8)).shape == (0, 4)


def test_overlapping_yolo_boxes_stay_apart_and_match_the_drawn_box_mask():
    boxes = [YoloBox(0, 0.3, 0.5, 0.4, 0.5), YoloBox(0, 0.45, 0.5, 0.4, 0.3)]  # the second overlaps the first
    pixel = yolo_pixel_boxes(boxes, 100, 200)
    assert len(pixel) == 2  # a box mask would have merged them into one component
    drawn = np.zeros((100, 200), np.uint8)
    for x0, y0, x1, y1 in pixel:
        drawn[y0:y1, x0:x1] = 255
    assert np.array_equal(drawn, yolo_box_mask(boxes, 100, 200))


def test_yolo_boxes_outside_the_frame_are_clipped_or_dropped():
    pixel = yolo_pixel_boxes([YoloBox(0, 0.95, 0.5, 0.3, 0.2), YoloBox(0, 1.5, 0.5, 0.2, 0.2)], 100, 100)
    assert pixel.tolist() == [[80, 40, 100, 60]]


def test_frame_boxes_gives_frames_without_rows_no_boxes_and_refuses_boxes_off_the_frame():
    manifest = pd.DataFrame({"image_id": ["001", "002"], "height": [40, 40], "width": [60, 60]})
    table = pd.DataFrame({"image_id": ["001"], "x0": [1], "y0": [2], "x1": [10], "y1": [12], "class": [""]})
    boxes = frame_boxes(table, manifest, ["001", "002"])
    assert boxes["001"].boxes.tolist() == [[1, 2, 10, 12]] and boxes["002"].boxes.shape == (0, 4)
    with pytest.raises(BadInputError, match="001 lies outside its 60x40 frame"):
        frame_boxes(table.assign(x1=[61]), manifest, ["001"])
    with pytest.raises(BadInputError, match="003 is not in the split manifest"):
        frame_boxes(table, manifest, ["003"])


# -- boxes through the training data -------------------------------------------------------------------


def test_box_samples_scale_boxes_to_the_training_size_and_carry_no_mask_target():
    image = np.zeros((40, 80, 3), np.uint8)
    samples = load_box_samples({"a": lambda: image}, {"a": FrameBoxes(np.array([[8, 4, 40, 20]]), 40, 80)}, 20, 40)
    (sample,) = samples
    assert sample.box_supervised and sample.boxes.tolist() == [[4.0, 2.0, 20.0, 10.0]]
    assert sample.target.shape == (20, 40) and not sample.weight.any()  # weight 0: the mask losses skip it
    with pytest.raises(BadInputError, match="no box list for b"):
        load_box_samples({"b": lambda: image}, {}, 20, 40)


def test_boxes_move_with_the_image_under_augmentation():
    image = np.zeros((32, 64, 3), np.uint8)
    image[8:16, 4:20] = 255
    sample = Sample("a", image, np.zeros((32, 64), np.float32), np.zeros((32, 64), np.float32), np.array([[4.0, 8.0, 20.0, 16.0]]), True)
    flip = build_augmentation({"hflip": 1.0}, seed=0, with_boxes=True)
    dataset = SegmentationDataset([sample, Sample("b", image, np.ones((32, 64), np.float32))], (0, 0, 0), (1, 1, 1), flip,
                                  max_boxes=max_boxes_of([sample]))  # fmt: skip
    flipped, _, _, boxes, supervised, lab = dataset[0]
    assert boxes.tolist() == [[44.0, 8.0, 60.0, 16.0]] and float(supervised) == 1.0
    assert float(flipped[0, 8:16, 44:60].min()) == 1.0 and float(flipped[0].sum()) == 8 * 16  # the bright patch went with the box
    assert lab.shape == (3, 32, 64) and float(lab[0, 10, 50]) == pytest.approx(100.0, abs=0.5)
    _, _, _, none, labelled, _ = dataset[1]
    assert float(labelled) == 0.0 and not none.any()


@pytest.mark.parametrize("value", [-1.0, "abc", float("inf")])
def test_a_negative_or_non_numeric_box_loss_weight_is_refused_before_training(value):
    from sewer_segmentation.params import TrainingParams, problems_of

    (line,) = problems_of("baseline_training.training", TrainingParams, {"box_loss": {"pairwise": value}})
    assert line.startswith(f"baseline_training.training.box_loss.pairwise={value!r}: Input should be")


@pytest.mark.parametrize(("key", "value"), [("projection_coverage", 0.0), ("projection_coverage", 1.1), ("projection_quantile", 1.5)])
def test_a_coverage_or_quantile_outside_its_range_is_refused_before_training(key, value):
    from sewer_segmentation.params import TrainingParams, problems_of

    (line,) = problems_of("baseline_training.training", TrainingParams, {"box_loss": {key: value}})
    assert line.startswith(f"baseline_training.training.box_loss.{key}={value!r}: Input should be")


def test_box_lists_survive_yolo_and_box_mask_ingestion_with_overlapping_boxes():
    from sewer_segmentation.pipelines.data_engineering.nodes import extract_box_lists

    manifest = pd.DataFrame({"image_id": ["yolo_frame", "mask_frame"], "height": [100, 40], "width": [200, 60]})
    overlapping = [YoloBox(2, 0.3, 0.5, 0.4, 0.5), YoloBox(5, 0.45, 0.5, 0.4, 0.3), YoloBox(5, 1.5, 0.5, 0.1, 0.1)]  # the last is off the frame
    mask = np.zeros((40, 60), np.uint8)
    mask[5:15, 10:30] = 255
    mask[20:35, 40:55] = 255
    annotations = Annotations(boxes={"yolo_frame": overlapping}, box_class_names={2: "Rupture", 5: "Deposition"})
    table = extract_box_lists(manifest, {"mask_frame.png": lambda: mask}, annotations)
    yolo = table[table.image_id == "yolo_frame"]
    assert yolo[["x0", "y0", "x1", "y1"]].values.tolist() == [[20, 25, 100, 75], [50, 35, 130, 65]]  # two boxes, not one merged
    assert yolo["class"].tolist() == ["Rupture", "Deposition"]  # the clipped-away box took its class with it
    from_mask = table[table.image_id == "mask_frame"]
    assert sorted(from_mask[["x0", "y0", "x1", "y1"]].values.tolist()) == [[10, 5, 30, 15], [40, 20, 55, 35]]
    boxes = frame_boxes(table, manifest, ["yolo_frame", "mask_frame"])
    assert len(boxes["yolo_frame"].boxes) == 2 and (boxes["yolo_frame"].height, boxes["yolo_frame"].width) == (100, 200)


def test_a_missing_box_list_names_the_command_that_writes_it(tmp_path):
    from kedro.io.core import DatasetError

    from sewer_segmentation.cli import _find_user_error
    from sewer_segmentation.datasets import CSVFileDataset
    from sewer_segmentation.errors import MissingArtifactError

    with pytest.raises(DatasetError) as caught:
        CSVFileDataset(str(tmp_path / "box_lists.csv"), missing_hint="kedro run --pipeline=data_engineering").load()
    user_error = _find_user_error(caught.value)  # what the project CLI prints, as one line
    assert isinstance(user_error, MissingArtifactError)
    assert "box_lists.csv does not exist. Run `kedro run --pipeline=data_engineering` first" in str(user_error)


def test_measured_coverage_tells_the_loose_regime_from_tight_crack_boxes():
    from sewer_segmentation.data.synthetic import config_for_regime, draw_frame
    from sewer_segmentation.modelling.plan import box_shares, measured_reach

    coverage, filled = {}, {}
    for regime in ("crack", "loose"):
        config = config_for_regime(regime, width=160, height=128, seed=1)
        frames = [draw_frame(config, i) for i in range(30)]
        samples = [Sample(f.name, f.image, (f.truth > 0).astype(np.float32)) for f in frames]
        boxes = {f.name: FrameBoxes(np.array(f.boxes), 128, 160) for f in frames}
        coverage[regime] = measured_reach(box_shares(samples, boxes), {"projection_quantile": 0.1})
        filled[regime] = np.mean([(f.truth > 0)[y0:y1, x0:x1].sum() / ((x1 - x0) * (y1 - y0)) for f in frames for x0, y0, x1, y1 in f.boxes])
    assert coverage["crack"] > 0.75 and coverage["loose"] < 0.6  # tight boxes ask for nearly every row and column; loose ones do not
    # the same frames and defects, only the boxes differ (default boxes are drawn as before the option existed)
    crack, loose = (config_for_regime(regime, width=160, height=128, seed=1) for regime in ("crack", "loose"))
    for i in range(5):
        a, b = draw_frame(crack, i), draw_frame(loose, i)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.truth, b.truth) and len(a.boxes) == len(b.boxes)
    assert filled["loose"] < 0.7 * filled["crack"]  # the share of a box the defect fills
