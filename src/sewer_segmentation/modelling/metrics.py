"""Segmentation metrics.

Binary metrics threshold predictions (and targets) at 0.5 and count pixels per image:

    IoU = TP / (TP + FP + FN)        Dice = 2 TP / (2 TP + FP + FN)
    precision = TP / (TP + FP)       recall = TP / (TP + FN)       specificity = TN / (TN + FP)

They are reported two ways: the mean over images of per-image values (``mean_*``: every image counts
the same) and pooled over all pixels of the set (``pooled_*``, micro average: large defects count more).
Dice is computed from the counts, never derived from IoU.

Empty denominators: a ratio whose denominator is 0 is 1.0. In particular an image with an empty ground
truth scores IoU = Dice = recall = 1 when the prediction is empty too and IoU = Dice = 0 (precision 0)
as soon as anything is predicted; precision is 1 for an empty prediction (no false positives).

Soft metrics (for soft targets, as defined by the original experiment), over all pixels of a set:
    IoU = Σ min(p, t) / Σ max(p, t)      Dice = 2 Σ p t / Σ (p² + t²)
    recall = Σ p t / Σ t                 specificity = Σ (1-p)(1-t) / Σ (1-t)
"""

from __future__ import annotations

import numpy as np
import torch

BINARY_METRICS = ("iou", "dice", "precision", "recall", "specificity")


def _ratio(numerator, denominator):
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-12), torch.ones_like(numerator))


def confusion_counts(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image TP, FP, FN, TN of thresholded ``pred`` and ``target`` (``N x ...``), as ``N x 4`` floats."""
    p = (pred > 0.5).flatten(1).float()
    t = (target > 0.5).flatten(1).float()
    tp = (p * t).sum(1)
    fp = (p * (1 - t)).sum(1)
    fn = ((1 - p) * t).sum(1)
    tn = ((1 - p) * (1 - t)).sum(1)
    return torch.stack([tp, fp, fn, tn], dim=1)


def metrics_from_counts(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Binary metrics from ``... x 4`` counts (per image, or summed for pooled metrics)."""
    tp, fp, fn, tn = counts.unbind(-1)
    return {
        "iou": _ratio(tp, tp + fp + fn),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
    }


def validation_values(counts: torch.Tensor, soft: torch.Tensor) -> dict[str, float]:
    """The ``val_*`` metrics from per-image counts (``N x 4``) and summed soft sums, as the validation
    loop computes them: pooled binary metrics, ``val_mean_iou`` (mean over images) and the soft ones."""
    values = {f"val_{k}": float(v) for k, v in metrics_from_counts(counts.sum(0)).items()}
    values["val_mean_iou"] = float(metrics_from_counts(counts)["iou"].mean())
    values.update({f"val_{k}": v for k, v in soft_metrics_from_sums(soft).items()})
    return values


def summarize_counts(counts: torch.Tensor) -> dict[str, float]:
    """``mean_<metric>`` over images and ``pooled_<metric>`` over pixels, from per-image counts."""
    per_image = metrics_from_counts(counts)
    pooled = metrics_from_counts(counts.sum(0))
    out = {f"mean_{k}": float(v.mean()) for k, v in per_image.items()}
    out.update({f"pooled_{k}": float(v) for k, v in pooled.items()})
    out["images"] = int(counts.shape[0])
    return out


def binary_metrics(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> dict[str, float]:
    """Summary of binary metrics for a batch of predictions / targets with values in [0, 1]."""
    pred, target = torch.as_tensor(pred).float(), torch.as_tensor(target).float()
    if pred.dim() == 2:
        pred, target = pred[None], target[None]
    return summarize_counts(confusion_counts(pred, target))


def soft_sums(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The seven sums the soft metrics need, accumulated over a set: Σmin, Σmax, Σpt, Σ(p²+t²), Σt,
    Σ(1-p)(1-t), Σ(1-t)."""
    p, t = pred.float().flatten(), target.float().flatten()
    return torch.stack(
        [
            torch.minimum(p, t).sum(),
            torch.maximum(p, t).sum(),
            (p * t).sum(),
            (p * p + t * t).sum(),
            t.sum(),
            ((1 - p) * (1 - t)).sum(),
            (1 - t).sum(),
        ]
    )


def soft_metrics_from_sums(s: torch.Tensor) -> dict[str, float]:
    one = torch.ones(())
    return {
        "soft_iou": float(_ratio(s[0], s[1]) if s[1] > 0 else one),
        "soft_dice": float(_ratio(2 * s[2], s[3]) if s[3] > 0 else one),
        "soft_recall": float(_ratio(s[2], s[4]) if s[4] > 0 else one),
        "soft_specificity": float(_ratio(s[5], s[6]) if s[6] > 0 else one),
    }


def soft_metrics(pred, target) -> dict[str, float]:
    return soft_metrics_from_sums(soft_sums(torch.as_tensor(pred), torch.as_tensor(target)))
