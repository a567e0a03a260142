import numpy as np
import pytest

from sewer_segmentation.imaging import mask_iou, to_uint8
from sewer_segmentation.refinement import grabcut_mask, refine_mask, refine_pool
from sewer_segmentation.synthetic import SyntheticConfig, box_mask, draw_frame


@pytest.fixture
def box():
    b = np.zeros((20, 20), np.uint8)
    b[5:15, 5:15] = 255
    return b


def test_seed_rule_matches_the_original(box):
    prob = np.zeros((20, 20), np.float32)
    prob[6:10, 6:10] = 0.9  # confident inside the box
    prob[0:3, 0:3] = 0.9  # confident outside the box: must be dropped
    prob[12, 12] = 0.7  # below the 0.75 threshold
    mask, weight = refine_mask(prob, box, "seed")
    assert mask[7, 7] == pytest.approx(1.0)
    assert mask[12, 12] == pytest.approx(0.3) and mask[14, 14] == pytest.approx(0.3)
    assert mask[1, 1] == 0 and (weight == 1).all()
    assert set(np.unique(to_uint8(mask))) == {0, 76, 255}


def test_box_prior_keeps_probability_inside_and_weights_uncertainty(box):
    prob = np.full((20, 20), 0.5, np.float32)
    prob[6:10, 6:10] = 0.95
    prob[0:3, 0:3] = 0.99
    mask, weight = refine_mask(prob, box, "box_prior", {"min_weight": 0.1})
    assert mask[7, 7] == pytest.approx(0.95) and mask[1, 1] == 0
    assert weight[1, 1] == 1.0  # outside boxes: confident background
    assert weight[12, 12] == pytest.approx(0.1)  # p = 0.5 inside the box: barely counts
    assert weight[7, 7] == pytest.approx(0.9)


def test_box_prior_keeps_a_soft_box_when_the_model_sees_nothing(box):
    mask, weight = refine_mask(np.zeros((20, 20), np.float32), box, "box_prior", {"empty_box_value": 0.3})
    assert mask[10, 10] == pytest.approx(0.3) and weight[10, 10] == pytest.approx(0.1)
    assert mask[0, 0] == 0


def test_grabcut_recovers_the_defect_shape_inside_its_box():
    frame = draw_frame(SyntheticConfig(width=320, height=240, seed=5), 4)
    boxes = box_mask(frame.boxes, frame.truth.shape)
    cut = grabcut_mask(frame.image, boxes)
    assert cut is not None
    assert mask_iou(to_uint8(cut), frame.truth) > mask_iou(boxes, frame.truth) + 0.1
    assert not cut[boxes == 0].any()  # never outside the box
    mask, weight = refine_mask(np.full(frame.truth.shape, 0.5, np.float32), boxes, "grabcut", image=frame.image)
    assert mask.max() <= 1 and weight.min() >= 0.1


def test_grabcut_falls_back_when_it_cannot_run():
    box = np.full((10, 10), 255, np.uint8)  # the whole frame: no background to learn from
    assert grabcut_mask(np.zeros((10, 10, 3), np.uint8), box) is None
    prob = np.full((10, 10), 0.8, np.float32)
    mask, _ = refine_mask(prob, box, "grabcut", image=np.zeros((10, 10, 3), np.uint8))
    assert mask[5, 5] == pytest.approx(0.8)


def test_errors(box):
    with pytest.raises(ValueError, match="unknown refinement method"):
        refine_mask(np.zeros((20, 20)), box, "magic")
    with pytest.raises(ValueError, match="differ in size"):
        refine_mask(np.zeros((10, 10)), box, "seed")
    with pytest.raises(ValueError, match="needs the frame"):
        refine_mask(np.zeros((20, 20)), box, "grabcut")


def test_grabcut_result_does_not_depend_on_what_ran_before():
    frame = draw_frame(SyntheticConfig(width=160, height=120, seed=9), 2)
    boxes = box_mask(frame.boxes, frame.truth.shape)
    first = grabcut_mask(frame.image, boxes)
    other = draw_frame(SyntheticConfig(width=160, height=120, seed=9), 3)
    grabcut_mask(other.image, box_mask(other.boxes, other.truth.shape))
    assert np.array_equal(first, grabcut_mask(frame.image, boxes))


def test_refine_pool_matches_refine_mask_frame_by_frame(box):
    prob = np.full((20, 20), 200, np.uint8)
    pool = refine_pool({"a": prob}, {}, {"a": lambda: box}, "box_prior", {"min_weight": 0.1})
    mask, weight = refine_mask(prob.astype(np.float32) / 255.0, box, "box_prior", {"min_weight": 0.1})
    assert np.array_equal(pool["a"][0], to_uint8(mask)) and np.array_equal(pool["a"][1], to_uint8(weight))
