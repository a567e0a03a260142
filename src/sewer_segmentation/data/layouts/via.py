"""``via``: images/, box masks in masks/ (matched by file stem), hand-drawn regions in a VIA ``labels.csv``
(polygon, rect, circle, ellipse, polyline). Frames with regions are hand-labelled; frames listed with
``region_count = 0``, or not listed at all, are box-only. Without ``labels.csv`` every frame is box-only."""

from __future__ import annotations

from sewer_segmentation.data.annotations import parse_via_csv
from sewer_segmentation.data.layouts.base import Annotations, ClassTally, LabelFiles, Layout, label_key, problems_as_dicts

LABELS = "labels.csv"


def read_polygons(files: LabelFiles, params, tally: ClassTally, into: Annotations) -> None:
    """The regions of ``labels.csv`` (when there is one) through the class filter, into ``into``. Shared
    with layouts whose boxes come from elsewhere (a YOLO dataset with hand-drawn polygons)."""
    text = files.text(LABELS)
    if text is None:
        return
    via = parse_via_csv(text, LABELS, params.via.class_attribute)
    into.problems += problems_as_dicts(via.problems)
    into.listed = sorted({label_key(f) for f in (*via.unlabelled, *via.shapes)})
    for filename, shapes in via.shapes.items():
        kept = [s for s in shapes if tally.admits(s.class_name)]
        into.polygons.setdefault(label_key(filename), []).extend(kept)
        if not kept:  # hand-labelled, but only with classes the filter drops
            into.only_dropped_classes[label_key(filename)] = sorted({s.class_name or "unnamed" for s in shapes})


def read(files: LabelFiles, params) -> Annotations:
    annotations = Annotations()
    tally = ClassTally(params.classes.keep, params.classes.drop)
    read_polygons(files, params, tally, annotations)
    return finish(annotations, tally)


def finish(annotations: Annotations, tally: ClassTally) -> Annotations:
    """The class counts, and frames labelled only with dropped classes that no kept shape labels."""
    annotations.kept_classes, annotations.dropped_classes = dict(tally.kept), dict(tally.dropped)
    annotations.only_dropped_classes = {k: v for k, v in annotations.only_dropped_classes.items() if not annotations.polygons.get(k)}
    return annotations


LAYOUT = Layout(files="images/, masks/, labels.csv", present=lambda files: files.text(LABELS) is not None, read=read)
