"""Whether a round hands on its trained weights or the weights it started from (the round guard).

A round fine-tunes the model handed on by the stage before it. Both are scored on the selection signal
(``model_selection.signal``: the validation images, the weak_holdout boxes, or the mean of the two), and
the guard compares the two scores:

``not_worse`` (the default)
    The trained weights are handed on unless their score is below the start's by more than
    ``standard_errors`` standard errors of the difference (``final_training.round_guard``, validated as
    ``params.RoundGuardParams``). The standard error comes from the per-image differences (IoU of each
    validation image, box agreement of each weak_holdout frame), so the tolerance follows the noise of
    the user's own data: a few validation images tolerate a larger dip than many. With 5-7 validation
    images a round's typical gain is within that noise, so requiring a gain refused most rounds that
    helped (docs/training.md, section 3).
``better``
    The trained weights must beat the start by ``min_improvement`` (the rule before ``not_worse``).

The guard never sees eval. A round handed on with a lower score than its start is still flagged.

Importable without Kedro or torch (its noise estimate is in ``stats.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sewer_segmentation.modelling.config import RoundGuardParams


@dataclass(frozen=True)
class GuardDecision:
    """What the guard decided: hand on the trained weights or the start, and why."""

    keep_trained: bool
    difference: float | None  # trained score - start score
    standard_error: float | None  # of that difference (None: no noise estimate)
    reason: str

    def as_record(self) -> dict:
        return {"guard_difference": self.difference, "guard_standard_error": self.standard_error, "guard_reason": self.reason}


def selection_standard_error(signal: str, validation: float | None, holdout: float | None) -> float | None:
    """Standard error of a difference of selection scores from those of its parts. The combined score is
    the mean of two independent parts; a part without an estimate is left out (as the score leaves out a
    part without a value)."""
    parts = {"validation": [validation], "box_agreement": [holdout], "combined": [validation, holdout]}[signal]
    present = [p for p in parts if p is not None]
    if not present:
        return None
    return math.sqrt(sum(p * p for p in present)) / len(present)


def decide(guard: RoundGuardParams, trained_score: float | None, start_score: float | None, standard_error: float | None) -> GuardDecision:
    """Hand on the trained weights or the start, by ``guard.rule``. Without a start score there is
    nothing to compare with (the trained weights go on); without a trained score the start stays."""
    if start_score is None:
        return GuardDecision(True, None, standard_error, "the start has no score to compare with")
    if trained_score is None:
        return GuardDecision(False, None, standard_error, "the trained weights have no score")
    difference = float(trained_score) - float(start_score)
    if guard.rule == "better":
        keep = difference > guard.min_improvement
        return GuardDecision(keep, difference, standard_error, f"{'beats' if keep else 'does not beat'} the start by more than {guard.min_improvement:g}")
    tolerance = guard.standard_errors * (standard_error or 0.0)
    keep = difference >= -tolerance
    noise = f"{guard.standard_errors:g} standard errors = {tolerance:.3f}" if standard_error is not None else "no noise estimate: tolerance 0"
    return GuardDecision(keep, difference, standard_error, f"{'not ' if keep else ''}worse than the start by more than the tolerance ({noise})")
