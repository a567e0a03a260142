"""Which frames to label next (modelling/acquisition.py): uncertainty, diversity, one frame per cluster."""

import numpy as np
import pandas as pd
import pytest

from sewer_segmentation.modelling.acquisition import METHODS, box_disagreement, box_entropy, box_share, k_center_greedy, rank_frames, typical_picks


def test_box_entropy_is_highest_where_the_model_is_unsure_inside_the_boxes():
    probability = np.zeros((10, 10))
    probability[0:5, 0:5] = 0.5  # unsure inside the box
    box = np.array([[0, 0, 5, 5]])
    assert box_entropy(probability, box) == pytest.approx(1.0)
    assert box_entropy(probability, np.array([[5, 5, 10, 10]])) < 1e-3  # sure (0) in another box
    assert box_entropy(probability, np.zeros((0, 4))) == pytest.approx(0.25, abs=1e-3)  # no box: the whole frame
    assert box_entropy(probability, box, total=True) == pytest.approx(25.0)  # 25 pixels of one bit each
    big = np.full((10, 10), 0.5)
    big[0:2, 0:2] = 0.0  # a large box mostly unsure beats a small box wholly unsure on the total, not on the mean
    assert box_entropy(big, np.array([[0, 0, 10, 10]]), total=True) > box_entropy(probability, box, total=True)
    assert box_entropy(big, np.array([[0, 0, 10, 10]])) < box_entropy(probability, box)


def test_box_disagreement_is_zero_for_a_mask_that_fits_its_boxes_and_grows_with_misses_and_leaks():
    boxes = np.array([[10, 10, 20, 30]])
    fits = np.zeros((40, 40))
    fits[10:30, 12] = 0.9  # a thin vertical line through every row of the box: reaches every row, not every column
    assert box_disagreement(fits, boxes) == pytest.approx(1 - (1.0 + 0.1) / 2)
    diagonal = np.zeros((40, 40))
    for i in range(20):
        diagonal[10 + i, 10 + i // 2] = 0.9  # a diagonal crack crosses every row and column of its box
    assert box_disagreement(diagonal, boxes) == pytest.approx(0.0)
    leaking = diagonal.copy()
    leaking[0:5, 30:40] = 0.9  # as many pixels outside every box as inside
    assert box_disagreement(leaking, boxes) > 0.5 > box_disagreement(np.where(diagonal > 0, 0.9, 0.1), boxes)  # sure or not: the mask counts
    assert box_disagreement(np.zeros((40, 40)), boxes) == pytest.approx(1.0)  # missed entirely


def test_k_center_picks_the_farthest_frames_and_one_per_group():
    pool = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [5.1, 0.0], [0.0, 5.0]])
    assert k_center_greedy(pool, 3, labelled=np.array([[0.0, 0.0]])) == [3, 4, 1]  # far ones first, then the rest
    groups = np.array(["a", "a", "b", "b", "c"])
    picks = k_center_greedy(pool, 5, labelled=np.array([[0.0, 0.0]]), groups=groups)
    assert len(picks) == 3 and len({groups[i] for i in picks}) == 3  # never two of one near-duplicate cluster


def test_typical_takes_the_dense_middle_of_each_uncovered_cluster_never_the_outlier():
    rng = np.random.default_rng(0)
    covered = rng.normal(0.0, 0.1, (30, 4))  # the kind of frame already labelled
    big, small = rng.normal(3.0, 0.1, (20, 4)), rng.normal(-3.0, 0.1, (10, 4))
    outlier = np.full((1, 4), 20.0)  # a junk frame: as far from everything as a frame gets
    pool = np.vstack([covered, big, small, outlier])
    labelled = rng.normal(0.0, 0.1, (2, 4))
    picks = typical_picks(pool, 2, labelled=labelled, seed=0)
    assert 30 <= picks[0] < 50 and 50 <= picks[1] < 60  # the largest uncovered cluster first, then the next
    centre = big.mean(axis=0)
    assert np.linalg.norm(pool[picks[0]] - centre) < np.median(np.linalg.norm(big - centre, axis=1))  # a central frame of it
    assert 60 not in typical_picks(pool, 5, labelled=labelled, seed=0)  # the outlier's own cluster is too small to be visited first
    assert 60 in typical_picks(pool, len(pool), labelled=labelled, seed=0)  # ...but it is not lost when the budget reaches it
    assert k_center_greedy(pool, 1, labelled=covered[:2])[0] == 60  # k-center reaches for the outlier instead


def test_typical_ranking_does_not_depend_on_the_order_of_the_score_table():
    rng = np.random.default_rng(1)
    scores = pd.DataFrame({"image_id": [f"f{i:02d}" for i in range(40)], "uncertainty": rng.random(40), "cluster": range(40)})
    features = {f"f{i:02d}": rng.standard_normal(6) for i in range(40)}
    chosen = rank_frames(scores, 5, "typical", features, np.zeros((1, 6)), seed=2)
    shuffled = rank_frames(scores.sample(frac=1.0, random_state=3), 5, "typical", features, np.zeros((1, 6)), seed=2)
    assert chosen.equals(shuffled)


