"""Nodes of the mask_refinement pipeline: the best model so far turns box masks into refined masks.

Round r refines with the model the stage before it handed on (``io.stages.best_model_before``). With
``method: auto`` the refinement method is chosen on baseline_val (hand-labelled, not trained on by the
refining model, never eval): whichever candidate's masks agree best with the polygons there.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from sewer_segmentation.data.splits import BASELINE_VAL, WEAK, check_model_matches_splits, check_splits_agree
from sewer_segmentation.errors import BadInputError, MissingArtifactError
from sewer_segmentation.io.imaging import by_image_id, to_uint8
from sewer_segmentation.modelling.evaluation import score_predictors
from sewer_segmentation.modelling.inference import TrainedModel, predict_frames
from sewer_segmentation.params import InferenceParams, MaskRefinementParams, ShardParams
from sewer_segmentation.refinement.masks import RefinedMasks
from sewer_segmentation.refinement.methods import candidate_settings, choose_refinement, refine_pool
from sewer_segmentation.reporting.plots import BOX_COLOUR, POLYGON_COLOUR, TRUTH_COLOUR, image_grid, overlay

logger = logging.getLogger(__name__)

FAILURE_COLUMNS = ["image_id", "error"]


def shard_of(ids: list[str], shard: ShardParams | None) -> list[str]:
    """The image ids shard ``index`` of ``count`` handles: every count-th id of the sorted list, so shards
    are disjoint, cover everything and stay balanced; the same on every machine."""
    shard = shard or ShardParams()
    return sorted(ids)[shard.index :: shard.count]


def predict_pool(
    split_manifest: pd.DataFrame, trained: TrainedModel, images, inference: InferenceParams, refinement: MaskRefinementParams | None = None
) -> tuple[dict, pd.DataFrame]:
    """Probability maps (uint8) of every image of the weak pool ``images`` (partitions), batched with a
    progress bar; with ``refinement`` only the images of its shard (``refinement.shard``). The weak folder is first checked against the
    manifest (an interrupted data_engineering run must not slip labelled or eval images in).

    A batch that fails is retried image by image; an image that still fails is reported (never replaced
    by an all-zero mask) and left out of the refined masks.
    """
    check_splits_agree(split_manifest, {WEAK: images})
    if not images:
        raise BadInputError("the weak pool is empty: every kept frame is hand-labelled (or no frame has boxes only), so there is "
                            "nothing to refine. The baseline is the model: `kedro run --pipeline=predict --params=predict_model=baseline`")  # fmt: skip
    check_model_matches_splits(split_manifest, trained.metadata, "the refining model")
    shard_images = {i: images[i] for i in shard_of(list(images), refinement.shard if refinement is not None else None)}
    probabilities: dict[str, np.ndarray] = {}
    failures = []
    for prediction in predict_frames(trained, shard_images, inference, description="predict weak pool"):
        if prediction.error:
            failures.append({"image_id": prediction.image_id, "error": prediction.error})
            logger.error("Prediction failed for %s: %s", prediction.image_id, prediction.error)
        else:
            probabilities[prediction.image_id] = to_uint8(prediction.probability)
    return probabilities, pd.DataFrame(failures, columns=FAILURE_COLUMNS)


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


def build_refined_masks(weak_probabilities: dict, weak_images, weak_box_masks, choice: dict, refinement: MaskRefinementParams) -> RefinedMasks:
    """Refined mask and weight map of every weak image, by the chosen method (saved as one versioned folder)."""
    refined = refine_pool(weak_probabilities, weak_images, weak_box_masks, choice["method"], choice["params"],
                          f"refine masks ({choice['label']})", refinement.n_jobs)  # fmt: skip
    logger.info("Refined %d masks with %s", len(weak_probabilities), choice["label"])
    return RefinedMasks.of(refined)


def score_refinement_methods(
    refined_masks: RefinedMasks, choice: dict, weak_probabilities: dict, weak_images, weak_box_masks, ground_truth,
    refinement: MaskRefinementParams,
) -> dict:  # fmt: skip
    """The evidence behind the round's masks: each candidate's agreement with the polygons of the
    selection images (what ``auto`` chose on) and, on synthetic data, each candidate's weak-pool masks
    against ground truth (never used to choose). The masks in use are taken from ``refined_masks``."""
    truth = by_image_id(ground_truth)
    weak_truth = {i: t for i, t in truth.items() if i in weak_probabilities}
    quality: dict = {"used": choice["label"], "method": choice["method"], "params": choice["params"],
                     "selection_images": choice["selection_images"], "eligible": choice.get("eligible", []), "methods": {}}  # fmt: skip
    jobs = refinement.n_jobs
    candidates = candidate_settings(refinement) if refinement.method == "auto" else [(choice["label"], choice["method"], choice["params"])]
    for label, method, params in candidates:
        entry = {}
        if label in choice["scores"]:
            entry["selection_vs_polygons"] = choice["scores"][label]
        if weak_truth:
            if label == choice["label"]:
                masks = {i: refined_masks.mask(i) for i in refined_masks.ids()}
            else:
                masks = {i: m for i, (m, _) in refine_pool(weak_probabilities, weak_images, weak_box_masks, method, params, n_jobs=jobs).items()}
            summary, _ = score_predictors({label: masks}, {"ground_truth": weak_truth})
            if summary:
                entry["weak_vs_ground_truth"] = summary[label]["ground_truth"]
        quality["methods"][label] = entry
    if weak_truth:
        boxes = {i: weak_box_masks[i]() for i in weak_probabilities}
        summary, _ = score_predictors({"box": boxes}, {"ground_truth": weak_truth})
        quality["box_masks_vs_ground_truth"] = summary["box"]["ground_truth"]
    return quality


def merge_refined_shards(shards: dict, shard_failures: dict, count: int) -> tuple[RefinedMasks, pd.DataFrame]:
    """Join the refined masks of shards ``0-of-N`` .. ``N-1-of-N`` into one round.

    Every shard must be there, exactly once; a missing shard stops the merge with the command that
    makes it, so a round never trains on part of its weak pool.
    """
    count = int(count)
    by_shard: dict[str, dict] = {}
    for key, value in shards.items():
        name, _, rest = key.partition("/")
        by_shard.setdefault(name, {})[rest] = value
    expected = [f"{i}-of-{count}" for i in range(count)]
    missing = [name for name in expected if name not in by_shard]
    if missing:
        commands = ", ".join(f"`kedro run --pipeline=refine_shard --params=mask_refinement.shard.index={n.split('-')[0]},"
                             f"mask_refinement.shard.count={count}`" for n in missing)  # fmt: skip
        raise MissingArtifactError(f"refined-mask shards {', '.join(missing)} are missing: run {commands} (same round)")
    merged = RefinedMasks()
    try:
        for name in expected:
            merged = merged.merged_with(RefinedMasks.from_partitions(by_shard[name], where=f"refined-mask shard {name}"))
    except ValueError as exc:
        raise BadInputError(str(exc)) from None
    failures = [load() for key, load in sorted(shard_failures.items()) if key.split("_")[0] in expected]
    table = pd.concat(failures, ignore_index=True) if failures else pd.DataFrame(columns=FAILURE_COLUMNS)
    logger.info("Merged %d shards: %d refined masks", count, len(merged.ids()))
    return merged, table


def score_merged_refinement(refined_masks: RefinedMasks, shard_choices: dict, ground_truth, count: int) -> dict:
    """The choice the shards made (the same on every shard: it is deterministic, and checked) and the
    merged masks against ground truth (synthetic data). Other candidates are not scored on the weak pool
    in sharded runs (their predictions stayed on the shard machines)."""
    expected = [f"{i}-of-{int(count)}" for i in range(int(count))]
    choices = [load() if callable(load) else load for key, load in sorted(shard_choices.items()) if key.split("_")[0] in expected]
    if not choices:
        raise MissingArtifactError(f"no refinement choice of the {count} shards: run `kedro run --pipeline=refine_shard` for each shard")
    if any(c["label"] != choices[0]["label"] for c in choices):
        raise BadInputError(f"the shards chose different refinement methods ({sorted({c['label'] for c in choices})}): refine them again with the same model")
    choice = choices[0]
    truth = by_image_id(ground_truth)
    masks = {i: refined_masks.mask(i) for i in refined_masks.ids()}
    entry: dict = {}
    if choice["label"] in choice["scores"]:
        entry["selection_vs_polygons"] = choice["scores"][choice["label"]]
    summary, _ = score_predictors({"merged": masks}, {"ground_truth": {i: t for i, t in truth.items() if i in masks}})
    if summary:
        entry["weak_vs_ground_truth"] = summary["merged"]["ground_truth"]
    return {"used": choice["label"], "method": choice["method"], "params": choice["params"], "selection_images": choice["selection_images"],
            "shards": int(count), "methods": {choice["label"]: entry}}  # fmt: skip


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
