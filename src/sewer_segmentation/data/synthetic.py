"""Generator of synthetic sewer-CCTV data in the raw layouts the project ingests.

The real datasets cannot be redistributed, so the project ships this generator: it draws frames of a
pipe seen along its axis (dark vanishing centre, shaded walls, joint rings, wall texture, sensor noise,
vignetting, burnt-in text overlay) with defects of one class and writes them exactly as a detector
dataset would have them: images, filled detection boxes (coarse, padded, jittered, a few false ones),
and VIA polygons for a hand-labelled subset. It also writes what no real dataset has: the true mask of
every frame, used only to score box masks, refined masks and models.

Everything is drawn from ``numpy.random.default_rng([seed, frame_index])``, so a frame does not depend
on how many frames come before it, and the whole dataset is reproducible from its seed.

Run ``python -m sewer_segmentation.data.synthetic --help`` to write a dataset outside Kedro.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from sewer_segmentation.io.imaging import encode_image

#: Class names of the upstream detection dataset, in YOLO id order.
CLASS_NAMES = ("Deformation", "Obstacle", "Rupture", "Disconnect", "Misalignment", "Deposition")
#: Class ids of generated YOLO datasets: the upstream six, then the generator's own Crack.
YOLO_CLASS_NAMES = (*CLASS_NAMES, "Crack")
#: Classes the generator can draw. ``Crack`` is not an upstream class: thin (1-3 px), branching,
#: low-contrast lines, the kind of defect whose box masks are almost all wrong (box vs truth IoU ~0.05).
DRAWABLE_CLASSES = ("Deformation", "Obstacle", "Disconnect", "Deposition", "Crack")

#: Named presets of ``SyntheticConfig`` fields: the regimes ``bench/quality.py`` checks every default on.
#: ``hard`` is Deposition where colour does not separate defect from wall: a strongly textured wall,
#: defect-coloured stains inside most boxes, and sediment painted half-transparent (low contrast).
REGIMES: dict[str, dict] = {
    "deposition": {"defect_class": "Deposition"},
    "obstacle": {"defect_class": "Obstacle"},
    "crack": {"defect_class": "Crack"},
    "hard": {"defect_class": "Deposition", "wall_texture": 0.35, "stains_in_boxes": 0.7, "defect_opacity": 0.6},
    # thin defects in boxes much looser than them, as on a real set of thin surface defects (there the box
    # masks scored 0.04 against the truth; here about 0.06 at 160x128, against 0.13 for crack): the
    # tight-box prior does not hold
    "loose": {"defect_class": "Crack", "padded_box_fraction": 1.0, "box_padding": 1.0},
}


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. Sizes are width x height of the frames, as cameras report them."""

    num_images: int = 300
    num_hand_labelled: int = 60
    width: int = 320
    height: int = 240
    defect_class: str = "Deposition"
    seed: int = 7
    duplicate_fraction: float = 0.05
    junk_fraction: float = 0.02
    false_box_fraction: float = 0.05
    text_overlay_fraction: float = 0.5
    distractor_fraction: float = 0.4  # frames with stains that look like defects
    layout: str = "via"  # "via": images/ masks/ labels.csv; "yolo": images/ labels/ data.yaml (+ labels.csv)
    other_class_box_fraction: float = 0.0  # extra YOLO boxes of other classes (to exercise class filters)
    wall_texture: float = 0.0  # extra fine wall texture (0 = none; the hard regime uses 0.35)
    stains_in_boxes: float = 0.0  # chance that a box also holds a defect-coloured stain that is no defect
    defect_opacity: float = 1.0  # how strongly the defect is painted over the wall (1 = opaque)
    exposure_copies: int = 0  # per hand-labelled frame, this many more shots at other exposures, each hand-labelled too
    padded_box_fraction: float = 0.5  # share of boxes padded beyond their defect
    box_padding: float = 0.15  # a padded box grows by 2 % to this share of its size on each side

    def __post_init__(self) -> None:
        if self.defect_class not in DRAWABLE_CLASSES:
            raise ValueError(f"defect_class must be one of {DRAWABLE_CLASSES}, got {self.defect_class!r}")
        if not 0 <= self.num_hand_labelled <= self.num_images:
            raise ValueError("num_hand_labelled must be between 0 and num_images")
        if self.layout not in ("via", "yolo"):
            raise ValueError(f"layout must be 'via' or 'yolo', got {self.layout!r}")
        if self.width < 64 or self.height < 64:
            raise ValueError("frames must be at least 64x64")
        if not 0 < self.defect_opacity <= 1:
            raise ValueError("defect_opacity must be in (0, 1]")
        if not 0 <= self.padded_box_fraction <= 1 or not 0.02 <= self.box_padding <= 2:
            raise ValueError("padded_box_fraction must be in [0, 1] and box_padding in [0.02, 2]")


