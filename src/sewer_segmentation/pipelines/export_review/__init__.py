"""export_review: a round's refined masks out to labelling tools (COCO, CVAT XML, YOLO segmentation)."""

from . import pipeline  # noqa: F401
