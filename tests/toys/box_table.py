"""``box_table``: a toy raw layout, one ``boxes.csv`` row per box (``image,class,x0,y0,x1,y1``, corners
as fractions of the frame), with hand-drawn polygons in an optional VIA ``labels.csv``."""

from __future__ import annotations

import csv
import io

from sewer_segmentation.data.annotations import YoloBox
from sewer_segmentation.data.layouts import via
from sewer_segmentation.data.layouts.base import Annotations, ClassTally, LabelFiles, Layout
from sewer_segmentation.io.imaging import image_id_of


def read(files: LabelFiles, params) -> Annotations:
    annotations = Annotations()
    tally = ClassTally(params.classes.keep, params.classes.drop)
    via.read_polygons(files, params, tally, annotations)
    classes: dict[str, int] = {}
    for row in csv.DictReader(io.StringIO(files.text("boxes.csv") or "")):
        boxes = annotations.boxes.setdefault(image_id_of(row["image"]), [])
        if tally.admits(row["class"]):
            x0, y0, x1, y1 = (float(row[k]) for k in ("x0", "y0", "x1", "y1"))
            class_id = classes.setdefault(row["class"], len(classes))
            boxes.append(YoloBox(class_id, (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0))
    annotations.box_class_names = {i: name for name, i in classes.items()}
    return via.finish(annotations, tally)


LAYOUT = Layout(files="images/, boxes.csv (+ labels.csv polygons)", present=lambda files: files.text("boxes.csv") is not None, read=read)
