"""``shrunk_boxes``: a toy refinement method, each box mask eroded by ``margin`` pixels (weight 1)."""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from sewer_segmentation.refinement.method import RefinementMethod
from sewer_segmentation.schema import Section


class ShrunkBoxesParams(Section):
    margin: int = Field(2, ge=1, description="pixels taken off every side of a box")


def refine(p: np.ndarray, b: np.ndarray, params: ShrunkBoxesParams, image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    kernel = np.ones((2 * params.margin + 1, 2 * params.margin + 1), np.uint8)
    return cv2.erode((b > 0).astype(np.uint8), kernel).astype(np.float32), np.ones_like(b, dtype=np.float32)


METHOD = RefinementMethod(ShrunkBoxesParams, refine)