def config_for_regime(regime: str | None, **overrides) -> SyntheticConfig:
    """``SyntheticConfig`` of a named regime (see ``REGIMES``), with field overrides on top."""
    if regime is None:
        return SyntheticConfig(**overrides)
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; choose one of {', '.join(REGIMES)}")
    return SyntheticConfig(**{**REGIMES[regime], **overrides})


@dataclass
class Frame:
    """One generated frame with everything known about it."""

    name: str
    image: np.ndarray  # H x W x 3 uint8, RGB
    truth: np.ndarray  # H x W uint8, 0/255: the true defect pixels
    boxes: list[tuple[int, int, int, int]]  # x0, y0, x1, y1 (inclusive-exclusive), as a detector gave them
    kind: str = "normal"  # normal | duplicate | junk
    duplicate_of: str | None = None
    extra_boxes: list[tuple[int, tuple[int, int, int, int]]] = field(default_factory=list)  # (class id, box)


# --------------------------------------------------------------------------------------------------
# Scene drawing
# --------------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, h: int, w: int, scale: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: random values on a coarse grid, resized up with cubic interpolation."""
    gh, gw = max(2, h // scale), max(2, w // scale)
    coarse = rng.uniform(-1.0, 1.0, size=(gh, gw)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(-1.0, 1.0)


def _pipe_geometry(rng: np.random.Generator, h: int, w: int) -> dict:
    # Cameras are rarely centred: the vanishing point wanders, which makes frames look different.
    cx = w / 2 + rng.uniform(-0.2, 0.2) * w
    cy = h / 2 + rng.uniform(-0.2, 0.15) * h
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - cx, (yy - cy) * rng.uniform(0.9, 1.2)
    radius = np.sqrt(dx**2 + dy**2) / (0.5 * min(h, w))  # 1.0 ~ the pipe wall at the frame border
    angle = np.arctan2(dy, dx)
    return {"cx": cx, "cy": cy, "radius": radius, "angle": angle, "yy": yy, "xx": xx}


def _draw_pipe(rng: np.random.Generator, h: int, w: int, geo: dict, wall_texture: float = 0.0) -> np.ndarray:
    radius, angle = geo["radius"], geo["angle"]
    material = rng.choice(["concrete", "clay", "pvc"])
    base = {
        "concrete": np.array([150, 145, 135]),
        "clay": np.array([160, 110, 80]),
        "pvc": np.array([175, 160, 120]),
    }[material] * rng.uniform(0.8, 1.1)
    # The lamp lights the near walls; the far pipe fades to black at the vanishing centre.
    light = 1.0 - np.exp(-((radius / rng.uniform(0.3, 0.6)) ** 2))
    light *= 0.7 + 0.3 * np.cos(angle - rng.uniform(-np.pi, np.pi))  # the lamp is off-axis
    light *= 1.0 + 0.25 * _smooth_noise(rng, h, w, 40)  # stains and wet patches
    texture = 1.0 + 0.15 * _smooth_noise(rng, h, w, 12) + 0.06 * _smooth_noise(rng, h, w, 2)
    if wall_texture > 0:  # rough, patchy walls whose dark grain looks like defects at a glance
        texture = texture + wall_texture * (_smooth_noise(rng, h, w, 3) + 0.5 * _smooth_noise(rng, h, w, 8))
    shade = (light * texture).astype(np.float32)
    # Joint rings: perspective puts them at radii r_k = r_0 / (1 + k d).
    r0, d = rng.uniform(1.1, 1.4), rng.uniform(0.5, 0.9)
    for k in range(0, 8):
        rk = r0 / (1 + k * d)
        width = 0.015 + 0.02 * rk
        shade *= 1.0 - 0.35 * np.exp(-(((radius - rk) / width) ** 2))
    image = shade[..., None] * base[None, None, :]
    return image.astype(np.float32)


def _random_blob(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float, n: int = 48) -> np.ndarray:
    """An irregular closed outline: a radius modulated by a few random harmonics."""
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 6):
        r += rng.uniform(0.05, 0.22) / (k - 1) ** 0.5 * np.sin(k * theta + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.35, None)
    pts = np.stack([cx + rx * r * np.cos(theta), cy + ry * r * np.sin(theta)], axis=1)
    return pts.astype(np.int32)


def _polar_band(geo: dict, a0: float, a1: float, r_inner: np.ndarray, r_outer: np.ndarray, n: int) -> np.ndarray:
    """Outline of the region between two radius curves over an angular range, in image coordinates."""
    scale = 0.5 * min(geo["radius"].shape)
    theta = np.linspace(a0, a1, n)
    outer = np.stack([geo["cx"] + r_outer * scale * np.cos(theta), geo["cy"] + r_outer * scale * np.sin(theta)], 1)
    inner = np.stack([geo["cx"] + r_inner * scale * np.cos(theta), geo["cy"] + r_inner * scale * np.sin(theta)], 1)
    return np.concatenate([outer, inner[::-1]]).astype(np.int32)


def _crack_mask(rng: np.random.Generator, h: int, w: int, geo: dict) -> np.ndarray:
    """A thin branching crack on the wall: a jittered random walk (1-3 px wide) with 0-2 branches,
    long enough to cover 0.6-2% of the frame."""
    mask = np.zeros((h, w), np.uint8)
    thickness = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
    length = rng.uniform(0.006, 0.02) * h * w / thickness
    a, r = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.0) * 0.5 * min(h, w)
    start = np.array([geo["cx"] + r * np.cos(a), geo["cy"] + r * np.sin(a)])
    heading = rng.uniform(0, 2 * np.pi)
    paths = [(start, heading, length)]
    for _ in range(int(rng.integers(0, 3))):
        paths.append((None, None, length * rng.uniform(0.2, 0.45)))
    main: list[np.ndarray] = []
    for origin, direction, path_length in paths:
        if origin is None:  # a branch leaves the main crack at a random point, at an angle
            origin = main[int(rng.integers(len(main) // 4, max(len(main) // 4 + 1, 3 * len(main) // 4)))]
            direction = heading + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1)
        points, position, steps = [origin.copy()], origin.copy(), max(2, int(path_length / 4))
        for _ in range(steps):
            direction += rng.normal(0, 0.35)
            position = position + 4 * np.array([np.cos(direction), np.sin(direction)])
            points.append(position.copy())
        if not main:
            main = points
        cv2.polylines(mask, [np.round(points).astype(np.int32)], False, 1, thickness, cv2.LINE_8)
    return mask


def _defect_outline(rng: np.random.Generator, defect_class: str, h: int, w: int, geo: dict) -> np.ndarray:
    n = 64
    if defect_class == "Deposition":
        # Sediment on the pipe floor: a band under the centre with a wavy upper edge.
        mid = np.pi / 2 + rng.uniform(-0.35, 0.35)
        span = rng.uniform(0.35, 0.9)
        theta = np.linspace(mid - span, mid + span, n)
        wave = np.sin((theta - theta[0]) / (2 * span) * np.pi)  # thicker in the middle
        r_inner = 1.25 - rng.uniform(0.25, 0.6) * wave - 0.05 * np.sin(theta * rng.integers(4, 9))
        r_outer = np.full(n, 1.6)
        return _polar_band(geo, theta[0], theta[-1], r_inner.clip(0.3, 1.5), r_outer, n)
    if defect_class == "Obstacle":
        # An object or root mass in the flow, anywhere off the dark centre.
        a, r = rng.uniform(0, 2 * np.pi), rng.uniform(0.35, 0.75)
        scale = 0.5 * min(h, w)
        cx, cy = geo["cx"] + r * scale * np.cos(a), geo["cy"] + r * scale * np.sin(a)
        size = rng.uniform(0.12, 0.25) * min(h, w)
        return _random_blob(rng, cx, cy, size * rng.uniform(0.7, 1.3), size * rng.uniform(0.6, 1.1), n)
    if defect_class == "Deformation":
        # A bulge of the wall: a crescent between the wall and an inner curve.
        mid, span = rng.uniform(0, 2 * np.pi), rng.uniform(0.4, 0.9)
        theta = np.linspace(mid - span, mid + span, n)
        bulge = np.sin((theta - theta[0]) / (2 * span) * np.pi)
        r_inner = 1.3 - rng.uniform(0.35, 0.6) * bulge
        return _polar_band(geo, theta[0], theta[-1], r_inner, np.full(n, 1.6), n)
    # Disconnect: an open joint, a ragged arc band around one of the near rings.
    mid, span = rng.uniform(0, 2 * np.pi), rng.uniform(0.6, 1.6)
    theta = np.linspace(mid - span, mid + span, n)
    r_mid = rng.uniform(0.55, 0.9)
    thickness = rng.uniform(0.06, 0.12) * (1 + 0.4 * np.sin(theta * rng.integers(3, 7)))
    return _polar_band(geo, theta[0], theta[-1], r_mid - thickness, r_mid + thickness, n)


# Sand, grey silt, dark mud, rust: sediment is not one colour.
DEPOSIT_COLOURS = np.array([[125, 100, 60], [110, 108, 100], [70, 55, 40], [150, 85, 45]], dtype=np.float32)


def _paint_distractors(rng: np.random.Generator, image: np.ndarray, keep_out: np.ndarray, geo: dict) -> None:
    """Stains, wet patches and encrustation on the walls: they look like defects but are not.

    They are what makes a few hand-labelled frames not enough: colour alone does not tell a deposit
    from a stain; position and shape do.
    """
    h, w = keep_out.shape
    for _ in range(int(rng.integers(1, 4))):
        a = rng.uniform(0.9 * np.pi, 2.1 * np.pi)  # walls and crown: sediment lies on the floor
        r = rng.uniform(0.5, 1.1) * 0.5 * min(h, w)
        cx, cy = geo["cx"] + r * np.cos(a), geo["cy"] + r * np.sin(a)
        size = rng.uniform(0.05, 0.14) * min(h, w)
        blob = np.zeros((h, w), np.uint8)
        cv2.fillPoly(blob, [_random_blob(rng, cx, cy, size * rng.uniform(0.8, 1.8), size, 40)], 1)
        blob &= keep_out == 0
        if not blob.any():
            continue
        alpha = cv2.GaussianBlur(blob.astype(np.float32), (0, 0), 1.5)[..., None] * rng.uniform(0.6, 0.95)
        colour = DEPOSIT_COLOURS[rng.integers(len(DEPOSIT_COLOURS))] * rng.uniform(0.75, 1.2)
        texture = colour * (1 + 0.25 * _smooth_noise(rng, h, w, 2)[..., None] + 0.15 * rng.standard_normal((h, w, 1)))
        image *= 1 - alpha
        image += alpha * texture


def _paint_stains_in_boxes(
    rng: np.random.Generator, image: np.ndarray, defect_masks: list, truth: np.ndarray, chance: float, geo: dict
) -> None:
    """Defect-coloured stains inside the bounding box of a defect but off the defect itself: a box
    then holds two look-alike regions and only shape and position tell which one is the defect."""
    h, w = truth.shape
    keep_out = cv2.dilate(truth, np.ones((5, 5), np.uint8))
    for m in defect_masks:
        if rng.random() >= chance:
            continue
        ys, xs = np.nonzero(m)
        inside = np.zeros((h, w), np.uint8)
        inside[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = 1
        free = np.argwhere((inside > 0) & (keep_out == 0))
        if len(free) == 0:
            continue
        cy, cx = free[int(rng.integers(len(free)))]
        size = rng.uniform(0.04, 0.09) * min(h, w)
        blob = np.zeros((h, w), np.uint8)
        cv2.fillPoly(blob, [_random_blob(rng, cx, cy, size * rng.uniform(0.8, 1.6), size, 40)], 1)
        blob &= (inside > 0) & (keep_out == 0)
        alpha = cv2.GaussianBlur(blob.astype(np.float32), (0, 0), 1.2)[..., None] * rng.uniform(0.6, 0.9)
        colour = DEPOSIT_COLOURS[rng.integers(len(DEPOSIT_COLOURS))] * rng.uniform(0.75, 1.2)
        image *= 1 - alpha
        image += alpha * colour * (1 + 0.2 * rng.standard_normal((h, w, 1)))


def _paint_defect(
    rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, defect_class: str, opacity: float = 1.0
) -> None:
    """Blend a class-specific texture into ``image`` where ``mask`` is set (edges softened)."""
    h, w = mask.shape
    if defect_class == "Crack":  # a dark line, only 20-45 % darker than the wall: low contrast
        alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.6)[..., None] * opacity
        image *= 1 - alpha * rng.uniform(0.2, 0.45)
        return
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.2)[..., None]
    if opacity < 1:
        alpha = alpha * opacity
    grain = _smooth_noise(rng, h, w, 2)[..., None]
    if defect_class == "Deposition":
        colour = DEPOSIT_COLOURS[rng.integers(len(DEPOSIT_COLOURS))] * rng.uniform(0.75, 1.2)
        texture = colour * (1 + 0.25 * grain + 0.15 * rng.standard_normal((h, w, 1)))
    elif defect_class == "Obstacle":
        colour = np.array([70, 50, 35]) * rng.uniform(0.7, 1.4)
        texture = colour * (1 + 0.4 * _smooth_noise(rng, h, w, 3)[..., None])
    elif defect_class == "Deformation":
        texture = image * 0.45 * (1 + 0.2 * grain)  # the bulge throws a shadow
    else:
        texture = np.full_like(image, 12.0) * (1 + 0.5 * grain)  # the gap is nearly black
    image *= 1 - alpha
    image += alpha * texture


def _overlay_text(rng: np.random.Generator, image: np.ndarray) -> None:
    h, w = image.shape[:2]
    text = f"2024-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}  MH{rng.integers(100, 999)}  {rng.uniform(0, 80):05.1f}m"
    scale = 0.35 * w / 320
    y = int(h * 0.07) if rng.random() < 0.5 else int(h * 0.96)
    colour = (255, 255, 255) if rng.random() < 0.6 else (255, 230, 0)
    cv2.putText(image, text, (int(w * 0.03), y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _finish(rng: np.random.Generator, image: np.ndarray, geo: dict) -> np.ndarray:
    vignette = 1.0 - 0.35 * (geo["radius"] / geo["radius"].max()) ** 2
    image = image * vignette[..., None] * rng.uniform(0.85, 1.15)
    image += rng.normal(0, rng.uniform(2, 7), image.shape)  # sensor noise
    return np.clip(image, 0, 255).astype(np.uint8)


def _detector_boxes(
    rng: np.random.Generator, defect_masks: list[np.ndarray], h: int, w: int, false_box: bool, padded: float = 0.5, padding: float = 0.15
) -> list[tuple[int, int, int, int]]:
    """Boxes as a detector dataset has them: around each defect, some (``padded``) padded by up to
    ``padding`` of their size on each side, some jittered."""
    boxes = []
    for m in defect_masks:
        ys, xs = np.nonzero(m)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        bw, bh = x1 - x0, y1 - y0
        if rng.random() < padded:
            pad_x, pad_y = rng.uniform(0.02, padding) * bw, rng.uniform(0.02, padding) * bh
            x0, x1, y0, y1 = x0 - pad_x, x1 + pad_x, y0 - pad_y, y1 + pad_y
        if rng.random() < 0.3:  # jittered
            sx, sy = rng.uniform(-0.06, 0.06) * bw, rng.uniform(-0.06, 0.06) * bh
            x0, x1, y0, y1 = x0 + sx, x1 + sx, y0 + sy, y1 + sy
        boxes.append(_clip_box(x0, y0, x1, y1, w, h))
    if false_box:
        bw, bh = rng.uniform(0.1, 0.3) * w, rng.uniform(0.1, 0.3) * h
        x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        boxes.append(_clip_box(x0, y0, x0 + bw, y0 + bh, w, h))
    return boxes


def _clip_box(x0: float, y0: float, x1: float, y1: float, w: int, h: int) -> tuple[int, int, int, int]:
    x0, x1 = int(np.clip(round(x0), 0, w - 1)), int(np.clip(round(x1), 1, w))
    y0, y1 = int(np.clip(round(y0), 0, h - 1)), int(np.clip(round(y1), 1, h))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def draw_frame(config: SyntheticConfig, index: int) -> Frame:
    """Draw frame ``index`` of the dataset: a pipe with 1-3 defects of the configured class."""
    rng = np.random.default_rng([config.seed, index])
    h, w = config.height, config.width
    geo = _pipe_geometry(rng, h, w)
    image = _draw_pipe(rng, h, w, geo, config.wall_texture)
    n_defects = int(rng.choice([1, 2, 3], p=[0.65, 0.25, 0.10]))
    defect_masks = []
    truth = np.zeros((h, w), np.uint8)
    for _ in range(n_defects):
        for _attempt in range(10):
            if config.defect_class == "Crack":
                m = _crack_mask(rng, h, w, geo)
            else:
                m = np.zeros((h, w), np.uint8)
                cv2.fillPoly(m, [_defect_outline(rng, config.defect_class, h, w, geo)], 1)
            # Keep defects separate so that each gets its own box.
            if m.sum() > 0.004 * h * w and not (m & (truth > 0)).any():
                break
        else:
            continue
        defect_masks.append(m)
        truth[m > 0] = 255
    if not defect_masks:  # every attempt overlapped: keep at least one defect
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(m, [_random_blob(rng, w / 2, h * 0.75, w * 0.12, h * 0.1)], 1)
        defect_masks, truth = [m], m * 255
    if rng.random() < config.distractor_fraction:
        _paint_distractors(rng, image, cv2.dilate(truth, np.ones((7, 7), np.uint8)), geo)
    if config.stains_in_boxes > 0:
        _paint_stains_in_boxes(rng, image, defect_masks, truth, config.stains_in_boxes, geo)
    for m in defect_masks:
        _paint_defect(rng, image, m, config.defect_class, config.defect_opacity)
    image = _finish(rng, image, geo)
    if rng.random() < config.text_overlay_fraction:
        _overlay_text(rng, image)
    false_box = rng.random() < config.false_box_fraction
    boxes = _detector_boxes(rng, defect_masks, h, w, false_box, config.padded_box_fraction, config.box_padding)
    extra = []
    if rng.random() < config.other_class_box_fraction:
        others = [i for i, name in enumerate(CLASS_NAMES) if name != config.defect_class]
        extra.append((int(rng.choice(others)), _detector_boxes(rng, [], h, w, True)[0]))
    return Frame(name=f"frame_{index:05d}", image=image, truth=truth, boxes=boxes, extra_boxes=extra)


def _near_duplicate(rng: np.random.Generator, source: Frame, name: str) -> Frame:
    """A re-encoded, slightly resized or shifted copy, with truth and boxes moved the same way."""
    h, w = source.truth.shape
    mode = rng.choice(["reencode", "resize", "shift"])
    image, truth, boxes = source.image.copy(), source.truth.copy(), list(source.boxes)
    if mode == "resize":
        f = rng.uniform(0.94, 0.98)
        nh, nw = int(h * f), int(w * f)
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        truth = (cv2.resize(truth, (nw, nh), interpolation=cv2.INTER_NEAREST) > 127).astype(np.uint8) * 255
        boxes = [_clip_box(x0 * f, y0 * f, x1 * f, y1 * f, nw, nh) for x0, y0, x1, y1 in boxes]
    elif mode == "shift":
        sx, sy = int(rng.integers(-4, 5)), int(rng.integers(-4, 5))
        matrix = np.float32([[1, 0, sx], [0, 1, sy]])
        image = cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
        truth = cv2.warpAffine(truth, matrix, (w, h), flags=cv2.INTER_NEAREST)
        boxes = [_clip_box(x0 + sx, y0 + sy, x1 + sx, y1 + sy, w, h) for x0, y0, x1, y1 in boxes]
    else:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 70))])
        image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return Frame(name=name, image=image, truth=truth, boxes=boxes, kind="duplicate", duplicate_of=source.name)


