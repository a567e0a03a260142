"""choose_frames_to_label: the parameters reach the ranking, with the features as score_weak_pool lays them out."""

import numpy as np
import pandas as pd

from sewer_segmentation.params import SuggestParams
from sewer_segmentation.pipelines.suggest_labels.nodes import choose_frames_to_label


def weak_pool():
    # w0..w3 look alike and are the most uncertain; w4, w5 are another kind; t0 is a labelled frame
    scores = pd.DataFrame({"image_id": [f"w{i}" for i in range(6)], "cluster": [f"c{i}" for i in range(6)], "uncertainty": [0.5] * 6,
                           "uncertain_pixels": [60.0, 50, 40, 30, 20, 10], "disagreement": [0.1] * 6, "box_share": [0.1] * 6})  # fmt: skip
    vectors = {"w0": [0, 0], "w1": [0, 0.1], "w2": [0.1, 0], "w3": [0.1, 0.1], "w4": [9, 9], "w5": [9, 9.1], "t0": [0, 0]}
    return scores, {"pool": {name: np.array(v, float) for name, v in vectors.items()}, "labelled": ["t0"]}


def test_uncertain_clusters_spreads_the_budget_over_its_candidates_kinds_and_candidate_factor_sets_how_many_it_sees():
    scores, features = weak_pool()
    wide = choose_frames_to_label(scores, features, SuggestParams(budget=2, method="uncertain_clusters", candidate_factor=3), seed=0)
    assert list(wide.frame) == ["w0", "w4"]  # the most uncertain of each kind among the 6 candidates
    narrow = choose_frames_to_label(scores, features, SuggestParams(budget=2, method="uncertain_clusters", candidate_factor=1), seed=0)
    assert list(narrow.frame) == ["w0", "w1"]  # two candidates only: both are taken
    assert list(choose_frames_to_label(scores, features, SuggestParams(budget=2), seed=0).frame) == ["w0", "w1"]  # the default ranking
