import numpy as np
import pytest

from sewer_segmentation.data.synthetic import SyntheticConfig, box_mask, draw_frame
from sewer_segmentation.io.imaging import mask_iou, to_uint8
from sewer_segmentation.refinement.grabcut import grabcut_mask
from sewer_segmentation.refinement.methods import refine_mask, refine_pool


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


def test_threshold_method_keeps_thin_shapes_and_ignores_empty_boxes():
    box = np.zeros((30, 30), np.uint8)
    box[2:12, 2:28] = 255  # a box around a thin crack
    box[20:28, 5:15] = 255  # a box where the model sees nothing
    prob = np.full((30, 30), 0.05, np.float32)
    prob[6, 4:26] = 0.9  # the crack: one pixel wide
    prob[7, 4:26] = 0.45  # just under the threshold: a low weight, not a confident 0
    prob[0, 0] = 0.99  # outside every box: never a defect
    mask, weight = refine_mask(prob, box, "threshold", {"threshold": 0.5, "band": 0.2, "min_weight": 0.1})
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert mask[6, 4:26].all() and not mask[7].any() and mask[0, 0] == 0
    assert int(mask.sum()) == 22  # as thin as the crack, not as wide as the box
    assert weight[7, 10] == pytest.approx(0.25) and weight[6, 10] == 1.0 and weight[0, 0] == 1.0
    assert (weight[20:28, 5:15] == 0).all()  # the empty box is ignored, not taught as background


def test_auto_chooses_the_candidate_that_agrees_with_the_polygons():
    from sewer_segmentation.refinement.methods import choose_refinement

    box = np.zeros((20, 40), np.uint8)
    box[2:18, 2:38] = 255
    truth = np.zeros((20, 40), np.uint8)
    truth[9:11, 4:36] = 255  # a thin defect inside a big box
    prob = np.where(truth > 0, 0.65, 0.35).astype(np.float32)  # a model that separates at ~0.5
    probabilities = {"a": to_uint8(prob)}
    loaders = {"a": lambda: box}
    params = {"method": "auto", "auto": {"thresholds": [0.3, 0.5, 0.7], "methods": ["box", "seed"]}, "threshold": {}, "seed": {}, "box": {}}
    choice = choose_refinement(probabilities, {}, loaders, {"a": lambda: truth}, params)
    assert choice["label"] == "threshold@0.5" and choice["method"] == "threshold" and choice["params"]["threshold"] == 0.5
    assert choice["scores"]["threshold@0.5"] == pytest.approx(1.0)
    assert choice["scores"]["box"] < 0.15 and choice["selection_images"] == 1
    # a configured method is used as it is, without scoring
    fixed = choose_refinement(probabilities, {}, loaders, {"a": lambda: truth}, {**params, "method": "seed"})
    assert fixed["method"] == "seed" and fixed["scores"] == {}
    with pytest.raises(ValueError, match="unknown refinement method; choose one of auto, threshold"):
        choose_refinement(probabilities, {}, loaders, {"a": lambda: truth}, {**params, "method": "magic"})


def test_soft_agreement_charges_a_soft_haze():
    from sewer_segmentation.refinement.methods import soft_agreement

    truth = np.zeros((10, 10), np.uint8)
    truth[4:6] = 255
    haze = np.full((10, 10), 76, np.uint8)  # the seed rule's 0.3 over a whole box
    haze[4:6] = 255
    assert soft_agreement(truth, truth) == 1.0
    assert soft_agreement(haze, truth) < 0.5  # thresholding at 0.5 would call it perfect
    assert soft_agreement(np.zeros_like(truth), np.zeros_like(truth)) == 1.0


def test_refined_masks_are_the_same_with_any_number_of_threads():
    frames = [draw_frame(SyntheticConfig(width=96, height=64, seed=5), i) for i in range(6)]
    probabilities = {f.name: to_uint8(f.truth / 255.0 * 0.8 + 0.1) for f in frames}
    images = {f.name: (lambda f=f: f.image) for f in frames}
    boxes = {f.name: (lambda f=f: box_mask(f.boxes, f.truth.shape)) for f in frames}
    for method in ("grabcut", "threshold"):
        one = refine_pool(probabilities, images, boxes, method, {}, n_jobs=1)
        many = refine_pool(probabilities, images, boxes, method, {}, n_jobs=3)
        assert list(one) == list(many)
        for k in one:
            assert np.array_equal(one[k][0], many[k][0]) and np.array_equal(one[k][1], many[k][1])


def _two_frames(second_truth_rows: slice):
    """Two frames with a big box; the model separates a thin defect in the first, and in the second it
    marks rows that only partly match the drawn defect."""
    box = np.zeros((20, 40), np.uint8)
    box[2:18, 2:38] = 255
    truths, probabilities = {}, {}
    for image_id, rows in (("a", slice(9, 11)), ("b", second_truth_rows)):
        truth = np.zeros((20, 40), np.uint8)
        truth[rows, 4:36] = 255
        prob = np.full((20, 40), 0.35, np.float32)
        prob[9:11, 4:36] = 0.65
        truths[image_id], probabilities[image_id] = (lambda t=truth: t), to_uint8(prob)
    params = {"method": "auto", "auto": {"thresholds": [0.5], "methods": ["box"]}, "threshold": {}, "box": {}}
    return probabilities, {i: (lambda: box) for i in probabilities}, truths, params


def test_auto_keeps_the_box_masks_unless_a_candidate_beats_them_beyond_the_noise():
    from sewer_segmentation.refinement.methods import choose_refinement

    # frame b's defect fills the box: the thin prediction agrees far worse than the box there
    probabilities, boxes, truths, params = _two_frames(slice(2, 18))
    choice = choose_refinement(probabilities, {}, boxes, truths, params)
    scores = choice["scores"]
    assert scores["threshold@0.5"] > scores["box"]  # better on average, by a lead within the noise of two frames
    assert choice["label"] == "box" and choice["kept_boxes"]
    lenient = choose_refinement(probabilities, {}, boxes, truths, {**params, "auto": {**params["auto"], "box_margin": 0.0}})
    assert lenient["label"] == "threshold@0.5" and not lenient["kept_boxes"]


def test_auto_uses_a_candidate_that_beats_the_box_masks_on_every_frame():
    from sewer_segmentation.refinement.methods import choose_refinement

    probabilities, boxes, truths, params = _two_frames(slice(9, 12))
    choice = choose_refinement(probabilities, {}, boxes, truths, params)
    assert choice["label"] == "threshold@0.5" and not choice["kept_boxes"]
