"""Which model a round starts from, and which model is "best"."""

import json

import pytest

from sewer_segmentation.errors import ConfigurationError, MissingArtifactError
from sewer_segmentation.io.stages import best_model_before, best_stage, parse_round, saved_stages
from sewer_segmentation.modelling.plan import labelled_sampling_weights
from sewer_segmentation.pipelines.final_training.nodes import final_training_config


def save_stage(root, stage, score, version="2026-01-01T00.00.00.000000Z", agreement=None):
    folder = root / stage / version
    folder.mkdir(parents=True)
    metadata = {"best_validation_score": score, **({"weak_holdout": {"frames": 17, "box_agreement": agreement}} if agreement is not None else {})}
    (folder / "model_config.json").write_text(json.dumps({"model": {}, "metadata": metadata}))
    return folder


def test_best_model_so_far_refines_the_next_round(tmp_path):
    save_stage(tmp_path, "baseline", 0.50)
    save_stage(tmp_path, "round_1", 0.62)
    save_stage(tmp_path, "round_2", 0.58)  # round 2 got worse on validation
    (tmp_path / "round_3" / ".2026-01-02T00.00.00.000000Z.abc.tmp").mkdir(parents=True)  # unfinished: ignored
    assert set(saved_stages(tmp_path)) == {"baseline", "round_1", "round_2"}
    assert best_model_before(tmp_path, 1)[0] == "baseline"
    assert best_model_before(tmp_path, 2)[0] == "round_1"
    assert best_model_before(tmp_path, 3)[0] == "round_1"  # not round_2, which was worse
    with pytest.raises(MissingArtifactError, match=r"Run `kedro run --pipeline=refine --params=round:3` first"):
        best_model_before(tmp_path, 4)
    assert best_stage(saved_stages(tmp_path)) == "round_1"


def test_ties_and_newest_versions(tmp_path):
    save_stage(tmp_path, "baseline", 0.6)
    save_stage(tmp_path, "round_1", 0.6)
    assert best_stage(saved_stages(tmp_path)) == "baseline"  # a round must beat, not equal
    save_stage(tmp_path, "baseline", 0.1, version="2026-02-01T00.00.00.000000Z")  # a newer baseline
    assert best_stage(saved_stages(tmp_path)) == "round_1"


def test_stages_are_compared_on_one_rule_recomputed_from_their_saved_parts(tmp_path):
    # round_1 is better on validation alone, worse on the combined score (validation and box agreement)
    save_stage(tmp_path, "baseline", 0.50, agreement=0.90)  # combined 0.70
    save_stage(tmp_path, "round_1", 0.55, agreement=0.75)  # combined 0.65
    assert best_stage(saved_stages(tmp_path), "validation") == "round_1"
    assert best_stage(saved_stages(tmp_path), "combined") == "baseline" and best_model_before(tmp_path, 2, "combined")[0] == "baseline"
    assert best_stage(saved_stages(tmp_path), "box_agreement") == "baseline"
    # a model saved before the box agreement existed has its validation score only: under combined that
    # is all it is judged by, while the others are judged by their mean
    save_stage(tmp_path, "round_2", 0.68)
    assert best_stage(saved_stages(tmp_path), "combined") == "baseline"  # 0.70 > 0.68
    assert best_stage(saved_stages(tmp_path), "validation") == "round_2"


def test_missing_baseline_names_the_command(tmp_path):
    with pytest.raises(MissingArtifactError, match=r"Run `kedro run --pipeline=baseline` first"):
        best_model_before(tmp_path, 1)


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5"])
def test_bad_rounds_are_one_line_errors(value):
    with pytest.raises(ConfigurationError, match="round must be"):
        parse_round(value)


def test_hand_labelled_share_and_round_budget():
    weights = labelled_sampling_weights(90, 10, 0.3)
    assert sum(weights[90:]) == pytest.approx(0.3) and sum(weights) == pytest.approx(1.0)
    assert labelled_sampling_weights(90, 10, None) is None
    with pytest.raises(ConfigurationError, match="labelled_share"):
        labelled_sampling_weights(90, 10, 1.5)
    # a round's step budget replaces the baseline's epochs; an epoch override keeps epochs
    assert final_training_config({"epochs": 3, "steps": 250}, {"training_overrides": {"steps": 40}})["epochs"] is None
    assert final_training_config({"epochs": 3}, {"training_overrides": {"epochs": 2}})["epochs"] == 2
