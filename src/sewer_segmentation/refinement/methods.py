"""Turning box masks into refined ("hybrid") training masks with a model's predictions.

The methods themselves are registered in ``registry.py`` (one file each: ``threshold``, ``grabcut``,
``box_prior``, ``seed``, ``box``). This module applies one to a pool of frames (``refine_pool``, on every
core) and, for ``mask_refinement.method: auto``, chooses one (``choose_refinement``): every candidate (each
method named in ``auto.methods``, and ``threshold`` at each of ``auto.thresholds``) is scored on
hand-labelled images the refining model did not train on and that are not eval images, and the one whose
masks agree best with the polygons is used, if it beats the box masks beyond the noise of those images.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from pydantic import BaseModel

from sewer_segmentation.io.imaging import to_uint8
from sewer_segmentation.progress import progress_bar
from sewer_segmentation.refinement.config import MaskRefinementParams
from sewer_segmentation.refinement.registry import REFINEMENT_METHODS
from sewer_segmentation.schema import as_model


def refine_mask(
    prob: np.ndarray, box: np.ndarray, method: str, params: BaseModel | dict | None = None, image: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Refined soft mask and weight map (float32, [0, 1]) for one image by refinement method ``method``.

    ``prob``: model probability in [0, 1]; ``box``: box mask (0/255 or 0/1), same shape; ``params``: the
    method's parameter model, or a dict of its settings (its defaults for what is missing); ``image``: the
    RGB frame (needed by methods that look at it, such as ``grabcut``).
    """
    if method not in REFINEMENT_METHODS:
        raise ValueError(f"unknown refinement method {method!r}; choose one of {', '.join(REFINEMENT_METHODS)}")
    spec = REFINEMENT_METHODS[method]
    if prob.shape != box.shape:
        raise ValueError(f"probability map {prob.shape} and box mask {box.shape} differ in size")
    settings = params if isinstance(params, spec.params) else spec.params.model_validate(params or {})
    b = (box > 0.5 * box.max()).astype(np.float32) if box.max() > 0 else np.zeros(box.shape, np.float32)
    return spec.refine(prob.astype(np.float32), b, settings, image)


def refine_stored(
    prob: np.ndarray, box: np.ndarray, method: str, params: BaseModel | dict | None = None, image: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``refine_mask`` from a stored probability map (uint8 0..255) to a stored mask and weight map (uint8):
    one frame of a round, the same on every engine."""
    mask, weight = refine_mask(prob.astype(np.float32) / 255.0, box, method, params, image)
    return to_uint8(mask), to_uint8(weight)


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
    same way (frames are only read for methods that need them). ``progress`` names a progress bar, if
    wanted. ``n_jobs`` threads share the frames (OpenCV and numpy release the GIL); every frame's result
    is independent of the others (GrabCut is reseeded per frame), so the masks are the same for any n_jobs.
    """
    spec = REFINEMENT_METHODS[method]
    settings = spec.params.model_validate(params or {})

    def one(item):
        image_id, prob = item
        image = images[image_id]() if spec.needs_image else None
        return image_id, refine_stored(prob, boxes[image_id](), method, settings, image)

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


def candidate_settings(refinement: MaskRefinementParams) -> list[tuple[str, str, dict]]:
    """``(label, method, settings)`` of every candidate ``auto`` weighs, in order of preference on ties:
    ``threshold`` at each of ``auto.thresholds``, then the other methods of ``auto.methods`` (settings as
    plain values: the choice is saved as JSON)."""
    refinement = as_model(MaskRefinementParams, refinement)
    threshold = refinement.method_params("threshold").model_dump()
    candidates = [(f"threshold@{t:g}", "threshold", {**threshold, "threshold": float(t)}) for t in refinement.auto.thresholds]
    for method in refinement.auto.methods:
        candidates.append((method, method, refinement.method_params(method).model_dump()))
    return candidates


def soft_agreement(mask: np.ndarray, truth: np.ndarray) -> float:
    """Soft IoU of a refined mask (uint8 0..255, read as probabilities) with a 0/255 hand-drawn mask:
    Σmin / Σmax. Unlike thresholding, it charges a soft haze (the seed rule's 0.3 over whole boxes)
    for what a model trained on it learns. Two empty masks agree fully."""
    m, t = mask.astype(np.float32) / 255.0, (truth > 127).astype(np.float32)
    union = np.maximum(m, t).sum()
    return 1.0 if union == 0 else float(np.minimum(m, t).sum() / union)


def candidate_agreements(probabilities: dict, images, boxes, truths, refinement: MaskRefinementParams) -> dict[str, np.ndarray]:
    """Per image (sorted by id), the ``soft_agreement`` of every candidate's refined mask with the hand-drawn one."""
    refinement = as_model(MaskRefinementParams, refinement)
    truth = {i: truths[i]() for i in probabilities}
    agreements = {}
    for label, method, params in candidate_settings(refinement):
        refined = refine_pool(probabilities, images, boxes, method, params, n_jobs=refinement.n_jobs)
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


def choose_refinement(probabilities: dict, images, boxes, truths, refinement: MaskRefinementParams) -> dict:
    """The method (and its settings) that ``refinement.method`` names, or for ``auto`` the candidate
    whose masks agree best with hand-drawn masks on the images given (never eval images: the caller
    passes baseline_val). A candidate other than ``box`` must beat the box masks by more than
    ``auto.box_margin`` standard errors, else the box masks are kept: refined masks worse than the boxes
    they came from are the failure this guards against. Returns ``{method, params, label, scores,
    selection_images}``."""
    refinement = as_model(MaskRefinementParams, refinement)
    if refinement.method != "auto":
        return {"method": refinement.method, "params": refinement.method_params(refinement.method).model_dump(), "label": refinement.method,
                "scores": {}, "selection_images": 0}  # fmt: skip
    if not probabilities:
        raise ValueError("mask_refinement.method auto needs hand-labelled validation images to choose on")
    agreements = candidate_agreements(probabilities, images, boxes, truths, refinement)
    scores = {label: round(float(values.mean()), 5) for label, values in agreements.items()}
    settings = {label: (m, p) for label, m, p in candidate_settings(refinement)}
    margin = refinement.auto.box_margin
    eligible = [label for label in scores if beats_boxes(agreements, label, margin)]
    label = max(eligible, key=lambda k: scores[k])  # the first of equal scores: candidates are in preference order
    return {"method": settings[label][0], "params": settings[label][1], "label": label, "scores": scores,
            "selection_images": len(probabilities), "box_margin": margin, "eligible": eligible,
            "kept_boxes": label == "box" and max(scores, key=lambda k: scores[k]) != "box"}  # fmt: skip
