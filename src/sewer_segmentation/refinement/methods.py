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

``threshold`` (for thin and low-contrast defects)
    mask = 1 where p >= ``threshold`` inside the box, else 0: a hard target whose width follows the
    model, not the box (a crack 2 px wide stays 2 px wide). The weight falls to ``min_weight`` where p
    is within ``band`` of the threshold, and a box where the model finds nothing above the threshold is
    ignored (weight 0): the detector says a defect is there, the model cannot see it, so neither 0 nor 1
    is a target worth learning.

``grabcut``
    GrabCut (OpenCV) run on the frame itself, initialised from the box: outside = sure background,
    inside = probable foreground, so it learns the defect's and the wall's colours from this very frame.
    The refined mask is the mean of GrabCut's answer and the model's probability inside the box:
    where both agree it is near 0 or 1, where they disagree near 0.5, and the weight (as in
    ``box_prior``) makes such pixels count little. Needs the image; ~50-100 ms per 320x240 frame.

``box`` (no refinement; for comparison)
    mask = box, weight 1.

``auto`` (the default) is not a method of its own: ``choose_refinement`` scores every candidate (each
method, and ``threshold`` at several thresholds) on hand-labelled images the refining model did not
train on and that are not eval images, and picks the one whose masks agree best with the polygons.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from sewer_segmentation.io.imaging import to_uint8
from sewer_segmentation.progress import progress_bar

METHODS = ("threshold", "grabcut", "box_prior", "seed", "box")


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
    if method == "threshold":
        threshold = float(params.get("threshold", 0.5))
        band, min_weight = float(params.get("band", 0.15)), float(params.get("min_weight", 0.1))
        mask = ((p >= threshold) & (b > 0)).astype(np.float32)
        confidence = np.clip(np.abs(p - threshold) / max(band, 1e-6), min_weight, 1.0)
        weight = np.where(b > 0, confidence, 1.0).astype(np.float32)
        n, labels = _components(b)
        for k in range(1, n):
            region = labels == k
            if not mask[region].any():  # nothing found in this box: ignore it rather than teach "empty"
                weight[region] = 0.0
        return mask, weight
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


def resolve_jobs(n_jobs: int | str | None) -> int:
    """``auto`` (or None): every core this process may use; else the number given (at least 1)."""
    if n_jobs in (None, "auto"):
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
    return max(1, int(n_jobs))


def refine_pool(
    probabilities: dict, images, boxes, method: str, params: dict | None = None, progress: str | None = None,
    n_jobs: int | str | None = 1,
) -> dict:  # fmt: skip
    """``refine_mask`` over a set of frames: ``{image_id: (mask, weight)}`` as uint8 0..255.

    ``probabilities`` are uint8 maps keyed by image id; ``images`` and ``boxes`` are loaders keyed the
    same way (frames are only read for ``grabcut``). ``progress`` names a progress bar, if wanted.
    ``n_jobs`` threads share the frames (OpenCV and numpy release the GIL); every frame's result is
    independent of the others (GrabCut is reseeded per frame), so the masks are the same for any n_jobs.
    """

    def one(item):
        image_id, prob = item
        image = images[image_id]() if method == "grabcut" else None
        mask, weight = refine_mask(prob.astype(np.float32) / 255.0, boxes[image_id](), method, params, image)
        return image_id, (to_uint8(mask), to_uint8(weight))

    items = sorted(probabilities.items())
    jobs = min(resolve_jobs(n_jobs), max(1, len(items)))
    bar = progress_bar(total=len(items), desc=progress, unit="img", disable=progress is None)
    out = {}
    with bar, ThreadPoolExecutor(max_workers=jobs) as pool:
        for image_id, result in pool.map(one, items):
            out[image_id] = result
            bar.update()
    return out


# --------------------------------------------------------------------------------------------------
# Choosing the method (``method: auto``)
# --------------------------------------------------------------------------------------------------


