"""How the suggestions gallery prints a ranking's score."""

from sewer_segmentation.pipelines.suggest_labels.nodes import score_text


def test_large_scores_read_as_whole_numbers_and_small_ones_keep_three_digits():
    assert score_text(2204.4) == "2,204"
    assert score_text(100.0) == "100"
    assert score_text(0.61234) == "0.612"
    assert score_text(12.345) == "12.3"
