"""Nodes of the final_training pipeline: a model trained on refined weak masks + hand-labelled masks.

By default a round fine-tunes the best model so far (the one that refined its masks): the starting
weights are scored on baseline_val first and kept unless training beats them by ``min_improvement``,
so a round cannot hand on a model that is worse on validation. The model is evaluated on the same eval
split as the baseline (evaluation nodes are shared with baseline_training).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from sewer_segmentation.data import check_image_size, load_samples
from sewer_segmentation.errors import BadInputError, ConfigurationError
from sewer_segmentation.evaluation import score_predictors
from sewer_segmentation.imaging import by_image_id
from sewer_segmentation.plots import line_chart
from sewer_segmentation.splits import (
    BASELINE_TRAIN,
    BASELINE_VAL,
    EVAL,
    WEAK,
    check_model_matches_splits,
    check_no_eval_images,
    check_splits_agree,
    split_fingerprint,
)
from sewer_segmentation.training import TrainedModel, predict_probabilities, train_model

logger = logging.getLogger(__name__)


def final_training_config(training: dict, final: dict) -> dict:
    """The baseline's training parameters with the final stage's overrides. A step budget in the
    overrides replaces an epoch budget of the baseline (and the other way round)."""
    overrides = dict(final.get("training_overrides") or {})
    config = {**training, **overrides}
    if "steps" in overrides and overrides.get("epochs") is None:
        config["epochs"] = None
    return config


def labelled_sampling_weights(n_weak: int, n_labelled: int, labelled_share: float | None) -> list[float] | None:
    """Per-sample draw weights giving the hand-labelled images ``labelled_share`` of all draws (weak
    images first, then labelled); None draws every image equally often."""
    if labelled_share is None or n_weak == 0 or n_labelled == 0:
        return None
    share = float(labelled_share)
    if not 0 < share < 1:
        raise ConfigurationError(f"final_training.labelled_share must be between 0 and 1 (or null), got {share}")
    return [(1 - share) / n_weak] * n_weak + [share / n_labelled] * n_labelled


def _round_model_config(model: dict, previous_model: TrainedModel, init_from: str) -> dict:
    """Fine-tuning continues the previous model as it was built (its architecture, encoder and freezing,
    even if ``params:model`` changed since), with no pretrained weights to fetch: they are overwritten."""
    if init_from != "best":
        return model
    return {**previous_model.model_config, "encoder_weights": None}


def _refined_partitions(refined_masks: dict, kind: str) -> dict:
    prefix = f"{kind}/"
    return {k[len(prefix) :]: v for k, v in refined_masks.items() if k.startswith(prefix)}


def train_final_model(
    split_manifest: pd.DataFrame, refined_masks: dict, weak_images, train_images, train_masks, val_images, val_masks, eval_images,
    previous_model: TrainedModel, model: dict, image_size: dict, training: dict, final: dict, seed: int, round_number: int,
) -> tuple[TrainedModel, dict]:  # fmt: skip
    """Train on refined weak masks (with their weight maps) plus the hand-labelled baseline_train.
    The split folders and the refined masks are checked against the manifest first: no eval image (and
    no image of another split) can reach the training set."""
    check_splits_agree(split_manifest, {f"{BASELINE_TRAIN}/images": train_images, f"{BASELINE_TRAIN}/masks": train_masks,
                                        f"{BASELINE_VAL}/images": val_images, f"{BASELINE_VAL}/masks": val_masks,
                                        EVAL: eval_images, WEAK: weak_images})  # fmt: skip
    check_model_matches_splits(split_manifest, previous_model.metadata, "the model this round starts from")
    masks = _refined_partitions(refined_masks, "masks")
    check_no_eval_images(split_manifest, masks, "the refined masks of this round")
    stray = sorted(set(masks) - set(weak_images))
    if stray:
        raise BadInputError(f"the refined masks hold {len(stray)} images that are not in the weak pool ({', '.join(stray[:5])}): "
                            "they were made before the last data_engineering run; "
                            f"run `kedro run --pipeline=refine --params=round:{round_number}` again")  # fmt: skip
    height, width = check_image_size(image_size["height"], image_size["width"])
    weights = _refined_partitions(refined_masks, "weights")
    weak = load_samples({i: weak_images[i] for i in masks}, masks, height, width, weights, description="refined weak")
    labelled = load_samples(train_images, train_masks, height, width, description="baseline_train")
    val = load_samples(val_images, val_masks, height, width, description="baseline_val")
    init_from = final.get("init_from", "best")
    if init_from not in ("best", "fresh"):
        raise ConfigurationError(f"final_training.init_from must be 'best' or 'fresh', got {init_from!r}")
    initial = previous_model.model.state_dict() if init_from == "best" else None
    trained = train_model(
        weak + labelled, val, _round_model_config(model, previous_model, init_from), final_training_config(training, final), image_size,
        seed, stage=f"round_{round_number}",
        initial_state=initial, sample_weights=labelled_sampling_weights(len(weak), len(labelled), final.get("labelled_share")),
        min_improvement=float(final.get("min_improvement", 0.0)),
    )  # fmt: skip
    previous_score = previous_model.metadata.get("best_validation_score")
    score = trained.metadata.get("best_validation_score")
    improved = not trained.metadata.get("kept_initial_weights") and score is not None and (previous_score is None or score > previous_score)
    trained.metadata.update({
        "split_fingerprint": split_fingerprint(split_manifest),
        "round": int(round_number),
        "refined_from": previous_model.metadata.get("stage"),
        "refined_from_version": previous_model.metadata.get("version"),
        "refined_from_validation_score": previous_score,
        "improved_on_validation": bool(improved),
    })  # fmt: skip
    if not improved:
        logger.warning("Round %s did not improve on %s on validation (%s %s vs %s): %s", round_number,
                       previous_model.metadata.get("stage"), trained.metadata["selected_by"], _fmt(score), _fmt(previous_score),
                       "its starting weights were kept" if trained.metadata.get("kept_initial_weights") else "see rounds.md")  # fmt: skip
    return trained, trained.metadata["history"]


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def train_oracle(
    weak_images, train_images, val_images, val_masks, eval_images, eval_masks, ground_truth, previous_model: TrainedModel,
    model: dict, image_size: dict, training: dict, final: dict, seed: int, inference: dict,
) -> dict:  # fmt: skip
    """Synthetic data only, off by default: the same start, model and budget trained on the true masks
    of the same images; its eval IoU is the ceiling refinement is closing in on."""
    truth = by_image_id(ground_truth)
    if not (final.get("oracle") or {}).get("enabled") or not truth:
        return {"enabled": False}
    height, width = check_image_size(image_size["height"], image_size["width"])
    weak = load_samples({i: weak_images[i] for i in weak_images if i in truth}, {i: truth[i] for i in weak_images if i in truth},
                        height, width, description="oracle weak")  # fmt: skip
    labelled = load_samples({i: train_images[i] for i in train_images if i in truth}, {i: truth[i] for i in train_images if i in truth},
                            height, width, description="oracle labelled")  # fmt: skip
    val = load_samples(val_images, val_masks, height, width, description="baseline_val")
    init_from = final.get("init_from", "best")
    initial = previous_model.model.state_dict() if init_from == "best" else None
    trained = train_model(weak + labelled, val, _round_model_config(model, previous_model, init_from), final_training_config(training, final),
                          image_size, seed, stage="oracle",
                          initial_state=initial, sample_weights=labelled_sampling_weights(len(weak), len(labelled), final.get("labelled_share")),
                          min_improvement=float(final.get("min_improvement", 0.0)))  # fmt: skip
    eval_ids = sorted(eval_images)
    probs = predict_probabilities(trained.model, [eval_images[i]() for i in eval_ids], model, image_size,
                                  batch_size=int(inference["batch_size"]), precision=inference.get("precision", "auto"))  # fmt: skip
    predictions = {i: np.where(p >= 0.5, 255, 0).astype(np.uint8) for i, p in zip(eval_ids, probs, strict=True)}
    summary, _ = score_predictors({"oracle": predictions}, {"polygons": eval_masks})
    return {"enabled": True, "train_images": len(weak) + len(labelled), "eval": summary["oracle"]["polygons"]}


def assemble_round_metrics(eval_report: dict, refinement_quality: dict, failures, oracle: dict, round_number: int) -> dict:
    """Everything the round report needs about this round, in one plain JSON file."""
    return {
        **eval_report,
        "round": int(round_number),
        "refinement": refinement_quality,
        "failed_predictions": failures.to_dict(orient="records"),
        "oracle": oracle,
    }


def _stage_order(name: str) -> tuple[int, str]:
    return (0, name) if name == "baseline" else (int(name.split("_")[1]), name)


def _iou(stage: dict, predictor: str = "model", reference: str = "polygons", metric: str = "mean_iou"):
    return stage["metrics"][predictor][reference][metric]


def _regressions(stages: dict, names: list[str]) -> list[str]:
    """Warnings for the top of the report: rounds that did not improve on validation, and rounds
    whose eval IoU fell below the baseline's (reported, never used to choose anything)."""
    lines = []
    for name in names:
        stage = stages[name]
        if name == "baseline":
            continue
        if stage.get("improved_on_validation") is False:
            kept = " (its starting weights were kept)" if stage.get("kept_initial_weights") else ""
            lines.append(f"- **{name} did not improve on {stage.get('refined_from') or 'the previous model'} on validation**{kept}.")
        if "baseline" in stages and _iou(stage) < _iou(stages["baseline"]) - 0.01:
            lines.append(f"- **{name} is worse than the baseline on eval**: mean IoU {_iou(stage):.3f} vs {_iou(stages['baseline']):.3f}.")
    return lines


