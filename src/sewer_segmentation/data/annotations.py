"""Annotation formats: VIA CSV exports (polygons and other shapes) and YOLO detection labels.

Parsing never raises on one bad row: it collects a ``Problem`` that names the file and row, so the
data_engineering pipeline can list every bad input at once and apply its ``on_bad_file`` policy.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath

import cv2
import numpy as np
import yaml

VIA_COLUMNS = ("filename", "region_count", "region_shape_attributes")
VIA_SHAPES = ("polygon", "polyline", "rect", "circle", "ellipse")


@dataclass(frozen=True)
class Problem:
    """One bad input: which file (and row), what is wrong, and whether the file is unusable."""

    file: str
    reason: str
    fatal: bool = True  # False: a warning (e.g. clipped polygon); the file is still used

    def as_dict(self) -> dict:
        return {"file": self.file, "reason": self.reason, "severity": "error" if self.fatal else "warning"}


@dataclass
class Shape:
    """One VIA region: its shape name and the numbers that define it."""

    name: str
    params: dict
    class_name: str | None = None
    source: str = ""  # "labels.csv row 12", for messages


@dataclass
class ViaAnnotations:
    """Parsed VIA export: shapes per image filename, the files listed without regions, problems found."""

    shapes: dict[str, list[Shape]] = field(default_factory=dict)
    unlabelled: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)


def is_escaping_path(filename: str) -> bool:
    """True for names that leave the dataset folder: absolute paths, drive letters or ``..`` parts."""
    posix, windows = PurePosixPath(filename), PureWindowsPath(filename)
    return (
        posix.is_absolute()
        or windows.is_absolute()
        or bool(windows.drive)
        or ".." in posix.parts
        or ".." in windows.parts
    )


#: Coordinates beyond this many pixels are no CCTV frame's: a corrupt export, refused by row.
MAX_COORDINATE = 1e6


def _number(value, key: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a 400-digit integer
        raise ValueError(f"'{key}' is not a number of pixels: {str(value)[:20]!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"'{key}' holds a non-finite number")
    if abs(number) > MAX_COORDINATE:
        raise ValueError(f"'{key}' is {number:.3g}, beyond any frame (at most {MAX_COORDINATE:.0e} pixels)")
    return number


def _number_list(value, key: str) -> list[float]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"'{key}' must be a non-empty list of numbers")
    return [_number(v, key) for v in value]


def _validate_shape(shape: dict) -> Shape:
    name = shape.get("name")
    if name not in VIA_SHAPES:
        raise ValueError(f"unknown region shape {name!r} (expected one of {', '.join(VIA_SHAPES)})")
    if name in ("polygon", "polyline"):
        xs = _number_list(shape.get("all_points_x"), "all_points_x")
        ys = _number_list(shape.get("all_points_y"), "all_points_y")
        if len(xs) != len(ys):
            raise ValueError(f"all_points_x has {len(xs)} points but all_points_y has {len(ys)}")
        if name == "polygon" and len(xs) < 3:
            raise ValueError(f"a polygon needs at least 3 points, got {len(xs)}")
        return Shape(name, {"x": xs, "y": ys})
    keys = {"rect": ("x", "y", "width", "height"), "circle": ("cx", "cy", "r"), "ellipse": ("cx", "cy", "rx", "ry")}[name]
    params = {}
    for key in keys:
        if key not in shape:
            raise ValueError(f"{name} region lacks '{key}'")
        params[key] = _number(shape[key], key)
    for key in ("width", "height", "r", "rx", "ry"):
        if key in params and params[key] <= 0:
            raise ValueError(f"{name} region has '{key}' {params[key]:g}: it must be above 0")
    if name == "ellipse":
        params["theta"] = _number(shape.get("theta", 0.0), "theta")
    return Shape(name, params)


def in_pixels(shape: Shape, height: int, width: int) -> Shape:
    """A ``normalized_polygon`` (a YOLO segmentation line: corners as fractions of the frame) as a pixel
    polygon of a ``width x height`` frame; any other shape as it is."""
    if shape.name != "normalized_polygon":
        return shape
    return Shape("polygon", {"x": [x * width for x in shape.params["x"]], "y": [y * height for y in shape.params["y"]]},
                 shape.class_name, shape.source)  # fmt: skip


def shape_outside(shape: Shape, height: int, width: int) -> bool:
    """True when the shape lies wholly outside a ``width x height`` image (it would draw nothing: a
    label for another image, or a corrupt row)."""
    shape = in_pixels(shape, height, width)
    p = shape.params
    if shape.name == "rle":  # a COCO mask is drawn at its own size: one of another size labels another image
        return list(p["size"]) != [height, width]
    if shape.name in ("polygon", "polyline"):
        x0, x1, y0, y1 = min(p["x"]), max(p["x"]), min(p["y"]), max(p["y"])
    elif shape.name == "rect":
        x0, y0, x1, y1 = p["x"], p["y"], p["x"] + p["width"], p["y"] + p["height"]
    else:
        reach = p["r"] if shape.name == "circle" else max(p["rx"], p["ry"])
        x0, x1, y0, y1 = p["cx"] - reach, p["cx"] + reach, p["cy"] - reach, p["cy"] + reach
    return x1 < 0 or y1 < 0 or x0 > width - 1 or y0 > height - 1


def parse_via_csv(text: str, source: str = "labels.csv", class_attribute: str = "class") -> ViaAnnotations:
    """Parse a VIA CSV export. Rows are numbered as in a spreadsheet (header = row 1)."""
    result = ViaAnnotations()
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in VIA_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        result.problems.append(Problem(source, f"missing column(s) {', '.join(missing)}"))
        return result
    for row_number, row in enumerate(reader, start=2):
        where = f"{source} row {row_number}"
        filename = (row.get("filename") or "").strip()
        if not filename:
            result.problems.append(Problem(where, "empty filename"))
            continue
        if is_escaping_path(filename):
            result.problems.append(Problem(f"{where} ({filename})", "filename escapes the dataset folder; not opened"))
            continue
        try:
            region_count = int(float(row.get("region_count") or 0))
            shape_json = json.loads(row.get("region_shape_attributes") or "{}")
            attributes = json.loads(row.get("region_attributes") or "{}")
            if not isinstance(shape_json, dict) or not isinstance(attributes, dict):
                raise ValueError("region attributes must be JSON objects")
        except (ValueError, TypeError, OverflowError) as exc:  # OverflowError: region_count = inf
            result.problems.append(Problem(f"{where} ({filename})", f"malformed region JSON or region_count: {exc}"))
            continue
        if region_count == 0 or not shape_json:
            result.unlabelled.add(filename)
            continue
        try:
            shape = _validate_shape(shape_json)
        except (ValueError, TypeError) as exc:
            result.problems.append(Problem(f"{where} ({filename})", f"malformed region: {exc}"))
            continue
        class_value = attributes.get(class_attribute)
        shape.class_name = str(class_value) if class_value not in (None, "") else None
        shape.source = where
        result.shapes.setdefault(filename, []).append(shape)
    # An image with both region rows and an empty row is labelled.
    result.unlabelled -= set(result.shapes)
    return result


def rasterize_shapes(
    shapes: list[Shape], height: int, width: int, polyline_thickness: int = 3
) -> tuple[np.ndarray, list[str]]:
    """Draw shapes into a 0/255 mask of the image's size. Returns the mask and clipping warnings.

    Points outside the image are clipped to its border (and reported). Polygons, rectangles, circles and
    ellipses are filled; a polyline is an open path, drawn with ``polyline_thickness`` pixels.
    """
    mask = np.zeros((height, width), np.uint8)
    warnings = []
    for shape in shapes:
        shape = in_pixels(shape, height, width)
        p = shape.params
        if shape.name == "rle":  # a COCO mask (data/layouts/coco.py), decoded by pycocotools
            mask[_decode_rle(p) > 0] = 255
        elif shape.name in ("polygon", "polyline"):
            pts = np.stack([p["x"], p["y"]], axis=1)
            outside = (pts[:, 0] < 0) | (pts[:, 0] > width - 1) | (pts[:, 1] < 0) | (pts[:, 1] > height - 1)
            if outside.any():
                warnings.append(
                    f"{shape.source}: {int(outside.sum())} of {len(pts)} {shape.name} points outside the "
                    f"{width}x{height} image were clipped to its border"
                )
            pts[:, 0] = pts[:, 0].clip(0, width - 1)
            pts[:, 1] = pts[:, 1].clip(0, height - 1)
            pts = np.round(pts).astype(np.int32)
            if shape.name == "polygon":
                cv2.fillPoly(mask, [pts], 255)
            else:
                cv2.polylines(mask, [pts], False, 255, thickness=max(1, int(polyline_thickness)))
        elif shape.name == "rect":
            x0, y0 = p["x"], p["y"]
            x1, y1 = x0 + p["width"], y0 + p["height"]
            if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
                warnings.append(f"{shape.source}: rect extends outside the {width}x{height} image; clipped")
            xa, xb = int(round(max(0, x0))), int(round(min(width, x1)))
            ya, yb = int(round(max(0, y0))), int(round(min(height, y1)))
            mask[ya:yb, xa:xb] = 255
        elif shape.name == "circle":
            cv2.circle(mask, (int(round(p["cx"])), int(round(p["cy"]))), int(round(p["r"])), 255, -1)
        else:  # ellipse; VIA's theta is in radians
            axes = (int(round(p["rx"])), int(round(p["ry"])))
            centre = (int(round(p["cx"])), int(round(p["cy"])))
            cv2.ellipse(mask, centre, axes, math.degrees(p["theta"]), 0, 360, 255, -1)
    return mask, warnings


def _decode_rle(params: dict) -> np.ndarray:
    """A COCO RLE mask (``counts`` compressed as a string, or uncompressed as a list of run lengths)."""
    from pycocotools import mask as coco_mask  # noqa: PLC0415 - only for COCO labels

    height, width = params["size"]
    counts = params["counts"]
    rle = coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width) if isinstance(counts, list) else \
        {"size": [height, width], "counts": counts.encode("ascii")}  # fmt: skip
    return coco_mask.decode(rle)


# --------------------------------------------------------------------------------------------------
# YOLO detection labels
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class YoloBox:
    class_id: int
    cx: float
    cy: float
    w: float
    h: float

    @classmethod
    def from_corners(cls, class_id: int, x0: float, y0: float, x1: float, y1: float, width: float = 1.0, height: float = 1.0) -> YoloBox:
        """The box with corners ``(x0, y0)``, ``(x1, y1)`` in a ``width x height`` frame, normalized (a
        degenerate box, a line's, keeps a tiny size so that it still draws)."""
        return cls(class_id, (x0 + x1) / 2 / width, (y0 + y1) / 2 / height, max(x1 - x0, 1e-6) / width, max(y1 - y0, 1e-6) / height)


def parse_yolo_names(text: str, source: str = "data.yaml") -> dict[int, str]:
    """Class names of a YOLO ``data.yaml``: ``names`` as a list or as an ``{id: name}`` mapping.

    YAML aliases are refused: a few hundred bytes of nested aliases ("billion laughs") expand to more
    than any memory, and no exporter writes them."""
    try:
        if any(isinstance(token, yaml.AliasToken) for token in yaml.scan(text)):
            raise ValueError(f"{source}: YAML aliases (*name) are not accepted in data.yaml; write the class names out")
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML ({exc})") from exc
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, list):
        return {i: str(n) for i, n in enumerate(names)}
    if isinstance(names, dict):
        return {int(k): str(v) for k, v in names.items()}
    raise ValueError(f"{source}: no 'names' list or mapping of class names")


