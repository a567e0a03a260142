"""Nodes of the mask_refinement pipeline: the best model so far turns box masks into refined masks.

Round r refines with the model the stage before it handed on (``io.stages.best_model_before``). With
``method: auto`` the refinement method is chosen on baseline_val (hand-labelled, not trained on by the
refining model, never eval): whichever candidate's masks agree best with the polygons there.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from sewer_segmentation.data.splits import BASELINE_VAL, WEAK, check_model_matches_splits, check_splits_agree
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.files import StagedFolder, StagingArea, staged_folders
from sewer_segmentation.io.imaging import by_image_id, read_file, to_uint8, write_file
from sewer_segmentation.modelling.evaluation import score_predictors
from sewer_segmentation.modelling.inference import TrainedModel, predict_frames
from sewer_segmentation.params import InferenceParams, MaskRefinementParams, RayParams
from sewer_segmentation.refinement.masks import MASKS, WEIGHTS, RefinedMasks
from sewer_segmentation.refinement.methods import candidate_settings, choose_refinement, refine_pool, refine_stored
from sewer_segmentation.refinement.registry import REFINEMENT_METHODS
from sewer_segmentation.reporting.plots import BOX_COLOUR, POLYGON_COLOUR, TRUTH_COLOUR, image_grid, overlay

logger = logging.getLogger(__name__)

FAILURE_COLUMNS = ["image_id", "error"]


def refine_weak_pool(
    split_manifest: pd.DataFrame, trained: TrainedModel, images, box_masks, choice: dict, inference: InferenceParams,
    refinement: MaskRefinementParams, engine: str, ray: RayParams, staging: StagingArea,
) -> tuple[RefinedMasks | StagedFolder, pd.DataFrame, dict]:  # fmt: skip
    """The round's refined masks of every weak image (``images``, partitions) by the chosen method, the
    frames that failed, and the probability maps (uint8) the masks came from.

    The weak folder is first checked against the manifest (an interrupted data_engineering run must not
    slip labelled or eval images in). ``engine: local`` predicts in batches here, then refines on every
    core; ``engine: ray`` streams both over the Ray cluster (``scaling/ray_engine.py``), the workers writing
    the masks into the new version's staging folder, and keeps no probability map (a million would not
    fit). A frame that fails is reported (never replaced by an all-zero mask) and left out.
    """
    check_splits_agree(split_manifest, {WEAK: images})
    if not images:
        raise BadInputError("the weak pool is empty: every kept frame is hand-labelled (or no frame has boxes only), so there is "
                            "nothing to refine. The baseline is the model: `kedro run --pipeline=predict --params=predict_model=baseline`")  # fmt: skip
    check_model_matches_splits(split_manifest, trained.metadata, "the refining model")
    if engine == "ray":
        staged, failures = refine_on_ray(trained, images, box_masks, choice, inference, ray, staging)
        return staged, failures, {}
    probabilities, failures = predict_pool(trained, images, inference)
    refined = refine_pool(probabilities, images, box_masks, choice["method"], choice["params"], f"refine masks ({choice['label']})", refinement.n_jobs)
    logger.info("Refined %d masks with %s", len(refined), choice["label"])
    return RefinedMasks.of(refined), failures, probabilities


def predict_pool(trained: TrainedModel, images, inference: InferenceParams) -> tuple[dict, pd.DataFrame]:
    """Probability maps (uint8) of every image of ``images`` (partitions), batched with a progress bar; the
    frames that could not be predicted, with their errors."""
    probabilities: dict[str, np.ndarray] = {}
    failures = []
    for prediction in predict_frames(trained, images, inference, description="predict weak pool"):
        if prediction.error:
            failures.append({"image_id": prediction.image_id, "error": prediction.error})
            logger.error("Prediction failed for %s: %s", prediction.image_id, prediction.error)
        else:
            probabilities[prediction.image_id] = to_uint8(prediction.probability)
    return probabilities, pd.DataFrame(failures, columns=FAILURE_COLUMNS)


def refine_on_ray(trained: TrainedModel, images, box_masks, choice: dict, inference, ray: RayParams, staging: StagingArea) -> tuple[StagedFolder, pd.DataFrame]:
    """Predict and refine every weak frame on Ray, each mask written by its worker into a fresh staging
    folder of the round's versions; the folder is returned for the dataset to commit (or removed on failure)."""
    from sewer_segmentation.scaling.ray_engine import FrameJob, file_of, run_frames  # noqa: PLC0415 - Ray only when asked for

    with staged_folders(staging) as (folder,):
        jobs = [FrameJob(i, file_of(images[i], "weak frames"), {"box": file_of(box_masks[i], "weak box masks")}) for i in sorted(images)]
        finish = partial(write_refined_frame, method=choice["method"], params=choice["params"], folder=str(folder))
        statuses = run_frames(jobs, trained, inference, finish, ray, description=f"refine on ray ({choice['label']})")
    failures = sorted((s for s in statuses if "error" in s), key=lambda s: s["image_id"])
    for failure in failures:
        logger.error("Refinement failed for %s: %s", failure["image_id"], failure["error"])
    logger.info("Refined %d masks with %s on Ray", len(statuses) - len(failures), choice["label"])
    return StagedFolder(folder), pd.DataFrame(failures, columns=FAILURE_COLUMNS)


