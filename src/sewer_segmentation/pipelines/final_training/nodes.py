"""Nodes of the final_training pipeline: a fresh model on refined weak masks + hand-labelled masks.

The checkpoint is chosen on the hand-labelled validation images and the model is evaluated on the
same eval split as the baseline (evaluation nodes are shared with baseline_training).
"""

from __future__ import annotations

import logging

import numpy as np

from sewer_segmentation.data import check_image_size, load_samples
from sewer_segmentation.evaluation import score_predictors
from sewer_segmentation.imaging import by_image_id
from sewer_segmentation.plots import line_chart
from sewer_segmentation.training import TrainedModel, predict_probabilities, train_model

logger = logging.getLogger(__name__)


def final_training_config(training: dict, final: dict) -> dict:
    """The baseline's training parameters with the final stage's overrides (e.g. fewer epochs)."""
    return {**training, **(final.get("training_overrides") or {})}


def _refined_partitions(refined_masks: dict, kind: str) -> dict:
    prefix = f"{kind}/"
    return {k[len(prefix) :]: v for k, v in refined_masks.items() if k.startswith(prefix)}


def train_final_model(
    refined_masks: dict, weak_images, train_images, train_masks, val_images, val_masks,
    previous_model: TrainedModel, model: dict, image_size: dict, training: dict, final: dict, seed: int, round_number: int,
) -> tuple[TrainedModel, dict]:  # fmt: skip
    """Train on refined weak masks (soft targets, weight maps) plus the hand-labelled baseline_train."""
    height, width = check_image_size(image_size["height"], image_size["width"])
    masks = _refined_partitions(refined_masks, "masks")
    weights = _refined_partitions(refined_masks, "weights")
    weak = load_samples({i: weak_images[i] for i in masks}, masks, height, width, weights, description="refined weak")
    labelled = load_samples(train_images, train_masks, height, width, description="baseline_train")
    val = load_samples(val_images, val_masks, height, width, description="baseline_val")
    initial = previous_model.model.state_dict() if final.get("init_from_previous") else None
    trained = train_model(weak + labelled, val, model, final_training_config(training, final), image_size, seed,
                          stage=f"round_{round_number}", initial_state=initial)  # fmt: skip
    trained.metadata.update({"round": int(round_number), "refined_from": previous_model.metadata.get("path")})
    return trained, trained.metadata["history"]


