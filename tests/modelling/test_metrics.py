import numpy as np
import pytest
import torch

from sewer_segmentation.modelling.metrics import binary_metrics, soft_metrics


def masks(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_hand_computed_counts():
    pred = masks([1, 1, 0, 0], [1, 0, 0, 0])
    target = masks([1, 0, 0, 0], [1, 1, 0, 0])
    # TP 2, FP 1, FN 1, TN 4
    m = binary_metrics(pred, target)
    assert m["mean_iou"] == pytest.approx(2 / 4)
    assert m["mean_dice"] == pytest.approx(4 / 6)
    assert m["mean_precision"] == pytest.approx(2 / 3)
    assert m["mean_recall"] == pytest.approx(2 / 3)
    assert m["mean_specificity"] == pytest.approx(4 / 5)


def test_mean_over_images_differs_from_pooled_and_dice_is_not_derived_from_iou():
    big_t = np.zeros((10, 10))
    big_t[:, :5] = 1
    big_p = big_t.copy()  # perfect on a large defect
    small_t = np.zeros((10, 10))
    small_t[0, 0] = 1
    small_p = np.zeros((10, 10))
    small_p[0, 1] = 1  # complete miss on a tiny defect
    m = binary_metrics(np.stack([big_p, small_p]), np.stack([big_t, small_t]))
    assert m["mean_iou"] == pytest.approx(0.5)
    assert m["pooled_iou"] == pytest.approx(50 / 52)
    assert m["mean_dice"] == pytest.approx(0.5)
    assert m["mean_dice"] != pytest.approx(2 * m["mean_iou"] / (1 + m["mean_iou"]))


def test_empty_ground_truth_convention():
    empty = np.zeros((4, 4))
    one = empty.copy()
    one[0, 0] = 1
    both_empty = binary_metrics(empty, empty)
    assert both_empty["mean_iou"] == 1 and both_empty["mean_dice"] == 1 and both_empty["mean_recall"] == 1
    false_alarm = binary_metrics(one, empty)
    assert false_alarm["mean_iou"] == 0 and false_alarm["mean_dice"] == 0 and false_alarm["mean_precision"] == 0
    missed = binary_metrics(empty, one)
    assert missed["mean_iou"] == 0 and missed["mean_recall"] == 0 and missed["mean_precision"] == 1


def test_soft_metrics_follow_their_definitions():
    p = np.array([0.8, 0.2, 0.5, 0.0])
    t = np.array([1.0, 0.0, 0.3, 0.0])
    m = soft_metrics(p, t)
    assert m["soft_iou"] == pytest.approx((0.8 + 0 + 0.3 + 0) / (1.0 + 0.2 + 0.5 + 0))
    assert m["soft_dice"] == pytest.approx(2 * (0.8 + 0.15) / (0.64 + 1 + 0.04 + 0.25 + 0.09))
    assert m["soft_recall"] == pytest.approx((0.8 + 0.15) / 1.3)
    assert m["soft_specificity"] == pytest.approx((0 + 0.8 + 0.35 + 1) / (0 + 1 + 0.7 + 1))
