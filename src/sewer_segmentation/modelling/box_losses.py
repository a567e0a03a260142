"""Losses that take detection boxes themselves as the label (box supervision).

A box says two things a filled box mask gets wrong: the defect lies inside it, and the defect touches
every row and every column of it (a tight box). Three terms follow, each usable on any per-pixel output:

- **projection** (BoxInst, Tian et al. CVPR 2021; the tightness prior of Kervadec et al. MIDL 2020):
  inside each box, the maximum of the predicted mask along every row and every column should be 1.
  Computed per box (a Dice term between the projections and the box's all-ones projection), so
  overlapping boxes never merge into one. Boxes looser than their defects break that prior: with a
  ``coverage`` below 1 (measured on the hand-labelled frames, ``modelling/plan.py``) the term asks only
  that share of the rows and columns (those the mask reaches best) to reach 1.
- **background**: outside every box of a frame the prediction should be 0 (BCE towards 0).
- **pairwise** (BoxInst): a pixel inside a box and its neighbours of similar colour (LAB distance) share a
  label: ``-log P(same label)`` over the pairs whose colour similarity is at least ``similarity``. A pair
  may cross the box's edge, so the 0 outside spreads over the wall inside the box.
- **fill** (the size constraint of Kervadec et al., Medical Image Analysis 2019): the share of each box
  the predicted mask covers stays within ``fill_range``, measured on the user's own hand-labelled frames
  (the share of each of their boxes their polygons cover). The other three terms are all satisfied by a
  mask that fills its box; on thin defects (a crack covering a tenth of its box) this one is not.

A thin diagonal crack satisfies both projections and is consistent in colour, so thin defects are
learned where thresholded pseudo-masks fail. Boxes are ``(x0, y0, x1, y1)`` in pixels, end-exclusive;
rows with ``x1 <= x0`` are padding. A training crop can cut a box: the defect then still crosses every
column of a box cut at its top or bottom, but no longer every row (and the reverse). Boxes may carry two
more numbers, ``(rows_hold, columns_hold)`` (1 or 0, from ``data/samples.py``), that say which of the
two projections still holds; a box without them is whole.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: 8-neighbourhood offsets (dy, dx), at ``dilation`` pixels (BoxInst uses a dilated 3x3 neighbourhood).
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def box_pixel_masks(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``N x K x 4`` boxes -> ``N x K x H x W`` booleans (padding boxes are empty)."""
    ys = torch.arange(height, device=boxes.device, dtype=boxes.dtype).view(1, 1, height, 1)
    xs = torch.arange(width, device=boxes.device, dtype=boxes.dtype).view(1, 1, 1, width)
    x0, y0, x1, y1 = (boxes[..., i, None, None] for i in range(4))
    return (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)


def _integer_boxes(boxes: torch.Tensor, height: int, width: int) -> list[list[tuple[int, ...]]]:
    """Per frame, the non-empty boxes rounded to whole pixels and clipped to the frame, each with its
    two projection flags ``(x0, y0, x1, y1, rows_hold, columns_hold)`` (1, 1 when not given)."""
    out = []
    for frame in boxes.detach().round().long().cpu().tolist():
        kept = []
        for x0, y0, x1, y1, *flags in frame:
            rows_hold, columns_hold = flags if flags else (1, 1)
            x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
            if x1 > x0 and y1 > y0:
                kept.append((x0, y0, x1, y1, rows_hold, columns_hold))
        out.append(kept)
    return out


