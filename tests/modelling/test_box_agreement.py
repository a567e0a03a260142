"""The weak_holdout signal: box agreement of a model's masks, the selection score, and the split itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from sewer_segmentation.data.splits import check_no_held_out_images, holdout_clusters
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.modelling.box_agreement import box_agreement, frame_agreement, selection_score
from sewer_segmentation.params import DataEngineeringParams, ModelSelectionParams

BOX = np.array([[10, 20, 30, 60]])  # x0, y0, x1, y1: 20 columns, 40 rows


def blank(h=80, w=50):
    return np.zeros((h, w), bool)


def test_the_filled_box_and_a_thin_diagonal_both_reach_every_row_and_column():
    filled = blank()
    filled[20:60, 10:30] = True
    assert frame_agreement(filled, BOX) == (1.0, 0.0)
    diagonal = blank()
    for k in range(40):  # one pixel per row, every column reached too
        diagonal[20 + k, 10 + k // 2] = True
    assert frame_agreement(diagonal, BOX) == (1.0, 0.0)


def test_a_mask_reaching_half_the_rows_and_all_columns_covers_three_quarters():
    half = blank()
    half[20:40, 10:30] = True
    coverage, outside = frame_agreement(half, BOX)
    assert coverage == pytest.approx(0.75) and outside == 0.0


def test_with_loose_boxes_a_mask_reaching_the_measured_share_scores_as_the_filled_box():
    half, filled = blank(), blank()
    half[20:40, 10:30] = True  # half the rows, every column
    filled[20:60, 10:30] = True
    assert frame_agreement(half, BOX)[0] < frame_agreement(filled, BOX)[0]  # a tight box's prior favours the filled box
    assert frame_agreement(half, BOX, reach=0.75)[0] == frame_agreement(filled, BOX, reach=0.75)[0] == 1.0
    assert frame_agreement(half, BOX, reach=0.9)[0] == pytest.approx(0.75 / 0.9)
    assert box_agreement({"a": half.astype(np.float32)}, {"a": BOX}, reach=0.75)["reach"] == 0.75  # recorded with the scores


def test_pixels_outside_every_box_count_against_the_model():
    leaking = blank()
    leaking[20:60, 10:30] = True  # 800 pixels inside
    leaking[0:10, 0:20] = True  # 200 outside
    coverage, outside = frame_agreement(leaking, BOX)
    assert coverage == 1.0 and outside == pytest.approx(0.2)
    summary = box_agreement({"a": leaking.astype(np.uint8) * 255, "b": leaking[:, ::-1].astype(np.uint8) * 255}, {"a": BOX, "b": BOX})
    assert summary["frames"] == 2 and summary["per_frame"]["a"] == pytest.approx(0.8)
    assert summary["box_agreement"] == pytest.approx(np.mean(list(summary["per_frame"].values())))


def test_an_empty_mask_scores_zero_and_a_frame_without_boxes_rewards_predicting_nothing():
    assert frame_agreement(blank(), BOX) == (0.0, 0.0)
    assert frame_agreement(blank(), np.zeros((0, 4))) == (1.0, 0.0)
    stray = blank()
    stray[0, 0] = True
    assert frame_agreement(stray, np.zeros((0, 4))) == (1.0, 1.0)


def test_overlapping_boxes_are_covered_box_by_box():
    boxes = np.array([[0, 0, 20, 20], [10, 10, 40, 40]])
    only_first = blank()
    only_first[0:20, 0:10] = True  # every row of the first box, half its columns, none of the second box's rows below 20
    coverage, outside = frame_agreement(only_first, boxes)
    first = (1.0 + 0.5) / 2
    assert coverage == pytest.approx((first + 0.0) / 2) and outside == 0.0


def test_probabilities_are_thresholded_at_one_half_in_either_scale():
    probability = np.zeros((80, 50), np.float32)
    probability[20:60, 10:30] = 0.6
    as_uint8 = (probability * 255).astype(np.uint8)
    for maps in (probability, as_uint8):
        assert box_agreement({"a": maps}, {"a": BOX})["box_agreement"] == 1.0
    assert box_agreement({"a": probability * 0.5}, {"a": BOX})["box_agreement"] == 0.0
    assert box_agreement({}, {})["box_agreement"] is None


def test_the_selection_score_is_validation_agreement_or_their_mean_and_falls_back_to_the_part_that_exists():
    assert selection_score("validation", 0.6, 0.9) == 0.6
    assert selection_score("box_agreement", 0.6, 0.9) == 0.9
    assert selection_score("combined", 0.6, 0.9) == pytest.approx(0.75)
    assert selection_score("combined", 0.6, None) == 0.6  # no weak_holdout frames
    assert selection_score("box_agreement", None, 0.9) == 0.9
    assert selection_score("box_agreement", 0.6, None) == 0.6  # nothing held out: validation decides
    assert selection_score("combined", None, None) is None
    with pytest.raises(ValidationError, match="'validation', 'box_agreement' or 'combined'"):
        ModelSelectionParams(signal="eval")


def sizes(n, size=1):
    return pd.Series([size] * n, index=range(n))


def test_the_holdout_is_seeded_stable_and_about_its_fraction():
    held = holdout_clusters(sizes(200), 0.15, seed=42)
    assert len(held) == 30 and held == holdout_clusters(sizes(200)[::-1], 0.15, seed=42)
    assert held != holdout_clusters(sizes(200), 0.15, seed=43)
    assert holdout_clusters(sizes(200), 0.0, seed=42) == set()
    big = holdout_clusters(sizes(20, size=5), 0.15, seed=1)  # clusters of 5 frames: whole clusters, 15 of 100 frames -> 3
    assert len(big) == 3


def test_the_holdout_never_takes_the_whole_weak_pool():
    assert holdout_clusters(sizes(1), 0.9, seed=0) == set()
    assert len(holdout_clusters(sizes(2), 0.9, seed=0)) == 1
    with pytest.raises(ValueError, match="below 1"):
        holdout_clusters(sizes(5), 1.0, seed=0)


def inventory(labelled=12, weak=20):
    ids = [f"f{k:03d}" for k in range(labelled + weak)]
    return pd.DataFrame({"image_id": ids, "kept": True, "has_polygon": [k < labelled for k in range(len(ids))],
                         "cluster_id": range(len(ids)), "source_file": [f"{i}.png" for i in ids], "mask_source": "masks",
                         "width": 64, "height": 64, "phash": "0" * 16})  # fmt: skip


def test_the_holdout_moves_only_box_only_frames_and_never_a_hand_labelled_split():
    from sewer_segmentation.pipelines.data_engineering.nodes import assign_splits

    def settings(fraction):
        return DataEngineeringParams(split={"eval_fraction": 0.5, "val_fraction": 0.25, "weak_holdout_fraction": fraction})

    without = assign_splits(inventory(), settings(0.0), seed=5).set_index("image_id").split
    with_holdout = assign_splits(inventory(), settings(0.25), seed=5).set_index("image_id").split
    labelled = without.index[:12]
    assert with_holdout[labelled].equals(without[labelled])
    assert (with_holdout == "weak_holdout").sum() == 5 and set(with_holdout[without == "weak"]) == {"weak", "weak_holdout"}
    again = assign_splits(inventory(), settings(0.25), seed=5).set_index("image_id").split
    assert again.equals(with_holdout)


def test_a_weak_holdout_frame_in_a_training_set_is_refused_by_name():
    manifest = pd.DataFrame({"image_id": ["a", "b", "c"], "split": ["baseline_train", "weak", "weak_holdout"]})
    check_no_held_out_images(manifest, ["a", "b"], "the round's training set")
    with pytest.raises(BadInputError, match=r"the round's training set holds 1 weak_holdout images \(c\)"):
        check_no_held_out_images(manifest, ["a", "c"], "the round's training set")


@pytest.mark.parametrize(
    ("value", "message"),
    [("model_selection.signal=eval", "model_selection.signal='eval': Input should be 'validation', 'box_agreement' or 'combined'"),
     ("data_engineering.split.weak_holdout_fraction=1", "data_engineering.split.weak_holdout_fraction=1: Input should be less than 1")],
)  # fmt: skip
def test_a_bad_signal_or_holdout_fraction_stops_the_run_before_anything_is_written(kedro_project, value, message):
    from tests.conftest import make_dataset, run_cli

    make_dataset(kedro_project)
    result = run_cli(kedro_project, "--pipeline=data_engineering", f"--params=dataset=tiny,{value}")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert message in result.output
    assert not (kedro_project / "data/03_primary/tiny").exists()


def test_a_box_off_the_frame_is_clipped_not_wrapped_around():
    dot = np.zeros((10, 10), bool)
    dot[5, 5] = True
    # Wholly above and left of the frame: no pixel of it, so no coverage to count (slicing with -1 would have
    # wrapped around to rows and columns 0..8, where the dot reaches 1 of 9) and the dot lies outside it.
    assert frame_agreement(dot, np.array([[-5, -5, -1, -1]])) == (1.0, 1.0)
    coverage, outside = frame_agreement(np.ones((10, 10), bool), np.array([[-2, 0, 2, 10]]))  # inside: columns 0 and 1
    assert coverage == 1.0 and outside == pytest.approx(0.8)