def exposure_copies(config: SyntheticConfig, labelled: list[Frame]) -> list[Frame]:
    """``config.exposure_copies`` more shots of each hand-labelled frame at other exposures (gain 0.55 to 1.6
    and a gamma), the same scene and mask: a camera's bracketing, which near-duplicate detection groups."""
    rng = np.random.default_rng([config.seed, 3 * 10**6])
    copies = []
    for source in labelled:
        for k in range(config.exposure_copies):
            gain, gamma = rng.uniform(0.55, 1.6), rng.uniform(0.8, 1.25)
            image = np.clip(255 * (source.image.astype(np.float32) / 255) ** gamma * gain, 0, 255).astype(np.uint8)
            copies.append(Frame(name=f"{source.name}_exposure{k + 1}", image=image, truth=source.truth.copy(), boxes=list(source.boxes),
                                kind="duplicate", duplicate_of=source.name))  # fmt: skip
    return copies


def _junk(rng: np.random.Generator, source: Frame, name: str) -> Frame:
    """Over-exposed, black or blurred frames, as inspection footage has them."""
    mode = rng.choice(["overexposed", "black", "blurred"])
    image, truth = source.image.astype(np.float32), source.truth.copy()
    if mode == "overexposed":
        image = np.clip(image * 2.5 + 90, 0, 255)
    elif mode == "black":
        image = rng.normal(4, 2, image.shape).clip(0, 255)
        truth[:] = 0  # nothing is visible any more
    else:
        image = cv2.GaussianBlur(image, (0, 0), 6)
    return Frame(name=name, image=image.astype(np.uint8), truth=truth, boxes=list(source.boxes), kind="junk")


