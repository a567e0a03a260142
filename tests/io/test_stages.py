"""Which model a round starts from, and which model is "best"."""

import json

import pytest

from sewer_segmentation.errors import ConfigurationError, MissingArtifactError
from sewer_segmentation.io.stages import best_model_before, best_stage, saved_stages
from sewer_segmentation.modelling.plan import labelled_sampling_weights
from sewer_segmentation.params import FinalTrainingParams, TrainingParams
from sewer_segmentation.stage import Stage


def save_stage(root, stage, score, version="2026-01-01T00.00.00.000000Z", agreement=None):
    folder = root / stage / version
    folder.mkdir(parents=True)
    metadata = {"best_validation_score": score, **({"weak_holdout": {"frames": 17, "box_agreement": agreement}} if agreement is not None else {})}
    (folder / "model_config.json").write_text(json.dumps({"model": {}, "metadata": metadata}))
    return folder


def test_each_round_starts_from_the_stage_before_it_and_the_newest_stage_is_best(tmp_path):
    save_stage(tmp_path, "baseline", 0.50)
    save_stage(tmp_path, "round_1", 0.62)
    save_stage(tmp_path, "round_2", 0.58)  # handed on by round 2's guard: the chain's model now
    (tmp_path / "round_3" / ".2026-01-02T00.00.00.000000Z.abc.tmp").mkdir(parents=True)  # unfinished: ignored
    assert set(saved_stages(tmp_path)) == {"baseline", "round_1", "round_2"}
    assert best_model_before(tmp_path, 1)[0] == "baseline"
    assert best_model_before(tmp_path, 2)[0] == "round_1"
    assert best_model_before(tmp_path, 3)[0] == "round_2"  # whatever round 2 handed on, not a score comparison
    with pytest.raises(MissingArtifactError, match=r"Run `kedro run --pipeline=refine --params=round:3` first"):
        best_model_before(tmp_path, 4)
    assert best_stage(saved_stages(tmp_path)) == "round_2"


def test_rounds_sort_by_number_and_the_newest_version_of_a_stage_is_used(tmp_path):
    for number in (2, 9, 10):
        save_stage(tmp_path, f"round_{number}", 0.5)
    save_stage(tmp_path, "baseline", 0.6)
    newer = save_stage(tmp_path, "baseline", 0.1, version="2026-02-01T00.00.00.000000Z")
    assert best_stage(saved_stages(tmp_path)) == "round_10"
    assert best_model_before(tmp_path, 1) == ("baseline", newer)


def test_missing_baseline_names_the_command(tmp_path):
    with pytest.raises(MissingArtifactError, match=r"Run `kedro run --pipeline=baseline` first"):
        best_model_before(tmp_path, 1)


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", "round_0", "round_x"])
def test_bad_rounds_are_one_line_errors(value):
    with pytest.raises(ConfigurationError, match="round must be|names no stage"):
        Stage.round(value)


def test_stages_parse_name_and_order_in_one_place():
    assert Stage.parse("baseline") == Stage(0) and Stage.parse("round_3") == Stage.parse(3) == Stage.parse("3") == Stage(3)
    assert Stage(3).name == "round_3" and Stage(0).name == "baseline" and str(Stage(2)) == "round_2"
    assert Stage(3).previous() == Stage(2) and Stage(1).previous().is_baseline
    assert sorted([Stage(10), Stage(0), Stage(9)]) == [Stage(0), Stage(9), Stage(10)]
    assert Stage.from_name("best") is None and Stage.from_name("round_x") is None and Stage.from_name("0") is None
    assert Stage(2).command() == "kedro run --pipeline=refine --params=round:2" and Stage(0).command() == "kedro run --pipeline=baseline"


def test_hand_labelled_share_and_round_budget():
    weights = labelled_sampling_weights(90, 10, 0.3)
    assert sum(weights[90:]) == pytest.approx(0.3) and sum(weights) == pytest.approx(1.0)
    assert labelled_sampling_weights(90, 10, None) is None
    # a round's step budget replaces the baseline's epochs; an epoch override keeps epochs
    by_epochs = TrainingParams(epochs=3, steps=250)
    assert FinalTrainingParams(training_overrides={"steps": 40}).training(by_epochs).epochs is None
    assert FinalTrainingParams(training_overrides={"epochs": 2}).training(by_epochs).epochs == 2


def test_a_round_after_a_refused_round_says_it_would_repeat_it():
    from sewer_segmentation.pipelines.final_training.nodes import repeated_round_warning

    message = repeated_round_warning(Stage(2), {"stage": "round_1", "kept_initial_weights": True})
    assert message.startswith("round_2: round_1 handed on the weights it started from") and "repeats round_1" in message
    assert repeated_round_warning(Stage(2), {"stage": "round_1", "kept_initial_weights": False}) is None
    assert repeated_round_warning(Stage(1), {"stage": "baseline"}) is None
