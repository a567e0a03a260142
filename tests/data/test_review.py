"""The review export's formats (data/review.py): each read back gives the refined mask again."""

import re
import xml.etree.ElementTree as ET

import cv2
import numpy as np

from sewer_segmentation.data.review import (
    agrees_within_a_pixel,
    binarize,
    coco_document,
    coco_masks,
    cvat_polygons,
    cvat_xml,
    rasterize_polygons,
    review_score,
    yolo_polygons,
    yolo_segmentation_lines,
)


def defects() -> np.ndarray:
    """A deposit (ellipse), a thin diagonal crack and a 2x3 speck."""
    mask = np.zeros((120, 160), np.uint8)
    cv2.ellipse(mask, (50, 70), (30, 18), 20, 0, 360, 1, -1)
    cv2.line(mask, (100, 10), (150, 110), 1, 2)
    mask[5:7, 5:8] = 1
    return mask.astype(bool)


def test_coco_rle_decodes_bit_for_bit_one_annotation_per_region():
    mask = defects()
    document = coco_document([{"file_name": "images/a.png", "mask": mask, "score": 0.25}], "defect")
    assert np.array_equal(coco_masks(document)["images/a.png"], mask)
    assert len(document["annotations"]) == 3 and document["categories"][0]["name"] == "defect"
    assert sum(a["area"] for a in document["annotations"]) == mask.sum()
    assert all(a["attributes"]["review_score"] == 0.25 for a in document["annotations"])


def test_cvat_and_yolo_polygons_rasterize_back_within_a_pixel():
    mask = defects()
    (size, polygons), = cvat_polygons(cvat_xml([{"file_name": "a.png", "mask": mask, "score": 0.5}], "defect")).values()
    from_cvat = rasterize_polygons(polygons, *size)
    from_yolo = rasterize_polygons(yolo_polygons("\n".join(yolo_segmentation_lines(mask)), *mask.shape), *mask.shape)
    assert agrees_within_a_pixel(from_cvat, mask) and agrees_within_a_pixel(from_yolo, mask)
    # the check itself: a mask shifted by 3 pixels does not pass
    assert not agrees_within_a_pixel(np.roll(mask, 3, axis=1), mask)


def test_cvat_xml_has_the_layout_cvat_reads():
    text = cvat_xml([{"file_name": "images/a b.png", "mask": defects(), "score": 0.125}], "crack")
    root = ET.fromstring(text)
    assert root.tag == "annotations" and root.findtext("version") == "1.1"
    assert [label.findtext("name") for label in root.iter("label")] == ["crack"]
    (image,) = root.iter("image")
    assert image.attrib == {"id": "0", "name": "images/a b.png", "width": "160", "height": "120"}
    for polygon in image.iter("polygon"):
        assert polygon.get("label") == "crack" and re.fullmatch(r"(\d+\.\d\d,\d+\.\d\d;){2,}\d+\.\d\d,\d+\.\d\d", polygon.get("points"))
        assert polygon.find("attribute").attrib == {"name": "review_score"} and polygon.findtext("attribute") == "0.1250"


def test_yolo_lines_are_normalized_polygons_of_the_class():
    lines = yolo_segmentation_lines(defects(), class_id=0)
    assert len(lines) == 3
    for line in lines:
        values = [float(v) for v in line.split()[1:]]
        assert line.startswith("0 ") and len(values) % 2 == 0 and len(values) >= 6 and all(0 <= v <= 1 for v in values)


def test_the_review_score_is_low_where_the_refinement_could_not_tell():
    boxes = np.zeros((40, 40), np.uint8)
    boxes[10:30, 10:30] = 255
    decided = np.where(boxes > 0, 255, 0).astype(np.uint8)
    unsure = np.where(boxes > 0, 128, 0).astype(np.uint8)
    assert review_score(decided, boxes) == 1.0 and review_score(unsure, boxes) < 0.01
    assert review_score(unsure, np.zeros_like(boxes)) == 1.0  # no box: nothing to decide
    assert binarize(unsure, 0.5).sum() == 400 and binarize(unsure, 0.6).sum() == 0
