"""``box``: no refinement (the box masks themselves, weight 1): what every other method must beat."""

from __future__ import annotations

import numpy as np

from sewer_segmentation.refinement.method import RefinementMethod
from sewer_segmentation.schema import Section


class BoxParams(Section):
    pass


def refine(p: np.ndarray, b: np.ndarray, params: BoxParams, image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    return b, np.ones_like(b)


METHOD = RefinementMethod(BoxParams, refine)