def projection_loss(probs: torch.Tensor, boxes: torch.Tensor, eps: float = 1.0, coverage: float = 1.0) -> torch.Tensor:
    """Mean over boxes of ``1 - Dice(top, 1)`` for the row and the column projections, where ``top`` is
    the ``coverage`` share of a projection's values that are highest: with ``coverage`` 1, every row and
    column of the box should reach 1; with 0.6, the 60 % of them the mask reaches best should (a faint
    prediction over every row does not satisfy it: each of those rows must reach 1).

    ``probs``: ``N x 1 x H x W`` in [0, 1]. 0 when the prediction reaches 1 in every row and column of
    each box (or in ``coverage`` of them); positive when fewer are reached. A projection a box's flags say
    no longer holds (a box cut by the crop) is left out. Returns 0 when there is no box."""
    height, width = probs.shape[-2:]
    terms = []
    for n, frame_boxes in enumerate(_integer_boxes(boxes, height, width)):
        for x0, y0, x1, y1, rows_hold, columns_hold in frame_boxes:
            region = probs[n, 0, y0:y1, x0:x1]
            projections = [region.amax(dim=1)] if rows_hold else []  # one value per row
            projections += [region.amax(dim=0)] if columns_hold else []  # one value per column
            for projection in projections:
                top = projection.topk(max(1, math.ceil(coverage * projection.numel() - 1e-9))).values
                dice = (2 * top.sum() + eps) / ((top**2).sum() + top.numel() + eps)
                terms.append(1 - dice)
    if not terms:
        return probs.sum() * 0
    return torch.stack(terms).mean()