def train_oracle(
    weak_images, train_images, val_images, val_masks, eval_images, eval_masks, ground_truth,
    model: dict, image_size: dict, training: dict, final: dict, seed: int, inference: dict,
) -> dict:  # fmt: skip
    """Synthetic data only, off by default: the same model and budget trained on the true masks of the
    same images; its eval IoU is the ceiling refinement is closing in on."""
    truth = by_image_id(ground_truth)
    if not (final.get("oracle") or {}).get("enabled") or not truth:
        return {"enabled": False}
    height, width = check_image_size(image_size["height"], image_size["width"])
    ids = [i for i in list(weak_images) + list(train_images) if i in truth]
    images = {i: (weak_images[i] if i in weak_images else train_images[i]) for i in ids}
    samples = load_samples(images, {i: truth[i] for i in ids}, height, width, description="oracle")
    val = load_samples(val_images, val_masks, height, width, description="baseline_val")
    trained = train_model(samples, val, model, final_training_config(training, final), image_size, seed, stage="oracle")
    eval_ids = sorted(eval_images)
    probs = predict_probabilities(trained.model, [eval_images[i]() for i in eval_ids], model, image_size,
                                  batch_size=int(inference["batch_size"]), precision=inference.get("precision", "auto"))  # fmt: skip
    predictions = {i: np.where(p >= 0.5, 255, 0).astype(np.uint8) for i, p in zip(eval_ids, probs)}
    summary, _ = score_predictors({"oracle": predictions}, {"polygons": eval_masks})
    return {"enabled": True, "train_images": len(samples), "eval": summary["oracle"]["polygons"]}


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

    def iou(name, predictor="model", reference="polygons", metric="mean_iou"):
        return stages[name]["metrics"][predictor][reference][metric]

    base = iou("baseline") if "baseline" in stages else None
    md = ["# Refinement rounds", "", "Eval metrics of each stage's model against the hand-drawn polygons (same eval images).", "",
          "| stage | mean IoU | mean Dice | pooled IoU | vs baseline | vs previous | model version |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    previous = None
    for name in names:
        value = iou(name)
        delta_base = "" if base is None or name == "baseline" else f"{value - base:+.3f}"
        delta_prev = "" if previous is None else f"{value - previous:+.3f}"
        md.append(f"| {name} | {value:.3f} | {iou(name, metric='mean_dice'):.3f} | {iou(name, metric='pooled_iou'):.3f} "
                  f"| {delta_base} | {delta_prev} | {stages[name].get('model_version')} |")  # fmt: skip
        previous = value
    if "baseline" in stages:
        md += ["", f"Trivial predictors on the same images: box mask {iou('baseline', 'box_mask'):.3f}, "
                   f"all background {iou('baseline', 'all_background'):.3f} (mean IoU)."]  # fmt: skip

    md += ["", "## How good were the training masks?", "",
           "Mean IoU of each round's refined masks (and of the box masks they start from): on eval images against "
           "hand-drawn polygons, and on the weak pool against ground truth (synthetic data only).", "",
           "| round | method | eval vs polygons | weak pool vs ground truth | used for training |", "|---|---|---|---|---|"]  # fmt: skip
    quality_series: dict[str, tuple[list, list]] = {}
    for name in names:
        if name == "baseline":
            continue
        refinement = stages[name]["refinement"]
        for method, scores in refinement["methods"].items():
            vs_poly = scores.get("eval_vs_polygons", {}).get("mean_iou")
            vs_truth = scores.get("weak_vs_ground_truth", {}).get("mean_iou")
            poly_text = "" if vs_poly is None else f"{vs_poly:.3f}"
            truth_text = "" if vs_truth is None else f"{vs_truth:.3f}"
            md.append(f"| {name} | {method} | {poly_text} | {truth_text} | {'yes' if method == refinement['used'] else ''} |")
            value = vs_truth if vs_truth is not None else vs_poly
            if value is not None:
                series = quality_series.setdefault(f"masks: {method}", ([], []))
                series[0].append(_stage_order(name)[0])
                series[1].append(value)
    oracle_rows = [(n, stages[n]["oracle"]["eval"]["mean_iou"]) for n in names if n != "baseline" and stages[n].get("oracle", {}).get("enabled")]
    if oracle_rows:
        md += ["", "## Oracle (ground-truth masks, same model and budget)", "", "| round | oracle eval IoU | round eval IoU / oracle |", "|---|---|---|"]
        md += [f"| {n} | {o:.3f} | {iou(n) / o:.1%} |" for n, o in oracle_rows]
    failures = {n: len(stages[n].get("failed_predictions", [])) for n in names if n != "baseline"}
    if any(failures.values()):
        md += ["", "## Failed predictions", ""] + [f"- {n}: {k} images could not be predicted (see round_N_metrics.json)" for n, k in failures.items() if k]
    md += ["", "Figures: `rounds.png`, `round_<r>_refinement_gallery.png`, `round_<r>_prediction_gallery.png`.", ""]

    steps = [_stage_order(n)[0] for n in names]
    series = {"eval IoU (model vs polygons)": (steps, [iou(n) for n in names])}
    if "baseline" in stages:
        series["eval IoU (box masks)"] = (steps, [iou("baseline", "box_mask")] * len(steps))
    series.update(quality_series)
    if oracle_rows:
        series["oracle eval IoU"] = ([_stage_order(n)[0] for n, _ in oracle_rows], [o for _, o in oracle_rows])
    chart = line_chart(series, "Baseline (0) and refinement rounds", "round", "mean IoU")
    return "\n".join(md), chart
