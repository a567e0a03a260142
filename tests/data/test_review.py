"""The review export's formats (data/review.py): each read back gives the refined mask again."""

import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
import xmlschema

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


CVAT_SCHEMA = Path(__file__).parent / "schemas" / "cvat_for_images_1_1.xsd"


def test_cvat_xml_is_valid_against_the_cvat_for_images_schema_kept_here():
    schema = xmlschema.XMLSchema(CVAT_SCHEMA)
    frames = [{"file_name": "images/a b.png", "mask": defects(), "score": 0.125}, {"file_name": "empty.png", "mask": np.zeros((8, 9), bool), "score": 1.0}]
    text = cvat_xml(frames, "crack")
    schema.validate(text)  # raises, naming the element, if CVAT's importer would not read it
    root = ET.fromstring(text)
    assert [label.findtext("name") for label in root.iter("label")] == ["crack"]
    assert [a.findtext("name") for a in root.find("meta/task/labels/label/attributes")] == ["review_score"]  # shown in CVAT
    (first, empty) = root.iter("image")
    assert first.attrib == {"id": "0", "name": "a b.png", "width": "160", "height": "120"} and not list(empty)  # relative to images/
    assert empty.get("id") == "1"
    reordered = ET.fromstring(cvat_xml(frames[::-1], "crack"))  # review order, not name order: ids stay CVAT's frame numbers
    assert [(i.get("name"), i.get("id")) for i in reordered.iter("image")] == [("empty.png", "1"), ("a b.png", "0")]
    assert {p.find("attribute").text for p in first.iter("polygon")} == {"0.1250"} and len(list(first.iter("polygon"))) == 3
    # the schema is a check: what CVAT's importer would trip on is refused
    for broken in (text.replace('occluded="0" ', "", 1), text.replace('points="', 'points="1,', 1), text.replace('width="160"', 'width="0"'),
                   text.replace("<type>polygon</type>", "<type>poly</type>"), text.replace("<version>1.1</version>", "<version>2.0</version>")):  # fmt: skip
        assert not schema.is_valid(broken)
    with pytest.raises(ValueError, match="share a file name"):  # two frames on one CVAT frame name would merge silently
        cvat_xml([frames[0], {**frames[1], "file_name": "other/a b.png"}], "crack")


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


class _Files:
    """Label files in memory (``data.layouts.base.LabelFiles``)."""

    def __init__(self, texts: dict[str, str]):
        self.texts = texts

    def text(self, name):
        return self.texts.get(name)

    def folder(self, name):
        return {}


def _read_coco(document: dict, keep=(), drop=()):
    import json  # noqa: PLC0415

    from sewer_segmentation.data.config import DataEngineeringParams  # noqa: PLC0415
    from sewer_segmentation.data.layouts import choose_layout  # noqa: PLC0415

    files = _Files({"coco.json": json.dumps(document)})
    name, layout = choose_layout(files)
    assert name == "coco"
    return layout.read(files, DataEngineeringParams(classes={"keep": list(keep), "drop": list(drop)}))


def test_the_review_export_reads_back_through_the_coco_layout_bit_for_bit():
    from sewer_segmentation.data.annotations import rasterize_shapes  # noqa: PLC0415

    mask = defects()
    annotations = _read_coco(coco_document([{"file_name": "images/f1.png", "mask": mask, "score": 0.4}], "defect"))
    (key, shapes), = annotations.polygons.items()
    assert key == "f1.png" and {s.name for s in shapes} == {"rle"} and annotations.listed == ["f1.png"]
    assert np.array_equal(rasterize_shapes(shapes, *mask.shape)[0] > 0, mask)
    assert len(annotations.boxes["f1"]) == 3  # every region's box: the box masks of a re-imported frame


def test_coco_polygons_boxes_and_the_class_filter():
    document = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50}, {"id": 2, "file_name": "b.jpg", "width": 100, "height": 50}],
        "categories": [{"id": 1, "name": "Crack"}, {"id": 2, "name": "Rupture"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 10], "segmentation": [[10, 10, 30, 10, 30, 20, 10, 20]]},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [50, 0, 50, 50]},  # a box only: b.jpg is box-only
            {"id": 3, "image_id": 2, "category_id": 2, "bbox": [0, 0, 10, 10], "segmentation": [[0, 0, 9, 0, 9, 9]]},  # dropped class
            {"id": 4, "image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1]},  # no such image
        ],
    }  # fmt: skip
    read = _read_coco(document, drop=["Rupture"])
    assert list(read.polygons) == ["a.jpg"] and read.polygons["a.jpg"][0].params["x"] == [10.0, 30.0, 30.0, 10.0]
    (box,) = read.boxes["b"]
    assert (box.cx, box.cy, box.w, box.h) == (0.75, 0.5, 0.5, 1.0) and read.only_dropped_classes == {"b.jpg": ["Rupture"]}
    assert read.kept_classes == {"Crack": 2} and read.dropped_classes == {"Rupture": 1}
    assert [p["reason"] for p in read.problems] == ["annotation 4 names image id 7, which is not in 'images'"]