def build_rounds_report(current_round: dict, baseline_metrics: dict, all_stage_metrics: dict) -> tuple[str, np.ndarray]:
    """``rounds.md`` and ``rounds.png`` from every stage whose metrics file exists.

    ``current_round`` and ``baseline_metrics`` are also among ``all_stage_metrics`` (files on disk);
    taking them as inputs makes the report wait until this run has written them.
    """
    stages = {}
    for key, load in all_stage_metrics.items():
        if key.startswith("round_") and key[6:].isdigit():
            stages[key] = load() if callable(load) else load
    stages["baseline"] = baseline_metrics
    stages[f"round_{current_round['round']}"] = current_round
    names = sorted(stages, key=_stage_order)

    md = ["# Refinement rounds", ""]
    warnings = _regressions(stages, names)
    md += (["## Warnings", "", *warnings, ""] if warnings else ["Every round improved on the model it started from (validation).", ""])
    md += ["Eval metrics of each stage's model against the hand-drawn polygons (same eval images). Models are chosen "
           "on validation only (baseline_val); eval is reported, never used to choose.", "",
           "| stage | eval mean IoU | eval mean Dice | eval pooled IoU | validation score | improved on validation "
           "| vs baseline | vs previous | started from | model version |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    base = _iou(stages["baseline"]) if "baseline" in stages else None
    previous = None
    for name in names:
        stage, value = stages[name], _iou(stages[name])
        delta_base = "" if base is None or name == "baseline" else f"{value - base:+.3f}"
        delta_prev = "" if previous is None else f"{value - previous:+.3f}"
        improved = {True: "yes", False: "**no**", None: ""}[stage.get("improved_on_validation")]
        md.append(f"| {name} | {value:.3f} | {_iou(stage, metric='mean_dice'):.3f} | {_iou(stage, metric='pooled_iou'):.3f} "
                  f"| {_fmt(stage.get('best_validation_score'))} | {improved} | {delta_base} | {delta_prev} "
                  f"| {stage.get('refined_from') or ''} | {stage.get('model_version')} |")  # fmt: skip
        previous = value
    if "baseline" in stages:
        md += ["", f"Trivial predictors on the same images: box mask {_iou(stages['baseline'], 'box_mask'):.3f}, "
                   f"all background {_iou(stages['baseline'], 'all_background'):.3f} (mean IoU)."]  # fmt: skip

    md += ["", "## How good were the training masks?", "",
           "Each candidate refinement, scored by soft IoU with the hand-drawn polygons of baseline_val (the images "
           "`auto` chooses on), and, on synthetic data only, by mean IoU with the true masks of the weak pool "
           "(never used to choose).", "",
           "| round | candidate | agreement on baseline_val | weak pool vs ground truth | used |", "|---|---|---|---|---|"]  # fmt: skip
    quality_series: dict[str, tuple[list, list]] = {}
    for name in names:
        if name == "baseline":
            continue
        refinement = stages[name]["refinement"]
        box = refinement.get("box_masks_vs_ground_truth", {}).get("mean_iou")
        if box is not None:
            md.append(f"| {name} | box masks (no refinement) | | {box:.3f} | |")
        for label, scores in refinement["methods"].items():
            selection = scores.get("selection_vs_polygons")
            vs_truth = scores.get("weak_vs_ground_truth", {}).get("mean_iou")
            md.append(f"| {name} | {label} | {_fmt(selection) if selection is not None else ''} "
                      f"| {_fmt(vs_truth) if vs_truth is not None else ''} | {'**yes**' if label == refinement['used'] else ''} |")  # fmt: skip
            if label == refinement["used"] and vs_truth is not None:
                series = quality_series.setdefault("refined masks vs truth (weak pool)", ([], []))
                series[0].append(_stage_order(name)[0])
                series[1].append(vs_truth)
    oracle_rows = [(n, stages[n]["oracle"]["eval"]["mean_iou"]) for n in names if n != "baseline" and stages[n].get("oracle", {}).get("enabled")]
    if oracle_rows:
        md += ["", "## Oracle (ground-truth masks, same start, model and budget)", "", "| round | oracle eval IoU | round eval IoU / oracle |", "|---|---|---|"]
        md += [f"| {n} | {o:.3f} | {_iou(stages[n]) / o:.1%} |" for n, o in oracle_rows]
    failures = {n: len(stages[n].get("failed_predictions", [])) for n in names if n != "baseline"}
    if any(failures.values()):
        md += ["", "## Failed predictions", ""] + [f"- {n}: {k} images could not be predicted (see round_N_metrics.json)" for n, k in failures.items() if k]
    md += ["", "Figures: `rounds.png`, `round_<r>_refinement_gallery.png`, `round_<r>_prediction_gallery.png`.", ""]

    steps = [_stage_order(n)[0] for n in names]
    series = {"eval IoU (model vs polygons)": (steps, [_iou(stages[n]) for n in names])}
    if "baseline" in stages:
        series["eval IoU (box masks)"] = (steps, [_iou(stages["baseline"], "box_mask")] * len(steps))
    series.update(quality_series)
    if oracle_rows:
        series["oracle eval IoU"] = ([_stage_order(n)[0] for n, _ in oracle_rows], [o for _, o in oracle_rows])
    chart = line_chart(series, "Baseline (0) and refinement rounds", "round", "mean IoU")
    return "\n".join(md), chart