def write_refined_frame(result, method: str, params: dict, folder: str) -> dict:
    """On a Ray worker: one frame's refined mask and weight map, written as ``RefinedMasks`` stores them."""
    image = read_file(**result.frame) if REFINEMENT_METHODS[method].needs_image else None
    mask, weight = refine_stored(to_uint8(result.probability), read_file(**result.extra["box"]), method, params, image)
    for kind, array in ((MASKS, mask), (WEIGHTS, weight)):
        write_file(Path(folder) / kind / f"{result.image_id}.png", array)
    return {}


def choose_refinement_method(
    split_manifest: pd.DataFrame, selection_probabilities: dict, images, box_masks, masks, refinement: MaskRefinementParams
) -> dict:  # fmt: skip
    """The refinement method for this round: the one configured, or for ``auto`` the candidate whose
    masks agree best with the hand-drawn masks of the selection images (baseline_val, checked against
    the manifest: never an eval image)."""
    check_splits_agree(split_manifest, {BASELINE_VAL: images})
    choice = choose_refinement(selection_probabilities, images, box_masks, masks, refinement)
    if choice["scores"]:
        ranked = sorted(choice["scores"].items(), key=lambda kv: -kv[1])
        others = [(k, v) for k, v in ranked if k != choice["label"]]
        logger.info("Refinement method chosen on %d baseline_val images: %s (agreement with polygons %.3f; next: %s)",
                    choice["selection_images"], choice["label"], choice["scores"][choice["label"]],
                    ", ".join(f"{k} {v:.3f}" for k, v in others[:3]))  # fmt: skip
        if choice.get("kept_boxes"):
            logger.warning("No refinement candidate beat the box masks by more than %.1f standard errors on baseline_val (best: %s %.3f, "
                           "box %.3f): the box masks are used as they are", choice["box_margin"], ranked[0][0], ranked[0][1],
                           choice["scores"].get("box", float("nan")))  # fmt: skip
        if choice["selection_images"] < 5:
            logger.warning("Only %d baseline_val images chose the refinement method: the choice is noisy "
                           "(raise data_engineering.split.val_fraction or label more images)", choice["selection_images"])  # fmt: skip
    return choice


def score_refinement_methods(
    refined_masks: RefinedMasks, choice: dict, weak_probabilities: dict, weak_images, weak_box_masks, ground_truth,
    refinement: MaskRefinementParams,
) -> dict:  # fmt: skip
    """The evidence behind the round's masks: each candidate's agreement with the polygons of the
    selection images (what ``auto`` chose on) and, on synthetic data, each candidate's weak-pool masks
    against ground truth (never used to choose). The masks in use are taken from ``refined_masks``; the
    other candidates are scored only where the probability maps stayed here (``engine: local``)."""
    truth = by_image_id(ground_truth)
    refined_ids = refined_masks.ids()
    weak_truth = {i: t for i, t in truth.items() if i in set(refined_ids)}
    quality: dict = {"used": choice["label"], "method": choice["method"], "params": choice["params"],
                     "selection_images": choice["selection_images"], "eligible": choice.get("eligible", []), "methods": {}}  # fmt: skip
    jobs = refinement.n_jobs
    candidates = candidate_settings(refinement) if refinement.method == "auto" else [(choice["label"], choice["method"], choice["params"])]
    for label, method, params in candidates:
        entry = {}
        if label in choice["scores"]:
            entry["selection_vs_polygons"] = choice["scores"][label]
        if weak_truth and (label == choice["label"] or weak_probabilities):
            if label == choice["label"]:
                masks = {i: refined_masks.mask(i) for i in refined_ids}
            else:
                masks = {i: m for i, (m, _) in refine_pool(weak_probabilities, weak_images, weak_box_masks, method, params, n_jobs=jobs).items()}
            summary, _ = score_predictors({label: masks}, {"ground_truth": weak_truth})
            if summary:
                entry["weak_vs_ground_truth"] = summary[label]["ground_truth"]
        quality["methods"][label] = entry
    if weak_truth:
        boxes = {i: weak_box_masks[i]() for i in refined_ids}
        summary, _ = score_predictors({"box": boxes}, {"ground_truth": weak_truth})
        quality["box_masks_vs_ground_truth"] = summary["box"]["ground_truth"]
    return quality


def plot_refinement_gallery(weak_images, weak_box_masks, refined_masks: RefinedMasks, ground_truth, n_cases: int, round_number: int):
    """Box mask, refined mask and (synthetic) true mask side by side for a few weak images."""
    truth = by_image_id(ground_truth)
    ids = refined_masks.ids()
    picked = [ids[i] for i in np.linspace(0, len(ids) - 1, min(int(n_cases), len(ids))).astype(int)] if ids else []
    rows = []
    for image_id in picked:
        image = weak_images[image_id]()
        refined = refined_masks.mask(image_id)
        row = [
            (image_id, image),
            ("box mask", overlay(image, weak_box_masks[image_id](), BOX_COLOUR)),
            ("refined (soft)", overlay(image, refined, POLYGON_COLOUR)),
        ]
        if image_id in truth:
            row.append(("ground truth", overlay(image, truth[image_id](), TRUTH_COLOUR)))
        rows.append(row)
    return image_grid(rows, f"Round {round_number}: box masks -> refined masks")
