"""Scoring predictions on the eval split, beside trivial predictors, and the figures that show it.

Scores are computed at each image's own size (predictions are resized back before thresholding), against
the hand-drawn polygons and, on synthetic data, against the true masks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import torch

from sewer_segmentation.io.imaging import mask_iou
from sewer_segmentation.modelling.metrics import BINARY_METRICS, confusion_counts, metrics_from_counts, summarize_counts
from sewer_segmentation.reporting.plots import POLYGON_COLOUR, TRUTH_COLOUR, image_grid, line_chart, overlay

PREDICTION_COLOUR = (255, 200, 0)


def _counts(pred: np.ndarray, target: np.ndarray) -> torch.Tensor:
    """TP, FP, FN, TN of one image (uint8 0..255 masks, thresholded at half range)."""
    # torch.tensor copies: decoded masks can be read-only arrays, which torch refuses to share
    return confusion_counts(torch.tensor(pred)[None].float() / 255.0, torch.tensor(target)[None].float() / 255.0)[0]


def score_predictors(
    predictors: Mapping[str, Mapping[str, np.ndarray]], references: Mapping[str, Mapping[str, Callable]]
) -> tuple[dict, pd.DataFrame]:
    """Score each predictor (name -> {image_id: uint8 mask}) against each reference (name -> partitions).

    Returns ``summary[predictor][reference] = {mean_iou, pooled_iou, ...}`` and a per-image table with one
    row per image and columns ``<predictor>.<reference>.<metric>``.
    """
    summary: dict = {}
    columns: dict[str, dict[str, float]] = {}
    for ref_name, reference in references.items():
        if not reference:
            continue
        targets = {image_id: reference[image_id]() for image_id in reference}
        for pred_name, predictions in predictors.items():
            ids = sorted(set(predictions) & set(targets))
            if not ids:
                continue
            counts = torch.stack([_counts(predictions[i], targets[i]) for i in ids])
            summary.setdefault(pred_name, {})[ref_name] = {k: round(v, 5) if isinstance(v, float) else v for k, v in summarize_counts(counts).items()}
            per_image = metrics_from_counts(counts)
            for metric in BINARY_METRICS:
                for image_id, value in zip(ids, per_image[metric].tolist(), strict=True):
                    columns.setdefault(image_id, {})[f"{pred_name}.{ref_name}.{metric}"] = round(value, 5)
    table = pd.DataFrame.from_dict(columns, orient="index").sort_index()
    table.index.name = "image_id"
    return summary, table.reset_index()


def flatten_for_mlflow(summary: dict) -> dict:
    """``{predictor: {reference: {metric: v}}}`` -> kedro-mlflow's ``{name: {value, step}}``
    (the catalog entry adds the stage prefix)."""
    out = {}
    for predictor, refs in summary.items():
        for reference, metrics in refs.items():
            for metric, value in metrics.items():
                if metric != "images":
                    out[f"{predictor}.{reference}.{metric}"] = {"value": float(value), "step": 0}
    return out


def learning_curves(history: dict, title: str) -> np.ndarray:
    """Train loss by step and validation metrics by step, one chart each, stacked."""
    train = history.get("train", [])
    val = history.get("val", [])
    loss_chart = line_chart(
        {"train loss": ([r["step"] for r in train], [r["train_loss"] for r in train])}
        | ({"val loss": ([r["step"] for r in val], [r["val_loss"] for r in val])} if val and "val_loss" in val[0] else {}),
        f"{title}: loss",
        "optimizer step",
        "loss",
    )
    metric_names = [m for m in ("val_mean_iou", "val_iou", "val_dice", "val_soft_iou") if val and m in val[0]]  # the first selects the weights
    metric_chart = line_chart(
        {m: ([r["step"] for r in val], [r[m] for r in val]) for m in metric_names},
        f"{title}: validation metrics",
        "optimizer step",
        "score",
    )
    width = max(loss_chart.shape[1], metric_chart.shape[1])

    def pad(a):
        return np.pad(a, ((0, 0), (0, width - a.shape[1]), (0, 0)), constant_values=255)

    return np.vstack([pad(loss_chart), pad(metric_chart)])


def best_and_worst_gallery(
    images: Mapping[str, Callable],
    references: Mapping[str, Callable],
    predictions: Mapping[str, np.ndarray],
    scores: pd.Series,
    n_cases: int,
    title: str,
) -> np.ndarray:
    """Rows of (image, truth, prediction overlay) for the ``n_cases`` best and worst eval images."""
    ordered = scores.sort_values()
    worst = list(ordered.index[:n_cases])
    best = list(ordered.index[::-1][:n_cases])
    rows = []
    for label, ids in (("best", best), ("worst", worst)):
        for image_id in ids:
            image = images[image_id]()
            truth = references[image_id]()
            pred = predictions[image_id]
            rows.append(
                [
                    (f"{label}: {image_id}", image),
                    ("hand-drawn truth", overlay(image, truth, POLYGON_COLOUR)),
                    (f"prediction (IoU {scores[image_id]:.2f})", overlay(image, pred, PREDICTION_COLOUR)),
                    ("missed red, false alarm blue, hit white", _difference(image, truth, pred)),
                ]
            )
    return image_grid(rows, title)


def stages_gallery(images: Mapping[str, Callable], references: Mapping[str, Callable], stage_masks: Mapping[str, Mapping[str, np.ndarray]],
                   frame_ids: list[str], title: str) -> np.ndarray:  # fmt: skip
    """Rows of (image, truth, then each stage's mask with its IoU) for the same ``frame_ids``: how the
    stages differ on one frame, where each stage's own gallery picks its own best and worst frames."""
    rows = []
    for image_id in frame_ids:
        image, truth = images[image_id](), references[image_id]()
        row = [(image_id, image), ("hand-drawn truth", overlay(image, truth, POLYGON_COLOUR))]
        for stage, masks in stage_masks.items():
            mask = masks[image_id]
            row.append((f"{stage} (IoU {mask_iou(mask, truth):.2f})", overlay(image, mask, PREDICTION_COLOUR)))
        rows.append(row)
    return image_grid(rows, title)


def frames_that_differ(first: pd.Series, last: pd.Series, n_cases: int) -> list[str]:
    """The ``n_cases`` frames ``last`` gained most on over ``first`` and the ``n_cases`` it lost most on
    (per-frame IoU by image id), gains first."""
    change = (last - first.reindex(last.index)).dropna().sort_values()
    gains = list(change.index[::-1][:n_cases])
    return gains + [i for i in change.index[:n_cases] if i not in gains]


def _difference(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    t, p = truth > 127, pred > 127
    out = overlay(image, (t & ~p).astype(np.uint8) * 255, POLYGON_COLOUR, 0.7)  # missed
    out = overlay(out, (p & ~t).astype(np.uint8) * 255, TRUTH_COLOUR, 0.7)  # false alarm
    return overlay(out, (p & t).astype(np.uint8) * 255, (255, 255, 255), 0.35)  # hit
