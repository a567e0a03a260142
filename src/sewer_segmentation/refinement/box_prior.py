"""``box_prior``: the model's probability inside the box, 0 outside. Outside a box there is no defect
(boxes are generous); inside, the model's probability is kept as a soft target rather than forced to
0/1. The weight is 1 outside boxes and where the model is confident, and falls to ``min_weight`` where p
is near 0.5 (Simple Does It / BoxSup ignore uncertain pixels). A box where the model finds almost nothing
(mean p below ``empty_box_threshold``) is kept as a soft box at ``empty_box_value`` with low weight: the
detector said there is a defect."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from sewer_segmentation.refinement.method import RefinementMethod, box_components, confidence_weight
from sewer_segmentation.schema import Section


class BoxPriorParams(Section):
    min_weight: float = Field(0.1, ge=0, le=1)
    empty_box_threshold: float = Field(0.05, ge=0, le=1, description="mean probability under which a box counts as empty")
    empty_box_value: float = Field(0.3, ge=0, le=1, description="the soft target of an empty box")


def refine(p: np.ndarray, b: np.ndarray, params: BoxPriorParams, image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    mask = p * b
    weight = confidence_weight(mask, b, params.min_weight)
    n, labels = box_components(b)
    for k in range(1, n):
        region = labels == k
        if p[region].mean() < params.empty_box_threshold:
            mask[region] = params.empty_box_value
            weight[region] = params.min_weight
    return mask.astype(np.float32), weight


METHOD = RefinementMethod(BoxPriorParams, refine)
