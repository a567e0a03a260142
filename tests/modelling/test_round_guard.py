"""The round guard: whether a round hands on its trained weights or its start, and with what noise."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from pydantic import ValidationError

from sewer_segmentation.modelling.box_agreement import selection_score
from sewer_segmentation.modelling.inference import TrainedModel
from sewer_segmentation.modelling.plan import TrainingPlan
from sewer_segmentation.modelling.round_guard import decide, selection_standard_error
from sewer_segmentation.params import FinalTrainingParams
from sewer_segmentation.params import RoundGuardParams as RoundGuard
from sewer_segmentation.stats import paired_difference, paired_standard_error


def test_the_standard_error_comes_from_the_items_both_models_scored():
    trained = {"a": 0.5, "b": 0.7, "c": 0.9, "only_trained": 0.0}
    start = {"a": 0.4, "b": 0.7, "c": 0.7, "only_start": 1.0}
    differences = [0.1, 0.0, 0.2]
    expected = torch.tensor(differences, dtype=torch.float64).std().item() / math.sqrt(3)
    assert paired_standard_error(trained, start) == pytest.approx(expected)
    assert paired_difference(trained, start) == pytest.approx((0.1, expected, 3))  # the mean of the same 3 differences
    assert paired_standard_error({"a": 0.5}, {"a": 0.1}) is None  # one image: the noise is unknown
    assert paired_standard_error({"a": 0.5, "b": 0.6}, {"a": 0.4, "b": 0.5}) == pytest.approx(0.0)  # the same gain on each


def test_the_combined_score_is_a_mean_of_two_parts_and_so_is_its_noise():
    assert selection_standard_error("combined", 0.03, 0.04) == pytest.approx(0.025)
    assert selection_standard_error("validation", 0.03, 0.04) == 0.03
    assert selection_standard_error("box_agreement", 0.03, 0.04) == 0.04
    assert selection_standard_error("combined", None, 0.04) == 0.04  # a part without an estimate is left out
    assert selection_standard_error("combined", None, None) is None


def test_not_worse_hands_on_a_dip_within_the_noise_and_refuses_one_beyond_it():
    guard = RoundGuard(rule="not_worse", standard_errors=1.0)
    assert decide(guard, 0.60, 0.61, 0.02).keep_trained  # 0.01 below, noise 0.02
    assert not decide(guard, 0.55, 0.61, 0.02).keep_trained  # 0.06 below: 3 standard errors
    assert decide(RoundGuard(rule="not_worse", standard_errors=3.0), 0.55, 0.61, 0.02).keep_trained
    assert decide(guard, 0.70, 0.61, 0.0).keep_trained
    # without a noise estimate the tolerance is 0: the trained weights must not score lower
    assert decide(guard, 0.61, 0.61, None).keep_trained and not decide(guard, 0.609, 0.61, None).keep_trained
    decision = decide(guard, 0.60, 0.61, 0.02)
    assert decision.difference == pytest.approx(-0.01) and decision.standard_error == 0.02 and "not worse" in decision.reason


def test_better_needs_a_gain_of_min_improvement_whatever_the_noise():
    guard = RoundGuard(rule="better", min_improvement=0.01)
    assert not decide(guard, 0.615, 0.61, 0.5).keep_trained
    assert decide(guard, 0.621, 0.61, None).keep_trained


def test_missing_scores():
    guard = RoundGuard()
    assert decide(guard, 0.5, None, None).keep_trained  # nothing to compare with
    assert not decide(guard, None, 0.5, None).keep_trained


@pytest.mark.parametrize(
    ("config", "message"),
    [({"rule": "maybe"}, "Input should be 'not_worse' or 'better'"), ({"standard_errors": -1}, "greater than or equal to 0"),
     ({"standard_errors": "x"}, "valid number"), ({"min_improvement": float("nan")}, "finite number"),
     ({"margin": 1}, "Extra inputs are not permitted")],
)  # fmt: skip
def test_bad_guard_settings_are_refused_by_the_parameter_model(config, message):
    with pytest.raises(ValidationError, match=message):
        FinalTrainingParams.model_validate({"round_guard": config})
    assert FinalTrainingParams().round_guard == RoundGuard()


def _stage(start_agreements, trained_agreements, guard, validation=(0.6, 0.6)):
    """A trained model and its plan whose start and trained weights differ, scored on two holdout frames."""
    start = torch.nn.Conv2d(3, 1, 1)
    trained_net = copy.deepcopy(start)
    with torch.no_grad():
        trained_net.weight.add_(1.0)
    previous = TrainedModel(copy.deepcopy(start), {"architecture": "start"}, {"height": 32, "width": 32}, {"stage": "baseline"})
    plan = TrainingPlan("round_1", [], [], {}, {}, {}, initial_state=copy.deepcopy(start.state_dict()), starts_from={"stage": "baseline"},
                        holdout_images={"h1": None, "h2": None}, previous_model=previous, guard=guard)  # fmt: skip
    per_image = {"v1": validation[1], "v2": validation[1]}
    trained = TrainedModel(trained_net, {"architecture": "trained"}, {"height": 32, "width": 32},
                           {"best_validation_score": validation[1], "initial_validation_score": validation[0], "validation_per_image": per_image,
                            "initial_validation_per_image": {"v1": validation[0], "v2": validation[0]}})  # fmt: skip

    def agreement(per_frame):
        return {"frames": 2, "box_agreement": sum(per_frame) / 2, "box_coverage": 1.0, "outside_share": 0.0,
                "per_frame": {"h1": per_frame[0], "h2": per_frame[1]}}  # fmt: skip

    def scored(model, _plan, _inference):
        return agreement(start_agreements if torch.equal(model.model.weight, start.weight) else trained_agreements)

    trained.metadata["weak_holdout"] = agreement(trained_agreements)
    trained.metadata["selection_score"] = selection_score("combined", validation[1], sum(trained_agreements) / 2)
    return trained, plan, start, scored


@pytest.mark.parametrize(
    ("start_agreements", "trained_agreements", "handed_back"),
    [((0.9, 0.9), (0.5, 0.5), True),  # clearly worse, on every frame
     ((0.5, 0.5), (0.9, 0.9), False),  # clearly better
     ((0.60, 0.80), (0.75, 0.55), False)],  # 0.05 lower on average, but the frames disagree: within the noise
)  # fmt: skip
def test_a_round_hands_back_its_start_only_when_the_guard_says_so(monkeypatch, start_agreements, trained_agreements, handed_back):
    from sewer_segmentation.pipelines.training_stage import nodes

    trained, plan, start, scored = _stage(start_agreements, trained_agreements, RoundGuard())
    monkeypatch.setattr(nodes, "holdout_agreement", scored)
    nodes.apply_round_guard(trained, plan, "combined", {})
    assert torch.equal(trained.model.weight, start.weight) is handed_back
    assert trained.metadata.get("kept_initial_weights", False) is handed_back
    assert (trained.model_config == {"architecture": "start"}) is handed_back
    assert trained.metadata["start_selection_score"] == pytest.approx(selection_score("combined", 0.6, sum(start_agreements) / 2))
    assert trained.metadata["guard_difference"] == pytest.approx((sum(trained_agreements) - sum(start_agreements)) / 4)
    record = nodes.improvement_record({"stage": "baseline", "best_validation_score": 0.6}, trained.metadata)
    assert record["improved_on_validation"] is (not handed_back and trained.metadata["guard_difference"] > 0)


def test_the_rule_better_refuses_the_dip_that_not_worse_hands_on(monkeypatch):
    from sewer_segmentation.pipelines.training_stage import nodes

    trained, plan, start, scored = _stage((0.60, 0.80), (0.75, 0.55), RoundGuard(rule="better", min_improvement=0.01))
    monkeypatch.setattr(nodes, "holdout_agreement", scored)
    nodes.apply_round_guard(trained, plan, "combined", {})
    assert torch.equal(trained.model.weight, start.weight) and trained.metadata["kept_initial_weights"]


def test_the_start_is_not_predicted_again_when_it_was_saved_with_its_box_agreement_per_frame(monkeypatch):
    from sewer_segmentation.pipelines.training_stage import nodes

    trained, plan, start, _ = _stage((0.9, 0.9), (0.5, 0.5), RoundGuard())
    saved = {"frames": 2, "box_agreement": 0.9, "box_coverage": 1.0, "outside_share": 0.0, "per_frame": {"h1": 0.9, "h2": 0.9}}
    plan.starts_from = {"stage": "baseline", "weak_holdout": saved}

    def never(*_args):
        raise AssertionError("the start was predicted again")

    monkeypatch.setattr(nodes, "holdout_agreement", never)
    nodes.apply_round_guard(trained, plan, "combined", {})
    assert trained.metadata["kept_initial_weights"] and trained.metadata["weak_holdout"] == saved
    assert torch.equal(trained.model.weight, start.weight)


def test_a_start_saved_with_its_agreement_counted_to_another_reach_is_scored_again(monkeypatch):
    from sewer_segmentation.pipelines.training_stage import nodes

    trained, plan, start, scored = _stage((0.9, 0.9), (0.5, 0.5), RoundGuard())
    # saved at reach 1 (a tight prior) with a score that would keep the trained weights; this round counts to 0.5
    saved = {"frames": 2, "box_agreement": 0.1, "box_coverage": 1.0, "outside_share": 0.0, "per_frame": {"h1": 0.1, "h2": 0.1}, "reach": 1.0}
    plan.starts_from, plan.box_reach = {"stage": "baseline", "weak_holdout": saved}, 0.5
    calls = []
    monkeypatch.setattr(nodes, "holdout_agreement", lambda *args: calls.append(args) or scored(*args))
    nodes.apply_round_guard(trained, plan, "combined", {})
    assert len(calls) == 1 and calls[0][0] is plan.previous_model
    assert trained.metadata["kept_initial_weights"]  # the fresh score (0.9) beats the trained 0.5; the stale 0.1 would not
    assert trained.metadata["weak_holdout"]["box_agreement"] == pytest.approx(0.9)  # the start is handed on with its fresh score
    assert trained.metadata["start_selection_score"] == pytest.approx(selection_score("combined", 0.6, 0.9))
