"""``cvat``: images/ and ``annotations.xml`` in CVAT for images 1.1 (CVAT's own export, and what
``kedro run --pipeline=export_review`` writes). Per ``<image name width height>``: a ``<polygon>`` or
``<polyline>`` (``points="x,y;x,y;..."``, pixels) is a hand label of its frame, and its bounding box one of
its boxes; a ``<box xtl ytl xbr ybr>`` is a detection box. A frame with boxes only is box-only (the weak
pool); box masks are drawn from every box. Names may carry the ``images/`` folder.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - expat >= 2.4.1 refuses entity expansion attacks

from sewer_segmentation.data.annotations import Problem, Shape, YoloBox
from sewer_segmentation.data.layouts import via
from sewer_segmentation.data.layouts.base import Annotations, ClassTally, LabelFiles, Layout, label_key, problems_as_dicts
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.imaging import image_id_of

FILE = "annotations.xml"


def _root(files: LabelFiles) -> ET.Element:
    try:
        root = ET.fromstring(files.text(FILE) or "")  # noqa: S314 - see the import
    except ET.ParseError as exc:
        raise BadInputError(f"{FILE}: not XML ({exc})") from None
    if root.tag != "annotations":
        raise BadInputError(f"{FILE}: not a CVAT for images export (its root is <{root.tag}>, not <annotations>)")
    return root


def _points(text: str | None) -> tuple[list[float], list[float]]:
    pairs = [point.split(",") for point in (text or "").split(";") if point.strip()]
    if len(pairs) < 2 or any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"points {text!r} are not x,y;x,y;...")
    return [float(x) for x, _ in pairs], [float(y) for _, y in pairs]


def _read_image(image: ET.Element, class_ids: dict[str, int], tally: ClassTally, into: Annotations) -> list[Problem]:
    """The shapes and boxes of one ``<image>`` into ``into``; the problems of its elements."""
    name = str(image.get("name", "")).removeprefix("images/")
    where = f"{FILE} image {name!r}"
    try:
        width, height = float(image.get("width", "")), float(image.get("height", ""))
    except ValueError:
        return [Problem(where, "no width and height: not a CVAT for images export")]
    into.listed.append(label_key(name))
    boxes = into.boxes.setdefault(image_id_of(name), [])
    problems = []
    for element in image:
        label = element.get("label")
        if element.tag not in ("polygon", "polyline", "box") or not tally.admits(label):
            continue
        class_id = class_ids.setdefault(label or "unnamed", len(class_ids))
        try:
            if element.tag == "box":
                x0, y0, x1, y1 = (float(element.get(key, "")) for key in ("xtl", "ytl", "xbr", "ybr"))
            else:
                xs, ys = _points(element.get("points"))
                into.polygons.setdefault(label_key(name), []).append(Shape(element.tag, {"x": xs, "y": ys}, label, where))
                x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
        except ValueError as exc:
            problems.append(Problem(where, f"a <{element.tag}> of {label!r} is malformed: {exc}"))
            continue
        boxes.append(YoloBox.from_corners(class_id, x0, y0, x1, y1, width, height))
    return problems


def read(files: LabelFiles, params) -> Annotations:
    root = _root(files)
    annotations, problems = Annotations(), []
    tally = ClassTally(params.classes.keep, params.classes.drop)
    class_ids = {str(label.findtext("name")): index for index, label in enumerate(root.iter("label"))}
    for image in root.iter("image"):
        problems += _read_image(image, class_ids, tally, annotations)
    annotations.box_class_names = {index: name for name, index in class_ids.items()}
    annotations.listed = sorted(set(annotations.listed))
    annotations.problems += problems_as_dicts(problems)
    return via.finish(annotations, tally)


LAYOUT = Layout(files=f"images/, {FILE} (CVAT for images 1.1: polygons are hand labels, boxes are boxes)",
                present=lambda files: files.text(FILE) is not None, read=read)  # fmt: skip