#: Rounding in exporters can put a box edge a hair outside 0..1; more than this is pixel coordinates.
NORMALIZED_TOLERANCE = 0.01


@dataclass(frozen=True)
class YoloPolygon:
    """A YOLO segmentation line: a class id and the polygon's corners, normalized to 0..1."""

    class_id: int
    x: tuple[float, ...]
    y: tuple[float, ...]

    def box(self) -> YoloBox:
        """The polygon's bounding box (its detection box)."""
        return YoloBox.from_corners(self.class_id, min(self.x), min(self.y), max(self.x), max(self.y))


def _yolo_polygon(parts: list[str]) -> YoloPolygon:
    values = [float(v) for v in parts[1:]]
    if not all(math.isfinite(v) for v in values):
        raise ValueError("polygon corners must be finite")
    if max(values) > 1 + NORMALIZED_TOLERANCE or min(values) < -NORMALIZED_TOLERANCE:
        raise ValueError("polygon corners must be normalized to 0..1 (pixel coordinates? export YOLO's normalized format)")
    return YoloPolygon(int(parts[0]), tuple(values[0::2]), tuple(values[1::2]))


def parse_yolo_labels(text: str, source: str) -> tuple[list[YoloBox], list[YoloPolygon], list[Problem]]:
    """Lines ``class cx cy w h`` (a detection box) or ``class x1 y1 x2 y2 x3 y3 ...`` (a segmentation
    polygon of at least 3 corners, Ultralytics' YOLO segmentation format), normalized to 0..1. Bad lines
    become problems naming the line."""
    boxes, polygons, problems = [], [], []
    for line_number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.split()
        try:
            if len(parts) >= 7 and len(parts) % 2 == 1:
                polygons.append(_yolo_polygon(parts))
                continue
            if len(parts) != 5:
                raise ValueError(f"expected 5 values (a box) or a class and 3 or more x y pairs (a polygon), got {len(parts)} values")
            box = YoloBox(int(parts[0]), *(float(v) for v in parts[1:]))
            if not all(math.isfinite(v) for v in (box.cx, box.cy, box.w, box.h)) or box.w <= 0 or box.h <= 0:
                raise ValueError("box size must be positive and finite")
            if max(box.cx, box.cy, box.w, box.h) > 1 + NORMALIZED_TOLERANCE or min(box.cx, box.cy) < -NORMALIZED_TOLERANCE:
                raise ValueError(
                    f"coordinates must be normalized to 0..1, found {' '.join(parts[1:])} "
                    "(pixel coordinates? export the labels in YOLO's normalized format)"
                )
        except ValueError as exc:
            problems.append(Problem(f"{source} line {line_number}", f"malformed YOLO label: {exc}"))
            continue
        boxes.append(box)
    return boxes, polygons, problems


def yolo_box_mask(boxes: list[YoloBox], height: int, width: int) -> np.ndarray:
    """Fill the boxes (normalized centre/size) into a 0/255 mask, clipped to the image."""
    mask = np.zeros((height, width), np.uint8)
    for b in boxes:
        x0 = int(round((b.cx - b.w / 2) * width))
        x1 = int(round((b.cx + b.w / 2) * width))
        y0 = int(round((b.cy - b.h / 2) * height))
        y1 = int(round((b.cy + b.h / 2) * height))
        mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = 255
    return mask


def class_is_kept(name: str | None, keep: list[str] | None, drop: list[str] | None) -> bool:
    """Class filter by name, case-insensitive. ``keep`` (when given) wins; unnamed regions are kept."""
    if name is None:
        return True
    lowered = name.lower()
    if keep:
        return lowered in {k.lower() for k in keep}
    return lowered not in {d.lower() for d in (drop or [])}
