"""Losses by name. Every loss takes ``(logits, target, weight=None)``.

- ``target`` may be soft (values in [0, 1]): refined masks are probabilities, not 0/1.
- ``weight`` is an optional per-pixel weight map of the target's shape (0 = ignore the pixel); refined
  masks use it to down-weight pixels the refinement is unsure about.

Names: ``tversky`` (default, as the original), ``dice``, ``bce``, ``focal``, ``lovasz`` and
``edge_bce`` (BCE with a low weight on a band around mask borders, where box-derived masks are wrong).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import LovaszLoss
from torch import nn
from torchvision.ops import sigmoid_focal_loss


def _weighted_mean(per_pixel: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return per_pixel.mean()
    return (per_pixel * weight).sum() / weight.sum().clamp_min(1e-6)


class TverskyLoss(nn.Module):
    """1 - Tversky index with soft targets and pixel weights; alpha weighs false positives, beta false
    negatives (alpha = beta = 0.5 is the Dice loss). Computed over the whole batch, like smp's."""

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, smooth: float = 1.0, gamma: float = 1.0):
        super().__init__()
        self.alpha, self.beta, self.smooth, self.gamma = alpha, beta, smooth, gamma

    def forward(self, logits, target, weight=None):
        p = torch.sigmoid(logits.float())
        w = torch.ones_like(p) if weight is None else weight
        tp = (w * p * target).sum()
        fp = (w * p * (1 - target)).sum()
        fn = (w * (1 - p) * target).sum()
        index = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)
        return (1 - index) ** self.gamma


class DiceLoss(TverskyLoss):
    def __init__(self, smooth: float = 1.0):
        super().__init__(alpha=0.5, beta=0.5, smooth=smooth)


class BCELoss(nn.Module):
    def __init__(self, pos_weight: float | None = None):
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, logits, target, weight=None):
        pos_weight = None if self.pos_weight is None else torch.tensor(self.pos_weight, device=logits.device)
        per_pixel = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none", pos_weight=pos_weight)
        return _weighted_mean(per_pixel, weight)


class FocalLoss(nn.Module):
    """torchvision's sigmoid focal loss (soft targets allowed), with pixel weights."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0):
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits, target, weight=None):
        per_pixel = sigmoid_focal_loss(logits.float(), target, alpha=self.alpha, gamma=self.gamma, reduction="none")
        return _weighted_mean(per_pixel, weight)


class LovaszHingeLoss(nn.Module):
    """smp's Lovász hinge. It is defined for hard labels: soft targets are thresholded at 0.5 and pixels
    with weight 0 are ignored; other weights are not used."""

    def __init__(self, per_image: bool = False):
        super().__init__()
        self.loss = LovaszLoss(mode="binary", per_image=per_image, ignore_index=-1)

    def forward(self, logits, target, weight=None):
        hard = (target > 0.5).float()
        if weight is not None:
            hard = torch.where(weight > 0, hard, torch.full_like(hard, -1.0))
        return self.loss(logits.float(), hard)


class EdgeAwareBCELoss(nn.Module):
    """BCE whose weight is ``edge_weight`` within ``band`` pixels of a mask border, 1 elsewhere.

    Box-derived masks are right far inside and far outside the box and wrong near its edges; the band is
    found from the target itself (dilation minus erosion of the mask).
    """

    def __init__(self, band: int = 5, edge_weight: float = 0.1):
        super().__init__()
        self.band, self.edge_weight = int(band), float(edge_weight)

    def forward(self, logits, target, weight=None):
        hard = (target > 0.5).float()
        k = 2 * self.band + 1
        dilated = F.max_pool2d(hard, k, stride=1, padding=self.band)
        eroded = -F.max_pool2d(-hard, k, stride=1, padding=self.band)
        edge_weights = torch.where((dilated - eroded) > 0, self.edge_weight, 1.0)
        combined = edge_weights if weight is None else edge_weights * weight
        per_pixel = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
        return _weighted_mean(per_pixel, combined)


LOSSES = {
    "tversky": TverskyLoss,
    "dice": DiceLoss,
    "bce": BCELoss,
    "focal": FocalLoss,
    "lovasz": LovaszHingeLoss,
    "edge_bce": EdgeAwareBCELoss,
}
ALIASES = {"tverskyloss": "tversky", "diceloss": "dice", "bcewithlogitsloss": "bce", "focalloss": "focal",
           "lovaszloss": "lovasz", "bboxawareloss": "edge_bce"}  # fmt: skip


def loss_key(name: str) -> str:
    """The ``LOSSES`` key of a loss name (case-insensitive; the original config's class names are accepted
    too); a ValueError naming the choices for an unknown one."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return key


def build_loss(name: str, args: dict | None = None) -> nn.Module:
    """Loss by name (``loss_key``) with its keyword arguments (``params.LossParams`` checks both before a
    run: a TypeError here means arguments the loss does not take)."""
    args = dict(args or {})
    for ignored in ("mode", "from_logits"):  # smp-style arguments of the original config: always binary logits
        args.pop(ignored, None)
    return LOSSES[loss_key(name)](**args)
