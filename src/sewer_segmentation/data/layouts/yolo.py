"""``yolo``: a YOLO dataset: images/, ``labels/<stem>.txt`` and ``data.yaml`` naming the classes. A line
``class cx cy w h`` (normalized) is a detection box; a line ``class x1 y1 x2 y2 x3 y3 ...`` is a
segmentation polygon (Ultralytics' YOLO segmentation format, what ``export_review`` writes): a hand label
of its frame, whose bounding box is also its box. Box masks are drawn from the boxes (or read from masks/
when present). Hand-drawn polygons may also come in a VIA ``labels.csv``."""

from __future__ import annotations

from sewer_segmentation.data.annotations import Problem, Shape, YoloPolygon, parse_yolo_labels, parse_yolo_names
from sewer_segmentation.data.layouts import via
from sewer_segmentation.data.layouts.base import Annotations, ClassTally, LabelFiles, Layout, problems_as_dicts
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.imaging import image_id_of


def read(files: LabelFiles, params) -> Annotations:
    annotations = Annotations()
    tally = ClassTally(params.classes.keep, params.classes.drop)
    via.read_polygons(files, params, tally, annotations)
    labels = files.folder("labels")
    if not labels:
        return via.finish(annotations, tally)
    names_text = files.text("data.yaml")
    if names_text is None:
        raise BadInputError("labels/ holds YOLO labels but data.yaml (class names) is missing")
    try:
        annotations.box_class_names = parse_yolo_names(names_text)
    except ValueError as exc:
        raise BadInputError(str(exc)) from exc
    problems: list[Problem] = []
    for pid, load in sorted(labels.items()):
        if not pid.lower().endswith(".txt"):  # labels.TXT too: cameras and Windows tools write upper case
            continue
        parsed, polygons, label_problems = parse_yolo_labels(load(), f"labels/{pid}")
        problems += label_problems
        kept, shapes = [], []
        for item in (*parsed, *polygons):
            name = annotations.box_class_names.get(item.class_id)
            if name is None:
                problems.append(Problem(f"labels/{pid}", f"class id {item.class_id} is not in data.yaml"))
            elif not tally.admits(name):
                continue  # a frame left with no kept box is left out like any box-less frame
            elif isinstance(item, YoloPolygon):  # a hand-drawn outline: a label of its frame, and its box
                shapes.append(Shape("normalized_polygon", {"x": list(item.x), "y": list(item.y)}, name, f"labels/{pid}"))
                kept.append(item.box())
            else:
                kept.append(item)
        image_id = image_id_of(pid[: -len(".txt")] + ".jpg")
        if image_id in annotations.boxes:
            problems.append(Problem(f"labels/{pid}", f"a second label file for {image_id} (the name differs only in case); remove one"))
            continue
        annotations.boxes[image_id] = kept
        if shapes:
            annotations.polygons_by_id[image_id] = shapes
    annotations.problems += problems_as_dicts(problems)
    return via.finish(annotations, tally)


LAYOUT = Layout(
    files="images/, labels/*.txt (boxes, or YOLO segmentation polygons), data.yaml (+ labels.csv polygons)",
    present=lambda files: bool(files.folder("labels")) or files.text("data.yaml") is not None,
    read=read,
)
