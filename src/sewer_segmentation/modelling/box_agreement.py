"""How well a model's masks agree with detection boxes it never trained on (the ``weak_holdout`` split).

Validation holds a handful of hand-labelled images; the weak pool holds hundreds of boxed frames. A box
says two things about the true mask (the tightness prior of box supervision): the defect reaches every
row and every column of its box, and nothing lies outside every box. A model's thresholded mask on a
held-out boxed frame is scored on both:

- **coverage**: per box, the share of its rows and of its columns that the mask reaches inside the box
  (mean of the two), averaged over the frame's boxes. Boxes looser than their defects break the prior:
  with ``reach`` below 1 (the share the user's hand-drawn masks reach of their own boxes,
  ``modelling/plan.py``) a mask reaching that share scores full coverage, so a mask grown to fill a loose
  box no longer scores higher than the defect;
- **outside share**: the share of the mask's pixels that lie outside every box.

``agreement = coverage * (1 - outside share)`` per frame, averaged over frames. It cannot tell a tight
mask from the filled box (both score 1), so it judges models trained on polygons and boxes, not the
refinement candidates (the box masks would always win): those stay chosen on baseline_val.

Numpy only; importable without Kedro or torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from sewer_segmentation.data.boxes import clipped_boxes, inside_boxes

#: Ways a stage's model is scored when stages and rounds are compared (``model_selection.signal``).
SIGNALS = ("validation", "box_agreement", "combined")


def frame_agreement(mask: np.ndarray, boxes: np.ndarray, reach: float = 1.0) -> tuple[float, float]:
    """(coverage, outside share) of one frame's boolean ``mask`` against its ``K x 4`` boxes (x0, y0, x1,
    y1, end-exclusive); a box's coverage counts up to ``reach`` of its rows and columns. A frame without
    boxes has coverage 1 (nothing to reach)."""
    if not 0 < reach <= 1:
        raise ValueError(f"reach must be in (0, 1], got {reach}")
    mask = np.asarray(mask, bool)
    inside = inside_boxes(boxes, mask.shape)
    coverages = []
    for x0, y0, x1, y1 in clipped_boxes(boxes, mask.shape):
        crop = mask[y0:y1, x0:x1]
        if crop.size:
            coverages.append(min(1.0, (crop.any(axis=1).mean() + crop.any(axis=0).mean()) / 2 / reach))
    predicted = int(mask.sum())
    outside = float((mask & ~inside).sum() / predicted) if predicted else 0.0
    return (float(np.mean(coverages)) if coverages else 1.0), outside


def thresholded(probability: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The boolean mask of a probability map: uint8 0..255 (as stored) or float 0..1."""
    probability = np.asarray(probability)
    return probability >= threshold * (255.0 if probability.dtype == np.uint8 else 1.0)


def box_agreement(probabilities: Mapping[str, np.ndarray], boxes: Mapping[str, np.ndarray], threshold: float = 0.5, reach: float = 1.0) -> dict:
    """Mean agreement, coverage and outside share over frames (``probabilities``: uint8 0..255 or float
    0..1 maps at each frame's own size; ``boxes``: that frame's ``K x 4`` boxes), None when no frames;
    ``per_frame``, each frame's agreement (the noise of a comparison of two models, ``round_guard``); and
    the ``reach`` coverage was counted up to."""
    if not 0 < reach <= 1:
        raise ValueError(f"reach must be in (0, 1], got {reach}")
    rows, per_frame = [], {}
    for image_id in sorted(probabilities):
        probability = np.asarray(probabilities[image_id])
        coverage, outside = frame_agreement(thresholded(probability, threshold), boxes[image_id], reach)
        rows.append((coverage, outside, coverage * (1.0 - outside)))
        per_frame[image_id] = round(rows[-1][2], 5)
    if not rows:
        return {"frames": 0, "box_agreement": None, "box_coverage": None, "outside_share": None, "per_frame": {}, "reach": reach}
    coverage, outside, agreement = (float(np.mean(column)) for column in zip(*rows, strict=True))
    return {"frames": len(rows), "box_agreement": agreement, "box_coverage": coverage, "outside_share": outside, "per_frame": per_frame,
            "reach": reach}  # fmt: skip


def selection_score(signal: str, validation: float | None, agreement: float | None) -> float | None:
    """The score stages are compared by: the validation metric, the weak_holdout box agreement, or their
    mean. Whichever part is missing (no validation images, no held-out frames) leaves the other."""
    parts = {"validation": [validation], "box_agreement": [agreement], "combined": [validation, agreement]}[signal]
    present = [float(p) for p in parts if p is not None and math.isfinite(float(p))]
    if not present:
        fallback = [float(p) for p in (validation, agreement) if p is not None and math.isfinite(float(p))]
        return fallback[0] if fallback else None
    return float(np.mean(present))
