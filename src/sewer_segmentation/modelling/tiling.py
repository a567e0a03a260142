"""Prediction of a whole frame by overlapping tiles, stitched back with a blending window.

With ``image_size.mode: native`` a model trains on crops of frames at their own scale, so it predicts a
frame of any size (a 4K frame included) tile by tile: the frame is padded at its bottom and right edges
to a multiple of 32 and at least one tile, tiles of the crop size are taken every ``tile - overlap``
pixels (the last one flush with the edge), run ``batch_size`` at a time, and blended where they overlap.

The window of a tile is 0 in the quarter of the overlap next to an edge it shares with another tile
(where the tile's own border changes its output), then rises linearly to 1 over the middle half; at the
frame's edges it stays 1. Blended values are ``sum(window * output) / sum(window)``, so a pixel seen by
one tile keeps that tile's value, and a model whose receptive field reaches less than a quarter of the
overlap gives the same map as a prediction of the whole frame at once. Memory: one batch of tiles plus
two frame-sized float maps.

Imports torch only: the MLflow pyfunc model (``tracking/mlflow_pyfunc.py``) ships this file with it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

#: Frames are padded to a multiple of this (encoders downsample 5 times): tile origins then fall on the
#: same pixel grid as a prediction of the whole frame.
STRIDE_MULTIPLE = 32


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Start of each tile along an axis of ``length`` (>= ``tile``) pixels: every ``tile - overlap``
    pixels, the last tile flush with the end."""
    if length <= tile:
        return [0]
    step = tile - overlap
    origins = list(range(0, length - tile, step))
    return [*origins, length - tile]


def edge_window(tile: int, overlap: int, ramp_start: bool, ramp_end: bool) -> torch.Tensor:
    """1-D blending weights of a tile: 0 over the first quarter of ``overlap`` at an edge shared with
    another tile, a linear rise to 1 over the next half, 1 elsewhere (and at the frame's edges)."""
    window = torch.ones(tile)
    margin, rise = overlap // 4, max(1, overlap // 2)
    ramp = ((torch.arange(overlap, dtype=torch.float32) - margin + 0.5) / rise).clamp(0, 1)
    if ramp_start and overlap:
        window[:overlap] = torch.minimum(window[:overlap], ramp)
    if ramp_end and overlap:
        window[tile - overlap :] = torch.minimum(window[tile - overlap :], ramp.flip(0))
    return window


def pad_frame(frame: torch.Tensor, tile_height: int, tile_width: int) -> torch.Tensor:
    """``C x H x W`` padded at the bottom and right to at least one tile and a multiple of 32; reflected
    where the frame is large enough (context that looks like the frame), repeated otherwise."""
    _, h, w = frame.shape
    target_h = max(tile_height, -(-h // STRIDE_MULTIPLE) * STRIDE_MULTIPLE)
    target_w = max(tile_width, -(-w // STRIDE_MULTIPLE) * STRIDE_MULTIPLE)
    pad = (0, target_w - w, 0, target_h - h)
    if pad[1] == 0 and pad[3] == 0:
        return frame
    mode = "reflect" if pad[1] < w and pad[3] < h else "replicate"
    return F.pad(frame[None], pad, mode=mode)[0]


def predict_tiled(
    predict: Callable[[torch.Tensor], torch.Tensor],
    frame: torch.Tensor,
    tile_height: int,
    tile_width: int,
    overlap: int,
    batch_size: int = 16,
) -> torch.Tensor:
    """``predict`` (``B x C x tile_h x tile_w`` -> ``B x K x tile_h x tile_w``) over the tiles of ``frame``
    (``C x H x W``, already normalized), blended back to ``K x H x W`` float32 on the frame's device."""
    if not 0 <= overlap < min(tile_height, tile_width):
        raise ValueError(f"tile overlap must be at least 0 and below the tile size {tile_height}x{tile_width}, got {overlap}")
    _, h, w = frame.shape
    padded = pad_frame(frame, tile_height, tile_width)
    ph, pw = padded.shape[1:]
    rows, cols = tile_origins(ph, tile_height, overlap), tile_origins(pw, tile_width, overlap)
    if len(rows) == 1 and len(cols) == 1:  # one tile: exactly the untiled prediction
        return predict(padded[None])[0, :, :h, :w].float()
    positions = [(y, x) for y in rows for x in cols]
    row_windows = [edge_window(tile_height, overlap, i > 0, i < len(rows) - 1).to(frame.device) for i in range(len(rows))]
    col_windows = [edge_window(tile_width, overlap, j > 0, j < len(cols) - 1).to(frame.device) for j in range(len(cols))]
    total, weight = None, torch.zeros(ph, pw, device=frame.device)
    for start in range(0, len(positions), batch_size):
        chunk = positions[start : start + batch_size]
        tiles = torch.stack([padded[:, y : y + tile_height, x : x + tile_width] for y, x in chunk])
        outputs = predict(tiles).float()
        if total is None:
            total = torch.zeros(outputs.shape[1], ph, pw, device=frame.device)
        for (y, x), output in zip(chunk, outputs, strict=True):
            window = row_windows[rows.index(y)][:, None] * col_windows[cols.index(x)][None, :]
            total[:, y : y + tile_height, x : x + tile_width] += output * window
            weight[y : y + tile_height, x : x + tile_width] += window
    return (total / weight.clamp_min(1e-12))[:, :h, :w]