def test_typical_keeps_one_frame_per_group_and_fills_the_budget_from_covered_clusters():
    pool = np.array([[0.0, 0.0], [0.0, 0.1], [5.0, 0.0], [5.0, 0.1], [0.0, 5.0], [0.0, 5.1], [5.0, 5.0], [5.0, 5.1]])
    groups = np.array(["a", "a", "b", "b", "c", "c", "d", "d"])  # pairs of near-duplicates
    picks = typical_picks(pool, 4, labelled=np.zeros((1, 2)), groups=groups, seed=1)
    assert len(picks) == 4 and len({groups[i] for i in picks}) == 4
    assert groups[picks[-1]] == "a"  # the group beside the labelled frame comes last


@pytest.mark.parametrize("method", METHODS)
def test_every_ranking_gives_exactly_the_budget_with_no_two_frames_of_one_cluster(method):
    rng = np.random.default_rng(0)
    scores = pd.DataFrame({"image_id": [f"f{i:02d}" for i in range(30)], "uncertainty": rng.random(30), "disagreement": rng.random(30),
                           "uncertain_pixels": rng.random(30) * 100, "box_share": rng.random(30), "cluster": [i // 2 for i in range(30)]})  # fmt: skip
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


def test_disagreement_takes_the_frames_their_boxes_prove_wrong_first_and_needs_its_column():
    scores = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "uncertainty": [0.9, 0.8, 0.7, 0.1], "disagreement": [0.1, 0.2, 0.9, 0.8],
                           "cluster": [1, 2, 3, 3]})  # fmt: skip
    assert list(rank_frames(scores, 2, "disagreement").frame) == ["c", "b"]  # d shares c's cluster
    with pytest.raises(ValueError, match="disagreement"):
        rank_frames(scores.drop(columns="disagreement"), 2, "disagreement")


def test_each_scored_ranking_orders_by_its_own_column_and_lists_that_score():
    scores = pd.DataFrame({"image_id": ["a", "b", "c"], "uncertainty": [0.9, 0.5, 0.1], "uncertain_pixels": [10.0, 300.0, 20.0],
                           "disagreement": [0.2, 0.1, 0.7], "cluster": [1, 2, 3]})  # fmt: skip
    for method, first in (("uncertainty", "a"), ("uncertain_pixels", "b"), ("disagreement", "c")):
        chosen = rank_frames(scores, 3, method)
        assert chosen.frame[0] == first and chosen.score.is_monotonic_decreasing
        assert list(chosen.score) == sorted(scores[method], reverse=True)


def test_the_parameter_accepts_exactly_the_rankings_there_are():
    from typing import get_args  # noqa: PLC0415

    from sewer_segmentation.params import SuggestParams  # noqa: PLC0415

    assert get_args(SuggestParams.model_fields["method"].annotation) == METHODS


def test_an_unknown_method_is_refused_by_name():
    names = "uncertainty, uncertain_pixels, disagreement, diversity, hybrid, uncertain_clusters, typical, stratified, largest_boxes, random"
    with pytest.raises(ValueError, match=names):
        rank_frames(pd.DataFrame(columns=["image_id", "uncertainty", "cluster"]), 1, "entropy")


def test_box_share_counts_the_pixels_of_overlapping_boxes_once_and_never_wraps_around_the_frame():
    assert box_share(np.array([[0, 0, 4, 5]]), (10, 10)) == pytest.approx(0.20)
    assert box_share(np.array([[0, 0, 4, 5], [2, 0, 6, 5]]), (10, 10)) == pytest.approx(0.30)  # 10 shared pixels counted once
    assert box_share(np.array([[8, 8, 14, 14]]), (10, 10)) == pytest.approx(0.04)  # clipped to the frame
    assert box_share(np.array([[-5, -5, -1, -1]]), (10, 10)) == 0.0  # wholly outside: no pixel, not 81 wrapped ones
    assert box_share(np.array([[-2, 0, 2, 10]]), (10, 10)) == pytest.approx(0.20)
    assert box_share(np.zeros((0, 4)), (10, 10)) == 0.0
    assert box_entropy(np.full((10, 10), 0.5), np.array([[-2, 0, 2, 10]]), total=True) == pytest.approx(20.0)  # the same pixels


def test_stratified_takes_the_most_uncertain_frame_of_each_box_size_not_only_the_small_boxes():
    # Small boxes are the most uncertain on the mean: uncertainty takes only them, stratified one of each size.
    # In each pair the most uncertain frame has the larger box, so "the smallest of each stratum" would fail.
    scores = pd.DataFrame({"image_id": list("abcdef"), "uncertainty": [0.9, 0.8, 0.5, 0.4, 0.3, 0.1],
                           "box_share": [0.012, 0.010, 0.11, 0.10, 0.6, 0.5], "cluster": range(6)})  # fmt: skip
    assert list(rank_frames(scores, 3, "uncertainty").frame) == ["a", "b", "c"]
    chosen = rank_frames(scores, 3, "stratified")
    assert list(chosen.frame) == ["a", "c", "e"]  # one per stratum, the most uncertain of each, most uncertain first
    assert list(chosen.score) == [0.9, 0.5, 0.3] and chosen.reason.str.startswith("the most uncertain").all()
    with pytest.raises(ValueError, match="box_share"):
        rank_frames(scores.drop(columns="box_share"), 3, "stratified")


def test_stratified_fills_the_budget_from_other_strata_when_one_holds_only_taken_clusters():
    scores = pd.DataFrame({"image_id": list("abcd"), "uncertainty": [0.9, 0.8, 0.7, 0.1], "box_share": [0.10, 0.11, 0.50, 0.12],
                           "cluster": [1, 2, 1, 3]})  # fmt: skip
    # Strata by size {a, b}, {d}, {c}: a, then d; c shares a's cluster, so b (the most uncertain left) fills the budget.
    chosen = rank_frames(scores, 3, "stratified")
    assert list(chosen.frame) == ["a", "b", "d"]
    assert "near-duplicates" in chosen.reason[1] and "near-duplicates" not in chosen.reason[0] + chosen.reason[2]
    scores["cluster"] = [1, 1, 1, 1]
    assert list(rank_frames(scores, 3, "stratified").frame) == ["a"]  # one cluster: one frame


def test_every_ranking_of_an_empty_pool_is_empty():
    empty = pd.DataFrame(columns=["image_id", "uncertainty", "uncertain_pixels", "disagreement", "box_share", "cluster"])
    for method in ("uncertainty", "uncertain_pixels", "disagreement", "stratified", "uncertain_clusters", "largest_boxes", "random"):
        assert rank_frames(empty, 3, method).empty


def test_uncertain_clusters_takes_the_most_uncertain_frame_of_each_kind_among_the_most_uncertain_only():
    # a, b, c look alike and are the most uncertain; d, e, f are another kind; g is unlike all but nearly certain
    names = list("abcdefg")
    scores = pd.DataFrame({"image_id": names, "uncertainty": [0.5] * 7, "uncertain_pixels": [100.0, 90, 80, 50, 40, 30, 1],
                           "cluster": [1, 2, 3, 4, 5, 6, 7]})  # fmt: skip
    blob = {"a": [0, 0], "b": [0.1, 0], "c": [0, 0.1], "d": [10, 10], "e": [10.1, 10], "f": [10, 10.1], "g": [100, -100]}
    features = {name: np.array(vector, float) for name, vector in blob.items()}
    chosen = rank_frames(scores, 2, "uncertain_clusters", features, candidate_factor=3, seed=0)
    assert list(chosen.frame) == ["a", "d"]  # uncertain_pixels alone takes a and b, diversity would reach for g
    assert list(chosen.score) == [100.0, 50.0] and "feature cluster" in chosen.reason[0]
    assert list(rank_frames(scores, 2, "uncertain_pixels").frame) == ["a", "b"]


def test_uncertain_clusters_draws_its_candidates_one_per_near_duplicate_cluster():
    # b and c are copies of a: the three most uncertain rows are one candidate, so d and e are candidates too
    scores = pd.DataFrame({"image_id": list("abcde"), "uncertainty": [0.5] * 5, "uncertain_pixels": [100.0, 99, 98, 50, 40],
                           "cluster": [1, 1, 1, 2, 3]})  # fmt: skip
    features = {"a": np.zeros(2), "b": np.zeros(2), "c": np.zeros(2), "d": np.array([5.0, 0]), "e": np.array([0, 5.0])}
    chosen = rank_frames(scores, 3, "uncertain_clusters", features, candidate_factor=1)
    assert list(chosen.frame) == ["a", "d", "e"]


def test_uncertain_clusters_fills_the_budget_when_the_features_of_its_candidates_are_identical():
    # four black frames in four near-duplicate clusters: one k-means cluster, but the budget is 3
    scores = pd.DataFrame({"image_id": list("abcd"), "uncertainty": [0.5] * 4, "uncertain_pixels": [40.0, 30, 20, 10], "cluster": [1, 2, 3, 4]})
    features = {name: np.zeros(4) for name in "abcd"}
    chosen = rank_frames(scores, 3, "uncertain_clusters", features)
    assert list(chosen.frame) == ["a", "b", "c"]
    assert "feature cluster" in chosen.reason[0] and all("fewer clusters than the budget" in r for r in chosen.reason[1:])


def test_largest_boxes_takes_the_frames_whose_boxes_cover_most_whatever_the_model_thinks():
    scores = pd.DataFrame({"image_id": list("abcd"), "uncertainty": [0.9, 0.1, 0.5, 0.2], "uncertain_pixels": [900.0, 10, 50, 20],
                           "box_share": [0.01, 0.30, 0.20, 0.25], "cluster": [1, 2, 3, 3]})  # fmt: skip
    chosen = rank_frames(scores, 3, "largest_boxes")
    assert list(chosen.frame) == ["b", "d", "a"]  # c shares d's cluster
    assert list(chosen.score) == [0.30, 0.25, 0.01] and chosen.reason[0] == "its boxes cover 30.0% of the frame"
