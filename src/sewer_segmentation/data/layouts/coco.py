"""``coco``: images/ and a COCO instance file ``coco.json`` (what CVAT, Label Studio, X-AnyLabeling and
``kedro run --pipeline=export_review`` write). An annotation with a ``segmentation`` (polygons, or an RLE
mask, compressed or not) is a hand-drawn label of its frame; an annotation with only a ``bbox`` is a
detection box. A frame whose annotations are all boxes is box-only (the weak pool); box masks are drawn
from every annotation's box. File names may carry the ``images/`` folder (as the review export writes them).
"""

from __future__ import annotations

import json

from sewer_segmentation.data.annotations import Problem, Shape, YoloBox
from sewer_segmentation.data.layouts import via
from sewer_segmentation.data.layouts.base import Annotations, ClassTally, LabelFiles, Layout, label_key, problems_as_dicts
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.imaging import image_id_of

FILE = "coco.json"


def _document(files: LabelFiles) -> dict:
    try:
        document = json.loads(files.text(FILE) or "")
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{FILE}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise BadInputError(f"{FILE}: not a COCO instance file (no 'images' list)")
    return document


def _shapes(annotation: dict, name: str | None) -> list[Shape]:
    """The hand-drawn shapes of one annotation: each polygon of a polygon list, or its RLE mask."""
    source = f"{FILE} annotation {annotation.get('id')}"
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        return [Shape("rle", {"size": list(segmentation["size"]), "counts": segmentation["counts"]}, name, source)]
    shapes = []
    for polygon in segmentation or []:
        if isinstance(polygon, list) and len(polygon) >= 6:
            shapes.append(Shape("polygon", {"x": [float(v) for v in polygon[0::2]], "y": [float(v) for v in polygon[1::2]]}, name, source))
    return shapes


def _box(annotation: dict, image: dict) -> YoloBox | None:
    bbox = annotation.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4):
        return None
    x, y, w, h = (float(v) for v in bbox)
    width, height = float(image["width"]), float(image["height"])
    return YoloBox(int(annotation.get("category_id", 0)), (x + w / 2) / width, (y + h / 2) / height, w / width, h / height)


def read(files: LabelFiles, params) -> Annotations:
    document = _document(files)
    annotations, problems = Annotations(), []
    tally = ClassTally(params.classes.keep, params.classes.drop)
    annotations.box_class_names = {int(c["id"]): str(c["name"]) for c in document.get("categories", [])}
    images = {image["id"]: dict(image, file_name=str(image["file_name"]).removeprefix("images/")) for image in document["images"]}
    annotations.listed = sorted({label_key(image["file_name"]) for image in images.values()})
    for image in images.values():
        annotations.boxes.setdefault(image_id_of(image["file_name"]), [])
    for annotation in document.get("annotations", []):
        image = images.get(annotation.get("image_id"))
        if image is None:
            problems.append(Problem(FILE, f"annotation {annotation.get('id')} names image id {annotation.get('image_id')}, which is not in 'images'"))
            continue
        name = annotations.box_class_names.get(int(annotation.get("category_id", 0)))
        shapes = _shapes(annotation, name)
        if not tally.admits(name):
            if shapes:
                annotations.only_dropped_classes.setdefault(label_key(image["file_name"]), []).append(name or "unnamed")
            continue
        if shapes:
            annotations.polygons.setdefault(label_key(image["file_name"]), []).extend(shapes)
        box = _box(annotation, image)
        if box is not None:
            annotations.boxes[image_id_of(image["file_name"])].append(box)
    annotations.problems += problems_as_dicts(problems)
    annotations.only_dropped_classes = {k: sorted(set(v)) for k, v in annotations.only_dropped_classes.items()}
    return via.finish(annotations, tally)


LAYOUT = Layout(files=f"images/, {FILE} (COCO instances: segmentations are hand labels, bboxes are boxes)",
                present=lambda files: files.text(FILE) is not None, read=read)  # fmt: skip