def background_loss(logits: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """BCE towards 0 of the pixels outside every box (``inside``: ``N x 1 x H x W`` booleans, the union of
    a frame's boxes); 0 when no pixel is outside."""
    outside = (~inside).float()
    per_pixel = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    return (per_pixel * outside).sum() / outside.sum().clamp_min(1.0)


def _shifted(x: torch.Tensor, dy: int, dx: int, fill: float = 0.0) -> torch.Tensor:
    """``x`` moved so that position (i, j) holds x[i + dy, j + dx] (``fill`` off the frame)."""
    height, width = x.shape[-2:]
    pad = max(abs(dy), abs(dx))
    padded = F.pad(x, (pad, pad, pad, pad), value=fill)
    return padded[..., pad + dy : pad + dy + height, pad + dx : pad + dx + width]


def colour_similarity(lab: torch.Tensor, dilation: int, theta: float) -> torch.Tensor:
    """``N x 8 x H x W``: ``exp(-||lab_i - lab_j|| / theta)`` between each pixel and its 8 neighbours at
    ``dilation`` pixels (0 where the neighbour is off the frame)."""
    similarities = []
    for dy, dx in NEIGHBOURS:
        other = _shifted(lab, dy * dilation, dx * dilation, fill=float("nan"))
        distance = (lab - other).norm(dim=1)
        similarities.append(torch.nan_to_num(torch.exp(-distance / theta), nan=0.0))
    return torch.stack(similarities, dim=1)


def pairwise_loss(logits: torch.Tensor, lab: torch.Tensor, inside: torch.Tensor, dilation: int = 2, theta: float = 2.0,
                  similarity: float = 0.3) -> torch.Tensor:  # fmt: skip
    """``-log P(pixel and neighbour share a label)`` averaged over the similar-coloured pairs inside boxes.

    P(same) = p_i p_j + (1 - p_i)(1 - p_j), computed from log-sigmoids for stability. Pairs count where
    the pixel is inside a box of the frame, its neighbour anywhere on the frame, and their colour
    similarity is at least ``similarity`` (as BoxInst). The pairs that cross a box's edge carry the
    background's 0 inwards over the wall up to the defect's colour edge: with pairs inside boxes only, a
    filled box would cost nothing, and a thin crack would be learned as thick as its box."""
    log_fg, log_bg = F.logsigmoid(logits), F.logsigmoid(-logits)
    sim = colour_similarity(lab, dilation, theta)
    inside_f = inside.float()
    total, count = logits.new_zeros(()), logits.new_zeros(())
    for index, (dy, dx) in enumerate(NEIGHBOURS):
        fg_j, bg_j = _shifted(log_fg, dy * dilation, dx * dilation), _shifted(log_bg, dy * dilation, dx * dilation)
        log_same = torch.logaddexp(log_fg + fg_j, log_bg + bg_j)
        pairs = (sim[:, index : index + 1] >= similarity).float() * inside_f
        total = total - (log_same * pairs).sum()
        count = count + pairs.sum()
    return total / count.clamp_min(1.0)


def fill_loss(probs: torch.Tensor, boxes: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Mean over whole boxes of how far the share of the box the prediction covers (its mean probability)
    lies outside ``[low, high]`` (a linear hinge: the pull does not fade near the range as a squared one
    would). Boxes a crop cut are left out: their share is not the whole box's. 0 when there is no whole
    box or every share is in range."""
    height, width = probs.shape[-2:]
    terms = []
    for n, frame_boxes in enumerate(_integer_boxes(boxes, height, width)):
        for x0, y0, x1, y1, rows_hold, columns_hold in frame_boxes:
            if rows_hold and columns_hold:
                share = probs[n, 0, y0:y1, x0:x1].mean()
                terms.append(F.relu(low - share) + F.relu(share - high))
    if not terms:
        return probs.sum() * 0
    return torch.stack(terms).mean()


class BoxSupervisionLoss(nn.Module):
    """The weighted sum of the box terms over the box-supervised frames of a batch.

    ``forward(logits, boxes, box_supervised, lab)``: ``boxes`` ``N x K x 4`` (padding rows empty),
    ``box_supervised`` ``N`` flags (frames whose label is their boxes; hand-labelled frames are 0),
    ``lab`` ``N x 3 x H x W`` LAB colours of the (augmented) input. Returns the loss and its terms."""

    def __init__(self, projection: float = 1.0, background: float = 1.0, pairwise: float = 1.0, dilation: int = 2, theta: float = 2.0,
                 similarity: float = 0.3, fill: float = 0.0, fill_range: tuple[float, float] | None = None,
                 fill_quantiles: tuple[float, float] | None = None, projection_coverage: float | None = None,
                 projection_quantile: float | None = None):  # fmt: skip
        super().__init__()
        # Without a measured range the fill term has nothing to hold the masks to: off.
        fill = float(fill) if fill_range is not None else 0.0
        self.weights = {"projection": float(projection), "background": float(background), "pairwise": float(pairwise), "fill": fill}
        self.dilation, self.theta, self.similarity = int(dilation), float(theta), float(similarity)
        self.fill_range = tuple(float(v) for v in fill_range) if fill_range is not None else None
        # Unmeasured (too few hand-labelled boxes): a box is taken to be tight.
        self.projection_coverage = float(projection_coverage) if projection_coverage is not None else 1.0

    def forward(self, logits: torch.Tensor, boxes: torch.Tensor, box_supervised: torch.Tensor, lab: torch.Tensor) -> tuple[torch.Tensor, dict]:
        chosen = box_supervised > 0.5
        if not bool(chosen.any()):
            zero = logits.sum() * 0
            return zero, {}
        # Whole pixels for every term, so that a box's edge rows count as inside for all three alike.
        logits, boxes, lab = logits[chosen].float(), boxes[chosen].float().round(), lab[chosen].float()
        inside = box_pixel_masks(boxes, *logits.shape[-2:]).any(dim=1, keepdim=True)
        terms = {}
        if self.weights["projection"]:
            terms["projection"] = projection_loss(torch.sigmoid(logits), boxes, coverage=self.projection_coverage)
        if self.weights["background"]:
            terms["background"] = background_loss(logits, inside)
        if self.weights["pairwise"]:
            terms["pairwise"] = pairwise_loss(logits, lab, inside, self.dilation, self.theta, self.similarity)
        if self.weights["fill"]:
            terms["fill"] = fill_loss(torch.sigmoid(logits), boxes, *self.fill_range)
        total = sum(self.weights[name] * value for name, value in terms.items())
        return total, {name: float(value.detach()) for name, value in terms.items()}
