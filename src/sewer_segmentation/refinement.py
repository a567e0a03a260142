"""Turning box masks into refined ("hybrid") training masks with a model's predictions.

Every method maps ``(probability map p, box mask b)`` of one image, both at the image's own size, to a
soft target mask in [0, 1] and a per-pixel loss weight in [0, 1]:

``seed`` (the original experiment's rule)
    prediction = p > 0.75, set to 0 outside the box; mask = 0.3 * box + 0.7 * prediction, weight 1.
    Box pixels the model rejects still get target 0.3, and every pixel counts fully in the loss.

``box_prior``
    mask = p inside the box, 0 outside: outside a box there is no defect (boxes are generous), inside
    the model's probability is kept as a soft target rather than forced to 0/1. The weight is 1 outside
    boxes and where the model is confident, and falls to ``min_weight`` where p is near 0.5, so uncertain
    pixels barely steer the next model ("ignore uncertain pixels", as in Simple Does It / BoxSup).
    A box where the model finds almost nothing (mean p below ``empty_box_threshold`` of the box) is
    kept as a soft box at ``empty_box_value`` with low weight: the detector said there is a defect.

``grabcut`` (this project's default)
    GrabCut (OpenCV) run on the frame itself, initialised from the box: outside = sure background,
    inside = probable foreground, so it learns the defect's and the wall's colours from this very frame.
    The refined mask is the mean of GrabCut's answer and the model's probability inside the box:
    where both agree it is near 0 or 1, where they disagree near 0.5, and the weight (as in
    ``box_prior``) makes such pixels count little. Needs the image; ~50-100 ms per 320x240 frame.

``box`` (no refinement; for comparison)
    mask = box, weight 1.
"""

from __future__ import annotations

import cv2
import numpy as np
from tqdm.auto import tqdm

from sewer_segmentation.imaging import to_uint8

METHODS = ("seed", "box_prior", "grabcut", "box")


def _components(box: np.ndarray) -> tuple[int, np.ndarray]:
    n, labels = cv2.connectedComponents(box.astype(np.uint8), connectivity=4)
    return n, labels


def _confidence_weight(mask: np.ndarray, inside: np.ndarray, min_weight: float) -> np.ndarray:
    """1 outside boxes; inside, 0 where the target is 0.5 rising to 1 where it is 0 or 1."""
    confidence = np.abs(mask - 0.5) * 2.0
    return np.where(inside > 0, np.maximum(confidence, min_weight), 1.0).astype(np.float32)


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
        cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), state, None, background, foreground,
                    int(iterations), cv2.GC_INIT_WITH_MASK)  # fmt: skip
    except cv2.error:
        return None
    return ((state == cv2.GC_FGD) | (state == cv2.GC_PR_FGD)).astype(np.float32)


def refine_mask(
    prob: np.ndarray, box: np.ndarray, method: str, params: dict | None = None, image: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Refined soft mask and weight map (float32, [0, 1]) for one image.

    ``prob``: model probability in [0, 1]; ``box``: box mask (0/255 or 0/1), same shape; ``image``: the
    RGB frame (needed by ``grabcut``).
    """
    params = params or {}
    if prob.shape != box.shape:
        raise ValueError(f"probability map {prob.shape} and box mask {box.shape} differ in size")
    b = (box > 0.5 * box.max()).astype(np.float32) if box.max() > 0 else np.zeros(box.shape, np.float32)
    p = prob.astype(np.float32)
    if method == "box":
        return b, np.ones_like(b)
    if method == "seed":
        threshold = float(params.get("threshold", 0.75))
        box_weight = float(params.get("box_weight", 0.3))
        prediction = (p > threshold).astype(np.float32) * b
        mask = box_weight * b + (1 - box_weight) * prediction
        return np.clip(mask, 0, 1), np.ones_like(b)
    if method == "box_prior":
        min_weight = float(params.get("min_weight", 0.1))
        mask = p * b
        weight = _confidence_weight(mask, b, min_weight)
        empty_threshold = float(params.get("empty_box_threshold", 0.05))
        n, labels = _components(b)
        for k in range(1, n):
            region = labels == k
            if p[region].mean() < empty_threshold:
                mask[region] = float(params.get("empty_box_value", 0.3))
                weight[region] = min_weight
        return mask.astype(np.float32), weight
    if method == "grabcut":
        if image is None or image.shape[:2] != p.shape:
            raise ValueError("the grabcut method needs the frame, at the size of the probability map")
        cut = grabcut_mask(image, b, int(params.get("iterations", 4)))
        if cut is None:  # nothing GrabCut can do: fall back to the model inside the box
            return refine_mask(p, box, "box_prior", params)
        mask = (0.5 * cut + 0.5 * p) * b
        return mask.astype(np.float32), _confidence_weight(mask, b, float(params.get("min_weight", 0.1)))
    raise ValueError(f"unknown refinement method {method!r}; choose one of {', '.join(METHODS)}")


def refine_pool(
    probabilities: dict, images, boxes, method: str, params: dict | None = None, progress: str | None = None
) -> dict:
    """``refine_mask`` over a set of frames: ``{image_id: (mask, weight)}`` as uint8 0..255.

    ``probabilities`` are uint8 maps keyed by image id; ``images`` and ``boxes`` are loaders keyed the
    same way (frames are only read for ``grabcut``). ``progress`` names a progress bar, if wanted.
    """
    out = {}
    items = sorted(probabilities.items())
    for image_id, prob in tqdm(items, desc=progress, unit="img", disable=progress is None):
        image = images[image_id]() if method == "grabcut" else None
        mask, weight = refine_mask(prob.astype(np.float32) / 255.0, boxes[image_id](), method, params, image)
        out[image_id] = (to_uint8(mask), to_uint8(weight))
    return out