def candidate_settings(refinement: dict) -> list[tuple[str, str, dict]]:
    """``(label, method, params)`` of every candidate ``auto`` weighs, in order of preference on ties:
    ``threshold`` at each of ``auto.thresholds``, then the other methods of ``auto.methods``."""
    auto = refinement.get("auto") or {}
    candidates = []
    for t in auto.get("thresholds", [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]):
        candidates.append((f"threshold@{float(t):g}", "threshold", {**(refinement.get("threshold") or {}), "threshold": float(t)}))
    for method in auto.get("methods", ["grabcut", "box_prior", "seed", "box"]):
        if method not in METHODS or method == "threshold":
            raise ValueError(f"mask_refinement.auto.methods: {method!r} is not one of {', '.join(m for m in METHODS if m != 'threshold')}")
        candidates.append((method, method, dict(refinement.get(method) or {})))
    return candidates


def soft_agreement(mask: np.ndarray, truth: np.ndarray) -> float:
    """Soft IoU of a refined mask (uint8 0..255, read as probabilities) with a 0/255 hand-drawn mask:
    Σmin / Σmax. Unlike thresholding, it charges a soft haze (the seed rule's 0.3 over whole boxes)
    for what a model trained on it learns. Two empty masks agree fully."""
    m, t = mask.astype(np.float32) / 255.0, (truth > 127).astype(np.float32)
    union = np.maximum(m, t).sum()
    return 1.0 if union == 0 else float(np.minimum(m, t).sum() / union)


def candidate_agreements(probabilities: dict, images, boxes, truths, refinement: dict) -> dict[str, np.ndarray]:
    """Per image (sorted by id), the ``soft_agreement`` of every candidate's refined mask with the hand-drawn one."""
    truth = {i: truths[i]() for i in probabilities}
    agreements = {}
    for label, method, params in candidate_settings(refinement):
        refined = refine_pool(probabilities, images, boxes, method, params, n_jobs=refinement.get("n_jobs", "auto"))
        agreements[label] = np.array([soft_agreement(refined[i][0], truth[i]) for i in sorted(refined)])
    return agreements


def beats_boxes(agreements: dict[str, np.ndarray], label: str, margin: float) -> bool:
    """Whether ``label`` agrees with the polygons better than the box masks by more than ``margin``
    standard errors of the per-image difference (the noise of a few selection images). With one image
    the noise is unknown, and any positive difference counts."""
    if label == "box" or "box" not in agreements:
        return True
    difference = agreements[label] - agreements["box"]
    noise = difference.std(ddof=1) / np.sqrt(len(difference)) if len(difference) > 1 else 0.0
    return float(difference.mean()) > margin * float(noise)


def choose_refinement(probabilities: dict, images, boxes, truths, refinement: dict) -> dict:
    """The method (and its parameters) that ``refinement.method`` names, or for ``auto`` the candidate
    whose masks agree best with hand-drawn masks on the images given (never eval images: the caller
    passes baseline_val). A candidate other than ``box`` must beat the box masks by more than
    ``auto.box_margin`` standard errors, else the box masks are kept: refined masks worse than the boxes
    they came from are the failure this guards against. Returns ``{method, params, label, scores,
    selection_images}``."""
    method = refinement["method"]
    if method != "auto":
        if method not in METHODS:
            raise ValueError(f"mask_refinement.method must be auto or one of {', '.join(METHODS)}, got {method!r}")
        return {"method": method, "params": dict(refinement.get(method) or {}), "label": method, "scores": {},
                "selection_images": 0}  # fmt: skip
    if not probabilities:
        raise ValueError("mask_refinement.method auto needs hand-labelled validation images to choose on")
    agreements = candidate_agreements(probabilities, images, boxes, truths, refinement)
    scores = {label: round(float(values.mean()), 5) for label, values in agreements.items()}
    settings = {label: (m, p) for label, m, p in candidate_settings(refinement)}
    margin = float((refinement.get("auto") or {}).get("box_margin", 1.0))
    eligible = [label for label in scores if beats_boxes(agreements, label, margin)]
    label = max(eligible, key=lambda k: scores[k])  # the first of equal scores: candidates are in preference order
    return {"method": settings[label][0], "params": settings[label][1], "label": label, "scores": scores,
            "selection_images": len(probabilities), "box_margin": margin,
            "kept_boxes": label == "box" and max(scores, key=lambda k: scores[k]) != "box"}  # fmt: skip
