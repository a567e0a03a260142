import pytest
import torch
from pydantic import ValidationError

from sewer_segmentation.modelling.losses import LOSSES, build_loss
from sewer_segmentation.params import LossParams


def perfect_logits(target):
    return torch.where(target > 0.5, 20.0, -20.0)


@pytest.fixture
def target():
    t = torch.zeros(2, 1, 16, 16)
    t[:, :, 4:12, 4:12] = 1.0
    return t


@pytest.mark.parametrize("name", list(LOSSES))
def test_perfect_prediction_scores_lower_than_inverted(name, target):
    loss = build_loss(name)
    good = loss(perfect_logits(target), target)
    bad = loss(perfect_logits(1 - target), target)
    assert good < bad
    assert torch.isfinite(good) and torch.isfinite(bad)


@pytest.mark.parametrize("name", ["tversky", "dice", "bce", "focal", "edge_bce", "lovasz"])
def test_pixels_with_zero_weight_are_ignored(name, target):
    loss = build_loss(name)
    logits = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    weight = torch.ones_like(target)
    weight[:, :, :, :8] = 0
    changed = target.clone()
    changed[:, :, :, :8] = 1 - changed[:, :, :, :8]  # only ignored pixels change
    assert torch.allclose(loss(logits, target, weight), loss(logits, changed, weight), atol=1e-6)


def test_soft_targets_are_accepted_and_matter():
    loss = build_loss("bce")
    logits = torch.zeros(1, 1, 4, 4)
    soft = torch.full((1, 1, 4, 4), 0.3)
    assert loss(logits, soft) == pytest.approx(float(torch.log(torch.tensor(2.0))), rel=1e-5)
    tversky = build_loss("tversky")
    assert tversky(perfect_logits(soft * 0 + 1), soft) != tversky(perfect_logits(soft * 0 + 1), soft * 0 + 1)


def test_tversky_matches_hand_computation():
    # p = sigmoid(0) = 0.5 everywhere; 4 pixels, target 1 on 2 of them: TP = 1, FP = 1, FN = 1
    loss = build_loss("tversky", {"alpha": 0.3, "beta": 0.7, "smooth": 0.0})
    target = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
    expected = 1 - 1 / (1 + 0.3 * 1 + 0.7 * 1)
    assert float(loss(torch.zeros(1, 1, 2, 2), target)) == pytest.approx(expected)


def test_edge_band_has_low_weight():
    target = torch.zeros(1, 1, 32, 32)
    target[:, :, 8:24, 8:24] = 1
    logits = torch.zeros(1, 1, 32, 32)
    logits_wrong_at_edge = logits.clone()
    logits_wrong_at_edge[:, :, 8, 8:24] = -30  # wrong only on the border row
    logits_wrong_inside = logits.clone()
    logits_wrong_inside[:, :, 16, 8:24] = -30  # same number of pixels, deep inside
    loss = build_loss("edge_bce", {"band": 2, "edge_weight": 0.1})
    assert loss(logits_wrong_at_edge, target) < loss(logits_wrong_inside, target)


def test_names_and_errors():
    assert type(build_loss("TverskyLoss", {"alpha": 0.5, "beta": 0.5, "mode": "binary", "from_logits": True})).__name__ == "TverskyLoss"
    assert type(build_loss("BBoxAwareLoss")).__name__ == "EdgeAwareBCELoss"
    # the parameter model refuses both before a run: an unknown name (with the choices) and arguments the loss does not take
    with pytest.raises(ValidationError, match="unknown loss 'hinge'; choose one of tversky"):
        LossParams(name="hinge")
    with pytest.raises(ValidationError, match="loss 'dice' does not take these args"):
        LossParams(name="dice", args={"alpha": 1})
    assert LossParams(name="TverskyLoss", args={"alpha": 0.7}).name == "TverskyLoss"
