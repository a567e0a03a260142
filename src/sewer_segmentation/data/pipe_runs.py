"""Synthetic frames of one pipe run: the same pipe seen from camera positions along its axis.

Near-duplicate detection must not merge frames of one inspection that are a metre apart: they share the
pipe's colour, lighting and dark far end, yet show other joints and other wall. ``pipe_run_frame(seed,
position_m)`` draws the frame ``position_m`` metres into run ``seed``. The wall texture and the joint
rings are anchored to the pipe (to a depth along its axis), so moving the camera moves them as
perspective does; the burnt-in distance counter changes with the position. Used by ``bench/dedupe.py``
as the hard negatives of its false-merge count.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Texture cells per metre of pipe and around its circumference.
_CELLS_PER_M, _CELLS_AROUND, _RUN_LENGTH_M = 24, 96, 150


def _run(seed: int) -> dict:
    """What stays the same along run ``seed``: camera, lamp, pipe colour, joint spacing, wall texture."""
    rng = np.random.default_rng([seed, 0])
    cells = (_RUN_LENGTH_M * _CELLS_PER_M, _CELLS_AROUND)
    texture = 1.0 + 0.25 * rng.uniform(-1, 1, cells) + 0.12 * cv2.resize(rng.uniform(-1, 1, (cells[0] // 8, cells[1] // 8)), cells[::-1])
    return {
        "vanishing": (rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.1)),
        "squash": rng.uniform(0.9, 1.2),
        "colour": np.array([[150, 145, 135], [160, 110, 80], [175, 160, 120]][int(rng.integers(3))]) * rng.uniform(0.8, 1.1),
        "lamp": (rng.uniform(-np.pi, np.pi), rng.uniform(0.3, 0.6)),
        "focal": rng.uniform(0.4, 0.7),  # metres of pipe ahead of the camera seen at the frame's border
        "joint_spacing": rng.uniform(1.0, 2.5),
        "texture": texture.astype(np.float32),
        "label": f"2024-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}  MH{rng.integers(100, 999)}",
    }


def pipe_run_frame(seed: int, position_m: float, width: int = 704, height: int = 576) -> np.ndarray:
    """The RGB uint8 frame at ``position_m`` metres (0 to about 140) into pipe run ``seed``."""
    run = _run(seed)
    rng = np.random.default_rng([seed, 1, int(round(position_m * 1000))])  # this frame's wobble and noise
    h, w = height, width
    vx, vy = run["vanishing"]
    cx, cy = w * (0.5 + vx + rng.normal(0, 0.005)), h * (0.5 + vy + rng.normal(0, 0.005))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - cx, (yy - cy) * run["squash"]
    radius = np.sqrt(dx**2 + dy**2) / (0.5 * min(h, w))
    angle = np.arctan2(dy, dx)
    depth = position_m + run["focal"] / np.maximum(radius, 0.02)  # where along the pipe each pixel looks
    cells = run["texture"]
    map_y = np.clip(depth * _CELLS_PER_M, 0, cells.shape[0] - 2).astype(np.float32)
    map_x = ((angle + np.pi) / (2 * np.pi) * cells.shape[1]).astype(np.float32)
    shade = cv2.remap(cells, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_WRAP)
    joints = np.abs(depth / run["joint_spacing"] - np.round(depth / run["joint_spacing"])) * run["joint_spacing"]
    shade = shade * (1.0 - 0.35 * np.exp(-((joints / 0.03) ** 2)))  # a joint ring every joint_spacing metres
    lamp_angle, lamp_width = run["lamp"]
    shade = shade * (1.0 - np.exp(-((radius / lamp_width) ** 2))) * (0.7 + 0.3 * np.cos(angle - lamp_angle))
    vignette = 1.0 - 0.35 * (radius / radius.max()) ** 2
    image = shade[..., None] * vignette[..., None] * run["colour"][None, None, :] + rng.normal(0, 3, (h, w, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    cv2.putText(image, f"{run['label']}  {position_m:05.1f}m", (int(w * 0.03), int(h * 0.96)), cv2.FONT_HERSHEY_SIMPLEX,
                0.35 * w / 320, (255, 255, 255), 1, cv2.LINE_AA)  # fmt: skip
    return image