def test_a_coco_file_that_is_not_json_is_one_line_naming_it():
    import pytest  # noqa: PLC0415

    from sewer_segmentation.data.config import DataEngineeringParams  # noqa: PLC0415
    from sewer_segmentation.data.layouts import LAYOUTS  # noqa: PLC0415
    from sewer_segmentation.errors import BadInputError  # noqa: PLC0415

    with pytest.raises(BadInputError, match=r"^coco.json: not JSON \(Expecting value at line 1, column 1\)$"):
        LAYOUTS["coco"].read(_Files({"coco.json": "<xml/>"}), DataEngineeringParams())


class _FilesWithLabels(_Files):
    def __init__(self, texts: dict[str, str], labels: dict[str, str]):
        super().__init__(texts)
        self.labels = labels

    def folder(self, name):
        return {k: (lambda v=v: v) for k, v in self.labels.items()} if name == "labels" else {}


def _layout_read(files, expected: str, keep=(), drop=()):
    from sewer_segmentation.data.config import DataEngineeringParams  # noqa: PLC0415
    from sewer_segmentation.data.layouts import choose_layout  # noqa: PLC0415

    name, layout = choose_layout(files)
    assert name == expected
    return layout.read(files, DataEngineeringParams(classes={"keep": list(keep), "drop": list(drop)}))


def test_the_review_export_reads_back_through_the_cvat_and_yolo_layouts_within_a_pixel():
    from sewer_segmentation.data.annotations import rasterize_shapes  # noqa: PLC0415

    mask = defects()
    frames = [{"file_name": "images/f1.png", "mask": mask, "score": 0.4}]
    cvat = _layout_read(_Files({"annotations.xml": cvat_xml(frames, "defect")}), "cvat")
    yolo = _layout_read(_FilesWithLabels({"data.yaml": "names:\n  0: defect\n"}, {"f1.txt": "\n".join(yolo_segmentation_lines(mask))}), "yolo")
    for read in (cvat, yolo):
        shapes = read.shapes_of("f1.png")
        assert len(shapes) == 3 and len(read.boxes["f1"]) == 3  # one polygon per region, and its box
        assert agrees_within_a_pixel(rasterize_shapes(shapes, *mask.shape)[0] > 0, mask)
    assert cvat.listed == ["f1.png"] and cvat.box_class_names == {0: "defect"}


def test_cvat_polygons_boxes_class_filter_and_malformed_shapes():
    xml = """<?xml version="1.0"?><annotations><version>1.1</version>
      <meta><task><labels><label><name>Crack</name></label><label><name>Rupture</name></label></labels></task></meta>
      <image id="0" name="a.jpg" width="100" height="50">
        <polygon label="Crack" points="10,10;30,10;30,20;10,20"/><polygon label="Rupture" points="0,0;9,0;9,9"/>
      </image>
      <image id="1" name="b.jpg" width="100" height="50"><box label="Crack" xtl="50" ytl="0" xbr="100" ybr="50"/>
        <polygon label="Crack" points="1,2,3"/></image>
    </annotations>"""
    read = _layout_read(_Files({"annotations.xml": xml}), "cvat", drop=["Rupture"])
    assert list(read.polygons) == ["a.jpg"] and read.polygons["a.jpg"][0].params["x"] == [10.0, 30.0, 30.0, 10.0]
    (box,) = read.boxes["b"]
    assert (box.cx, box.cy, box.w, box.h) == (0.75, 0.5, 0.5, 1.0) and read.box_class_names == {0: "Crack", 1: "Rupture"}
    assert read.kept_classes == {"Crack": 3} and read.dropped_classes == {"Rupture": 1}
    assert [(p["file"], p["reason"]) for p in read.problems] == [
        ("annotations.xml image 'b.jpg'", "a <polygon> of 'Crack' is malformed: points '1,2,3' are not x,y;x,y;...")]


def test_yolo_segmentation_lines_are_hand_labels_and_box_lines_stay_boxes():
    labels = {"a.txt": "0 0.1 0.1 0.3 0.1 0.3 0.3\n", "b.txt": "0 0.5 0.5 0.2 0.2\n", "c.txt": "0 0.1 0.1 250 0.1 0.3 0.3\n"}
    read = _layout_read(_FilesWithLabels({"data.yaml": "names: [Crack]\n"}, labels), "yolo")
    (shape,) = read.shapes_of("a.png")
    assert shape.name == "normalized_polygon" and read.shapes_of("b.png") == [] and len(read.boxes["b"]) == 1
    (box,) = read.boxes["a"]
    assert (round(box.cx, 6), round(box.cy, 6), round(box.w, 6), round(box.h, 6)) == (0.2, 0.2, 0.2, 0.2)
    assert [p["file"] for p in read.problems] == ["labels/c.txt line 1"] and "normalized" in read.problems[0]["reason"]


def test_a_file_that_is_not_cvat_xml_is_one_line_naming_it():
    import pytest  # noqa: PLC0415

    from sewer_segmentation.data.config import DataEngineeringParams  # noqa: PLC0415
    from sewer_segmentation.data.layouts import LAYOUTS  # noqa: PLC0415
    from sewer_segmentation.errors import BadInputError  # noqa: PLC0415

    with pytest.raises(BadInputError, match=r"^annotations.xml: not XML"):
        LAYOUTS["cvat"].read(_Files({"annotations.xml": "{json: 1}"}), DataEngineeringParams())
    with pytest.raises(BadInputError, match=r"its root is <html>"):
        LAYOUTS["cvat"].read(_Files({"annotations.xml": "<html/>"}), DataEngineeringParams())
