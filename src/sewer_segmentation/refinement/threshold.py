"""``threshold``: the model's probability at or above a threshold inside the box, for thin and
low-contrast defects. A hard target whose width follows the model, not the box (a crack 2 px wide stays
2 px wide). The weight falls to ``min_weight`` where p is within ``band`` of the threshold, and a box
where the model finds nothing above the threshold is ignored (weight 0): the detector says a defect is
there, the model cannot see it, so neither 0 nor 1 is a target worth learning."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from sewer_segmentation.refinement.method import RefinementMethod, box_components
from sewer_segmentation.schema import Section


class ThresholdParams(Section):
    threshold: float = Field(0.5, gt=0, lt=1, description="probability at or above which a box pixel is defect")
    band: float = Field(0.15, gt=0, description="probabilities this close to the threshold weigh little")
    min_weight: float = Field(0.1, ge=0, le=1)


def refine(p: np.ndarray, b: np.ndarray, params: ThresholdParams, image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    mask = ((p >= params.threshold) & (b > 0)).astype(np.float32)
    confidence = np.clip(np.abs(p - params.threshold) / params.band, params.min_weight, 1.0)
    weight = np.where(b > 0, confidence, 1.0).astype(np.float32)
    n, labels = box_components(b)
    for k in range(1, n):
        region = labels == k
        if not mask[region].any():  # nothing found in this box: ignore it rather than teach "empty"
            weight[region] = 0.0
    return mask, weight


METHOD = RefinementMethod(ThresholdParams, refine)
