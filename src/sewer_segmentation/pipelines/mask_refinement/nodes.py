"""Nodes of the mask_refinement pipeline: the best model so far turns box masks into refined masks.

Round r refines with the best of baseline .. round r-1 on validation (``stages.best_model_before``). With
``method: auto`` the refinement method is chosen on baseline_val (hand-labelled, not trained on by the
refining model, never eval): whichever candidate's masks agree best with the polygons there.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from sewer_segmentation.errors import BadInputError, ConfigurationError, MissingArtifactError
from sewer_segmentation.evaluation import score_predictors
from sewer_segmentation.imaging import by_image_id, to_uint8
from sewer_segmentation.plots import BOX_COLOUR, POLYGON_COLOUR, TRUTH_COLOUR, image_grid, overlay
from sewer_segmentation.progress import progress_bar
from sewer_segmentation.refinement import candidate_settings, choose_refinement, refine_pool
from sewer_segmentation.splits import BASELINE_VAL, WEAK, check_model_matches_splits, check_splits_agree
from sewer_segmentation.training import TrainedModel, predict_probabilities

logger = logging.getLogger(__name__)

FAILURE_COLUMNS = ["image_id", "error"]


def shard_of(ids: list[str], shard: dict | None) -> list[str]:
    """The image ids shard ``index`` of ``count`` handles: every count-th id of the sorted list, so shards
    are disjoint, cover everything and stay balanced; the same on every machine."""
    count, index = int((shard or {}).get("count", 1)), int((shard or {}).get("index", 0))
    if count < 1 or not 0 <= index < count:
        raise ConfigurationError(f"shard index must be in 0..count-1, got index={index}, count={count}")
    return sorted(ids)[index::count]


def predict_pool(
    split_manifest: pd.DataFrame, trained: TrainedModel, images, inference: dict, shard: dict | None = None
) -> tuple[dict, pd.DataFrame]:
    """Probability maps (uint8) of every image of the weak pool ``images`` (partitions), batched with a
    progress bar; with ``shard`` only that shard's images. The weak folder is first checked against the
    manifest (an interrupted data_engineering run must not slip labelled or eval images in).

    A batch that fails is retried image by image; an image that still fails is reported (never replaced
    by an all-zero mask) and left out of the refined masks.
    """
    check_splits_agree(split_manifest, {WEAK: images})
    check_model_matches_splits(split_manifest, trained.metadata, "the refining model")
    ids = shard_of(list(images), shard)
    batch_size = int(inference["batch_size"])
    probabilities: dict[str, np.ndarray] = {}
    failures = []

    def run(batch_ids):
        frames = [images[i]() for i in batch_ids]
        maps = predict_probabilities(
            trained.model, frames, trained.model_config, trained.image_size, batch_size=len(frames),
            precision=inference.get("precision", "auto"), flip_tta=bool(inference.get("flip_tta", False)),
        )  # fmt: skip
        for i, p in zip(batch_ids, maps, strict=True):
            probabilities[i] = to_uint8(p)

    for start in progress_bar(range(0, len(ids), batch_size), desc="predict weak pool", unit="batch"):
        batch_ids = ids[start : start + batch_size]
        try:
            run(batch_ids)
        except Exception:  # noqa: BLE001 - narrowed below, image by image
            for image_id in batch_ids:
                try:
                    run([image_id])
                except Exception as exc:  # noqa: BLE001 - any failure is reported per image
                    failures.append({"image_id": image_id, "error": f"{type(exc).__name__}: {exc}"})
                    logger.error("Prediction failed for %s: %s", image_id, exc)
    return probabilities, pd.DataFrame(failures, columns=FAILURE_COLUMNS)


def choose_refinement_method(
    split_manifest: pd.DataFrame, selection_probabilities: dict, images, box_masks, masks, refinement: dict
) -> dict:  # fmt: skip
    """The refinement method for this round: the one configured, or for ``auto`` the candidate whose
    masks agree best with the hand-drawn masks of the selection images (baseline_val, checked against
    the manifest: never an eval image)."""
    check_splits_agree(split_manifest, {BASELINE_VAL: images})
    choice = choose_refinement(selection_probabilities, images, box_masks, masks, refinement)
    if choice["scores"]:
        ranked = sorted(choice["scores"].items(), key=lambda kv: -kv[1])
        logger.info("Refinement method chosen on %d baseline_val images: %s (agreement with polygons %.3f; next: %s)",
                    choice["selection_images"], choice["label"], ranked[0][1],
                    ", ".join(f"{k} {v:.3f}" for k, v in ranked[1:4]))  # fmt: skip
        if choice["selection_images"] < 5:
            logger.warning("Only %d baseline_val images chose the refinement method: the choice is noisy "
                           "(raise data_engineering.split.val_fraction or label more images)", choice["selection_images"])  # fmt: skip
    return choice


def build_refined_masks(weak_probabilities: dict, weak_images, weak_box_masks, choice: dict, refinement: dict) -> dict:
    """Refined masks and weight maps of the chosen method as one versioned folder: ``masks/<id>`` and
    ``weights/<id>``."""
    refined = refine_pool(weak_probabilities, weak_images, weak_box_masks, choice["method"], choice["params"],
                          f"refine masks ({choice['label']})", refinement.get("n_jobs", "auto"))  # fmt: skip
    out = {}
    for image_id, (mask, weight) in refined.items():
        out[f"masks/{image_id}"] = mask
        out[f"weights/{image_id}"] = weight
    logger.info("Refined %d masks with %s", len(weak_probabilities), choice["label"])
    return out


def score_refinement_methods(
    refined_masks: dict, choice: dict, weak_probabilities: dict, weak_images, weak_box_masks, ground_truth, refinement: dict
) -> dict:  # fmt: skip
    """The evidence behind the round's masks: each candidate's agreement with the polygons of the
    selection images (what ``auto`` chose on) and, on synthetic data, each candidate's weak-pool masks
    against ground truth (never used to choose). The masks in use are taken from ``refined_masks``."""
    truth = by_image_id(ground_truth)
    weak_truth = {i: t for i, t in truth.items() if i in weak_probabilities}
    quality: dict = {"used": choice["label"], "method": choice["method"], "params": choice["params"],
                     "selection_images": choice["selection_images"], "methods": {}}  # fmt: skip
    jobs = refinement.get("n_jobs", "auto")
    for label, method, params in candidate_settings(refinement) if refinement["method"] == "auto" else [(choice["label"], choice["method"], choice["params"])]:
        entry = {}
        if label in choice["scores"]:
            entry["selection_vs_polygons"] = choice["scores"][label]
        if weak_truth:
            if label == choice["label"]:
                masks = {k[len("masks/") :]: (v() if callable(v) else v) for k, v in refined_masks.items() if k.startswith("masks/")}
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


def merge_refined_shards(shards: dict, shard_failures: dict, count: int) -> tuple[dict, pd.DataFrame]:
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
    merged: dict = {}
    for name in expected:
        for key, value in by_shard[name].items():
            if key in merged:
                raise BadInputError(f"{key} appears in two shards; shards of different counts are mixed")
            merged[key] = value
    failures = [load() for key, load in sorted(shard_failures.items()) if key.split("_")[0] in expected]
    table = pd.concat(failures, ignore_index=True) if failures else pd.DataFrame(columns=FAILURE_COLUMNS)
    logger.info("Merged %d shards: %d refined masks", count, sum(k.startswith("masks/") for k in merged))
    return merged, table


def score_merged_refinement(refined_masks: dict, shard_choices: dict, ground_truth, count: int) -> dict:
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
    masks = {k[len("masks/") :]: (v() if callable(v) else v) for k, v in refined_masks.items() if k.startswith("masks/")}
    entry: dict = {}
    if choice["label"] in choice["scores"]:
        entry["selection_vs_polygons"] = choice["scores"][choice["label"]]
    summary, _ = score_predictors({"merged": masks}, {"ground_truth": {i: t for i, t in truth.items() if i in masks}})
    if summary:
        entry["weak_vs_ground_truth"] = summary["merged"]["ground_truth"]
    return {"used": choice["label"], "method": choice["method"], "params": choice["params"], "selection_images": choice["selection_images"],
            "shards": int(count), "methods": {choice["label"]: entry}}  # fmt: skip


def plot_refinement_gallery(weak_images, weak_box_masks, refined_masks: dict, ground_truth, n_cases: int, round_number: int):
    """Box mask, refined mask and (synthetic) true mask side by side for a few weak images."""
    truth = by_image_id(ground_truth)
    ids = sorted(k.split("/", 1)[1] for k in refined_masks if k.startswith("masks/"))
    picked = [ids[i] for i in np.linspace(0, len(ids) - 1, min(int(n_cases), len(ids))).astype(int)] if ids else []
    rows = []
    for image_id in picked:
        image = weak_images[image_id]()
        refined = refined_masks[f"masks/{image_id}"]
        refined = refined() if callable(refined) else refined
        row = [
            (image_id, image),
            ("box mask", overlay(image, weak_box_masks[image_id](), BOX_COLOUR)),
            ("refined (soft)", overlay(image, refined, POLYGON_COLOUR)),
        ]
        if image_id in truth:
            row.append(("ground truth", overlay(image, truth[image_id](), TRUTH_COLOUR)))
        rows.append(row)
    return image_grid(rows, f"Round {round_number}: box masks -> refined masks")
