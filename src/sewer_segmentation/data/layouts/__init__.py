"""The raw layouts by name (``data_engineering.layout``; ``auto``: the first whose label files are there).

Adding a layout (COCO, CVAT XML, ...) is one new file in this folder (its reader and a ``LAYOUT``, see
``base.Layout``) and one line in ``LAYOUTS``.
"""

from __future__ import annotations

from sewer_segmentation.data.layouts import coco, cvat, via, yolo
from sewer_segmentation.data.layouts.base import Annotations, LabelFiles, Layout, label_key

#: Every raw layout, in the order ``auto`` tries them; ``via`` (masks/ and an optional labels.csv) when none is there.
LAYOUTS: dict[str, Layout] = {
    "coco": coco.LAYOUT,
    "cvat": cvat.LAYOUT,
    "yolo": yolo.LAYOUT,
    "via": via.LAYOUT,
}
FALLBACK = "via"


def choose_layout(files: LabelFiles, name: str = "auto") -> tuple[str, Layout]:
    """The layout ``name`` names, or for ``auto`` the first whose label files are present."""
    if name != "auto":
        return name, LAYOUTS[name]
    found = next((key for key, layout in LAYOUTS.items() if layout.present(files)), FALLBACK)
    return found, LAYOUTS[found]


__all__ = ["LAYOUTS", "Annotations", "LabelFiles", "Layout", "choose_layout", "label_key"]
