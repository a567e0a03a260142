"""Which frames to label next (modelling/acquisition.py): uncertainty, diversity, one frame per cluster."""

import numpy as np
import pandas as pd
import pytest

from sewer_segmentation.modelling.acquisition import METHODS, box_entropy, k_center_greedy, rank_frames


def test_box_entropy_is_highest_where_the_model_is_unsure_inside_the_boxes():
    probability = np.zeros((10, 10))
    probability[0:5, 0:5] = 0.5  # unsure inside the box
    box = np.array([[0, 0, 5, 5]])
    assert box_entropy(probability, box) == pytest.approx(1.0)
    assert box_entropy(probability, np.array([[5, 5, 10, 10]])) < 1e-3  # sure (0) in another box
    assert box_entropy(probability, np.zeros((0, 4))) == pytest.approx(0.25, abs=1e-3)  # no box: the whole frame


def test_k_center_picks_the_farthest_frames_and_one_per_group():
    pool = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [5.1, 0.0], [0.0, 5.0]])
    assert k_center_greedy(pool, 3, labelled=np.array([[0.0, 0.0]])) == [3, 4, 1]  # far ones first, then the rest
    groups = np.array(["a", "a", "b", "b", "c"])
    picks = k_center_greedy(pool, 5, labelled=np.array([[0.0, 0.0]]), groups=groups)
    assert len(picks) == 3 and len({groups[i] for i in picks}) == 3  # never two of one near-duplicate cluster


@pytest.mark.parametrize("method", METHODS)
def test_every_ranking_gives_exactly_the_budget_with_no_two_frames_of_one_cluster(method):
    rng = np.random.default_rng(0)
    scores = pd.DataFrame({"image_id": [f"f{i:02d}" for i in range(30)], "uncertainty": rng.random(30), "cluster": [i // 2 for i in range(30)]})
    features = {f"f{i:02d}": rng.standard_normal(8) for i in range(30)}
    chosen = rank_frames(scores, 6, method, features, np.zeros((1, 8)), seed=3)
    assert list(chosen.columns) == ["frame", "score", "reason"] and len(chosen) == 6
    clusters = scores.set_index("image_id").cluster
    assert clusters[chosen.frame].nunique() == 6
    assert chosen.equals(rank_frames(scores, 6, method, features, np.zeros((1, 8)), seed=3))  # reproducible


def test_uncertainty_takes_the_most_uncertain_frame_of_each_cluster_first():
    scores = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "uncertainty": [0.9, 0.8, 0.7, 0.1], "cluster": [1, 1, 2, 3]})
    chosen = rank_frames(scores, 2, "uncertainty")
    assert list(chosen.frame) == ["a", "c"]  # b shares a's cluster


def test_an_unknown_method_is_refused_by_name():
    with pytest.raises(ValueError, match="uncertainty, diversity, hybrid, random"):
        rank_frames(pd.DataFrame(columns=["image_id", "uncertainty", "cluster"]), 1, "entropy")
