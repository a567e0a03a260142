"""``grabcut``: GrabCut (OpenCV) run on the frame itself, initialised from the box: outside = sure
background, inside = probable foreground, so it learns the defect's and the wall's colours from this
very frame. The refined mask is the mean of GrabCut's answer and the model's probability inside the box:
where both agree it is near 0 or 1, where they disagree near 0.5, and the weight (as in ``box_prior``)
makes such pixels count little. Needs the frame; ~50-100 ms per 320x240 frame."""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from sewer_segmentation.refinement import box_prior
from sewer_segmentation.refinement.method import RefinementMethod, confidence_weight
from sewer_segmentation.schema import Section


class GrabCutParams(Section):
    iterations: int = Field(4, ge=1)
    min_weight: float = Field(0.1, ge=0, le=1)


def grabcut_mask(image: np.ndarray, box: np.ndarray, iterations: int = 4) -> np.ndarray | None:
    """GrabCut foreground (0/1 float) initialised from the box mask; None when GrabCut cannot run
    (no box, or a box covering the whole frame leaves no background to learn from)."""
    inside = box > 0
    if not inside.any() or inside.all():
        return None
    state = np.where(inside, cv2.GC_PR_FGD, cv2.GC_BGD).astype(np.uint8)
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # GrabCut seeds its colour models with OpenCV's global RNG: reset it so that a frame's result does
    # not depend on which frames came before (same masks sharded or not, run after run).
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), state, None, background, foreground, int(iterations), cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return None
    return ((state == cv2.GC_FGD) | (state == cv2.GC_PR_FGD)).astype(np.float32)


def refine(p: np.ndarray, b: np.ndarray, params: GrabCutParams, image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    if image is None or image.shape[:2] != p.shape:
        raise ValueError("the grabcut method needs the frame, at the size of the probability map")
    cut = grabcut_mask(image, b, params.iterations)
    if cut is None:  # nothing GrabCut can do: fall back to the model inside the box
        return box_prior.refine(p, b, box_prior.BoxPriorParams(min_weight=params.min_weight))
    mask = (0.5 * cut + 0.5 * p) * b
    return mask.astype(np.float32), confidence_weight(mask, b, params.min_weight)


METHOD = RefinementMethod(GrabCutParams, refine, needs_image=True)
