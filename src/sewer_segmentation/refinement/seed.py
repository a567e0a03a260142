"""``seed``: the original experiment's rule. prediction = p > ``threshold``, set to 0 outside the box;
mask = ``box_weight`` * box + (1 - ``box_weight``) * prediction, weight 1. Box pixels the model rejects
still get target 0.3, and every pixel counts fully in the loss."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from sewer_segmentation.refinement.method import RefinementMethod
from sewer_segmentation.schema import Section


class SeedParams(Section):
    threshold: float = Field(0.75, gt=0, lt=1)
    box_weight: float = Field(0.3, ge=0, le=1)


def refine(p: np.ndarray, b: np.ndarray, params: SeedParams, image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    prediction = (p > params.threshold).astype(np.float32) * b
    mask = params.box_weight * b + (1 - params.box_weight) * prediction
    return np.clip(mask, 0, 1), np.ones_like(b)


METHOD = RefinementMethod(SeedParams, refine)