def generate_frames(config: SyntheticConfig) -> list[Frame]:
    """All frames of the dataset, near-duplicates and junk frames included."""
    rng = np.random.default_rng([config.seed, 10**6])
    n_dup = int(round(config.num_images * config.duplicate_fraction))
    n_junk = int(round(config.num_images * config.junk_fraction))
    n_unique = config.num_images - n_dup - n_junk
    frames = [draw_frame(config, i) for i in range(n_unique)]
    for j in range(n_dup):
        source = frames[int(rng.integers(0, n_unique))]
        frames.append(_near_duplicate(rng, source, f"frame_{n_unique + j:05d}"))
    for j in range(n_junk):
        source = frames[int(rng.integers(0, n_unique))]
        frames.append(_junk(rng, source, f"frame_{n_unique + n_dup + j:05d}"))
    return frames


def choose_hand_labelled(config: SyntheticConfig, frames: list[Frame]) -> set[str]:
    """Annotators drew polygons on a random subset of the frames that are not junk."""
    rng = np.random.default_rng([config.seed, 2 * 10**6])
    candidates = [f.name for f in frames if f.kind != "junk"]
    chosen = rng.choice(len(candidates), size=min(config.num_hand_labelled, len(candidates)), replace=False)
    return {candidates[i] for i in sorted(chosen)}


