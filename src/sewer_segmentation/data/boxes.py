"""Per-box lists: the detection boxes of every frame, kept apart (box supervision needs each box).

A filled box mask merges overlapping boxes, and the box losses need every box on its own (the
projection term is computed per box). ``data_engineering`` therefore writes one table,
``box_lists.csv``: one row per box, ``image_id, x0, y0, x1, y1, class`` in pixels of the full frame,
end-exclusive. Sources:

- YOLO labels: the detector's own boxes (normalized centre/size turned into pixels, clipped);
- box masks: the bounding box of each connected component of the mask (8-connected).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from sewer_segmentation.errors import BadInputError

if TYPE_CHECKING:
    import pandas as pd

BOX_COLUMNS = ["image_id", "x0", "y0", "x1", "y1", "class"]


@dataclass(frozen=True)
class FrameBoxes:
    """The boxes of one frame (``K x 4`` int, x0 y0 x1 y1, end-exclusive) and the frame's size."""

    boxes: np.ndarray
    height: int
    width: int


def boxes_from_mask(mask: np.ndarray) -> np.ndarray:
    """Bounding boxes of the connected components of a 0/255 box mask, ``K x 4`` (x0, y0, x1, y1)."""
    count, _, stats, _ = cv2.connectedComponentsWithStats((np.asarray(mask) >= 128).astype(np.uint8), connectivity=8)
    x, y, w, h = (stats[1:, i] for i in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
    return np.stack([x, y, x + w, y + h], axis=1).astype(np.int64).reshape(count - 1, 4)


def clipped_boxes(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The ``K x 4`` boxes (x0, y0, x1, y1, end-exclusive) clipped to a ``shape`` (height, width) frame, so
    that slicing with them never wraps around (a negative coordinate would count from the far edge); a box
    wholly outside becomes empty."""
    height, width = shape
    return np.clip(np.asarray(boxes, np.int64).reshape(-1, 4), 0, [width, height, width, height])


def inside_boxes(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``shape`` (height, width) mask of the pixels inside at least one of the boxes (clipped to
    the frame)."""
    inside = np.zeros(shape, bool)
    for x0, y0, x1, y1 in clipped_boxes(boxes, shape):
        inside[y0:y1, x0:x1] = True
    return inside


def yolo_pixel_boxes(boxes, height: int, width: int) -> np.ndarray:
    """YOLO boxes (normalized centre/size) as pixel boxes ``K x 4``, rounded as the box mask is drawn and
    clipped to the frame; boxes left empty by the clipping are dropped."""
    rows = []
    for b in boxes:
        x0, x1 = round((b.cx - b.w / 2) * width), round((b.cx + b.w / 2) * width)
        y0, y1 = round((b.cy - b.h / 2) * height), round((b.cy + b.h / 2) * height)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
        if x1 > x0 and y1 > y0:
            rows.append((x0, y0, x1, y1))
    return np.asarray(rows, np.int64).reshape(-1, 4)


def box_table(rows: list[tuple[str, np.ndarray, list[str]]]) -> pd.DataFrame:
    """(image id, boxes K x 4, class per box) per frame -> the ``box_lists`` table, sorted by image id."""
    import pandas as pd  # noqa: PLC0415 - half a second to import; prediction never needs it

    records = [(image_id, *map(int, box), name) for image_id, boxes, names in rows for box, name in zip(boxes, names, strict=True)]
    table = pd.DataFrame(records, columns=BOX_COLUMNS)
    return table.sort_values(["image_id", "y0", "x0"], kind="stable").reset_index(drop=True)


def frame_boxes(table: pd.DataFrame, manifest: pd.DataFrame, image_ids) -> dict[str, FrameBoxes]:
    """The boxes of ``image_ids`` (frames without a row have none), with their frame size from the split
    manifest. A box outside its frame means the table and the manifest come from different runs."""
    sizes = manifest.set_index(manifest.image_id.astype(str))[["height", "width"]]
    table = table.assign(image_id=table.image_id.astype(str))
    grouped = {image_id: rows for image_id, rows in table.groupby("image_id", sort=False)}
    out = {}
    for image_id in image_ids:
        if image_id not in sizes.index:
            raise BadInputError(f"box_lists: {image_id} is not in the split manifest; run `kedro run --pipeline=data_engineering` again")
        height, width = (int(v) for v in sizes.loc[image_id])
        rows = grouped.get(image_id)
        boxes = np.zeros((0, 4), np.int64) if rows is None else rows[["x0", "y0", "x1", "y1"]].to_numpy(np.int64)
        if len(boxes) and ((boxes[:, :2] < 0).any() or (boxes[:, 2] > width).any() or (boxes[:, 3] > height).any()
                           or (boxes[:, 2] <= boxes[:, 0]).any() or (boxes[:, 3] <= boxes[:, 1]).any()):  # fmt: skip
            raise BadInputError(f"box_lists: a box of {image_id} lies outside its {width}x{height} frame or is empty; "
                                "run `kedro run --pipeline=data_engineering` again")  # fmt: skip
        out[image_id] = FrameBoxes(boxes, height, width)
    return out