def truth_polygons(truth: np.ndarray) -> list[np.ndarray]:
    """Polygons an annotator would draw: simplified outer contours of the true mask."""
    contours, _ = cv2.findContours((truth > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for c in contours:
        if cv2.contourArea(c) < 4:
            continue
        approx = cv2.approxPolyDP(c, 1.0, True).reshape(-1, 2)
        if len(approx) >= 3:
            polygons.append(approx)
    return polygons


def box_mask(boxes: list[tuple[int, int, int, int]], shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = 255
    return mask


def via_rows(filename: str, file_size: int, polygons: list[np.ndarray], class_name: str) -> list[list]:
    """Rows of a VIA CSV export for one image (one row per region, or one empty row)."""
    if not polygons:
        return [[filename, file_size, "{}", 0, 0, "{}", "{}"]]
    rows = []
    for region_id, poly in enumerate(polygons):
        shape = {"name": "polygon", "all_points_x": poly[:, 0].tolist(), "all_points_y": poly[:, 1].tolist()}
        rows.append(
            [filename, file_size, "{}", len(polygons), region_id, json.dumps(shape), json.dumps({"class": class_name})]
        )
    return rows


VIA_HEADER = ["filename", "file_size", "file_attributes", "region_count", "region_id",
              "region_shape_attributes", "region_attributes"]  # fmt: skip


def write_dataset(config: SyntheticConfig, raw_dir: str | Path, truth_dir: str | Path) -> dict:
    """Write the dataset to ``raw_dir`` (raw layout) and true masks to ``truth_dir``.

    Both folders are first written under temporary names beside their targets and renamed into place
    at the end, so an interrupted run never leaves a half-written dataset that looks complete.
    Returns a summary (counts per kind of frame).
    """
    raw_dir, truth_dir = Path(raw_dir), Path(truth_dir)
    for target in (raw_dir, truth_dir):
        if target.exists():
            raise FileExistsError(f"{target} already exists; remove it to generate the dataset again")
        target.parent.mkdir(parents=True, exist_ok=True)
    frames = generate_frames(config)
    labelled = choose_hand_labelled(config, frames)
    copies = exposure_copies(config, [f for f in frames if f.name in labelled])
    frames, labelled = frames + copies, labelled | {f.name for f in copies}
    tmp_raw = Path(tempfile.mkdtemp(prefix=f".{raw_dir.name}.", dir=raw_dir.parent))
    tmp_truth = Path(tempfile.mkdtemp(prefix=f".{truth_dir.name}.", dir=truth_dir.parent))
    try:
        (tmp_raw / "images").mkdir()
        (tmp_raw / ("masks" if config.layout == "via" else "labels")).mkdir()
        if config.layout == "yolo":
            names = "\n".join(f"  {i}: {n}" for i, n in enumerate(YOLO_CLASS_NAMES))
            (tmp_raw / "data.yaml").write_text(f"path: .\ntrain: images\nnames:\n{names}\n")
        rows: list[list] = []
        for frame in frames:
            rows += _write_frame(frame, config, tmp_raw, tmp_truth, frame.name in labelled)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(VIA_HEADER)
        writer.writerows(rows)
        (tmp_raw / "labels.csv").write_text(buffer.getvalue())
        (tmp_raw / "README.txt").write_text(
            f"Synthetic sewer-CCTV dataset written by sewer_segmentation.data.synthetic\n{json.dumps(config.__dict__)}\n"
        )
        os.replace(tmp_truth, truth_dir)
        os.replace(tmp_raw, raw_dir)
    except BaseException:
        shutil.rmtree(tmp_raw, ignore_errors=True)
        shutil.rmtree(tmp_truth, ignore_errors=True)
        raise
    kinds = {k: sum(f.kind == k for f in frames) for k in ("normal", "duplicate", "junk")}
    return {"images": len(frames), "hand_labelled": len(labelled), **kinds}


def _write_frame(frame, config: SyntheticConfig, raw: Path, truth: Path, hand_labelled: bool) -> list[list]:
    """One frame's files: the JPEG, its true mask, its boxes (a box mask or YOLO lines); returns its rows
    of the VIA table (its polygons when it is hand-labelled, else one row without a region)."""
    jpeg = encode_image(frame.image, ".jpg", quality=92)
    (raw / "images" / f"{frame.name}.jpg").write_bytes(jpeg)
    (truth / f"{frame.name}.png").write_bytes(encode_image(frame.truth, ".png"))
    h, w = frame.truth.shape
    if config.layout == "via":
        # Box masks are JPEG-compressed in the seed data: values near, not at, 0 and 255.
        (raw / "masks" / f"{frame.name}.jpg").write_bytes(encode_image(box_mask(frame.boxes, (h, w)), ".jpg", quality=90))
    else:
        class_id = YOLO_CLASS_NAMES.index(config.defect_class)
        lines = [_yolo_line(class_id, b, w, h) for b in frame.boxes] + [_yolo_line(cid, b, w, h) for cid, b in frame.extra_boxes]
        (raw / "labels" / f"{frame.name}.txt").write_text("\n".join(lines) + "\n")
    polygons = truth_polygons(frame.truth) if hand_labelled else []
    return via_rows(f"{frame.name}.jpg", len(jpeg), polygons, config.defect_class)


def _yolo_line(class_id: int, box: tuple[int, int, int, int], w: int, h: int) -> str:
    x0, y0, x1, y1 = box
    return f"{class_id} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw_dir", help="folder to create, e.g. data/01_raw/synthetic")
    parser.add_argument("--truth-dir", help="default: <raw_dir>_ground_truth")
    parser.add_argument("--regime", choices=sorted(REGIMES), help="a preset of the options below (they override it)")
    for name, value in SyntheticConfig().__dict__.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=None, help=f"default: {value}")
    args = vars(parser.parse_args(argv))
    raw_dir, truth_dir, regime = args.pop("raw_dir"), args.pop("truth_dir"), args.pop("regime")
    config = config_for_regime(regime, **{k: v for k, v in args.items() if v is not None})
    summary = write_dataset(config, raw_dir, truth_dir or f"{raw_dir.rstrip('/')}_ground_truth")
    print(json.dumps(summary))  # noqa: T201


if __name__ == "__main__":
    main()


def write_inference_samples(folder: str | Path, count: int = 12, seed: int = 1234) -> int:
    """A sample folder of new frames for the predict pipeline: a mix of JPEG and PNG at several sizes.

    Written under a temporary name and renamed into place. Returns the number of frames written.
    """
    folder = Path(folder)
    if folder.exists():
        raise FileExistsError(f"{folder} already exists")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    sizes = [(320, 240), (640, 480), (400, 300), (352, 288)]
    try:
        for i in range(count):
            width, height = sizes[i % len(sizes)]
            config = SyntheticConfig(width=width, height=height, seed=seed, defect_class=DRAWABLE_CLASSES[-1])
            frame = draw_frame(config, i)
            extension = ".jpg" if i % 2 == 0 else ".png"
            (tmp / f"inspection_{i:03d}{extension}").write_bytes(encode_image(frame.image, extension))
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return count
