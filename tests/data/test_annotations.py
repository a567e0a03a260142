import json

import numpy as np
import pytest

from sewer_segmentation.data.annotations import (
    class_is_kept,
    is_escaping_path,
    parse_via_csv,
    parse_yolo_labels,
    parse_yolo_names,
    rasterize_shapes,
    yolo_box_mask,
)

HEADER = "filename,file_size,file_attributes,region_count,region_id,region_shape_attributes,region_attributes\n"


def via_row(filename, shape, count=1, region_id=0, attributes="{}"):
    shape_text = json.dumps(shape) if isinstance(shape, dict) else shape
    quoted = '"' + shape_text.replace('"', '""') + '"'
    attrs = '"' + attributes.replace('"', '""') + '"'
    return f"{filename},100,{{}},{count},{region_id},{quoted},{attrs}\n"


def test_every_shape_type_is_rasterized_where_it_should_be():
    text = HEADER + "".join(
        [
            via_row("a.jpg", {"name": "polygon", "all_points_x": [2, 8, 8, 2], "all_points_y": [2, 2, 8, 8]}, 5, 0),
            via_row("a.jpg", {"name": "rect", "x": 20, "y": 2, "width": 5, "height": 4}, 5, 1),
            via_row("a.jpg", {"name": "circle", "cx": 40, "cy": 20, "r": 3}, 5, 2),
            via_row("a.jpg", {"name": "ellipse", "cx": 10, "cy": 30, "rx": 6, "ry": 2, "theta": 0}, 5, 3),
            via_row("a.jpg", {"name": "polyline", "all_points_x": [30, 45], "all_points_y": [35, 35]}, 5, 4),
            via_row("b.jpg", {}, 0, 0),
        ]
    )
    parsed = parse_via_csv(text)
    assert parsed.problems == []
    assert parsed.unlabelled == {"b.jpg"}
    shapes = parsed.shapes["a.jpg"]
    assert [s.name for s in shapes] == ["polygon", "rect", "circle", "ellipse", "polyline"]
    mask, warnings = rasterize_shapes(shapes, 40, 50, polyline_thickness=1)
    assert warnings == []
    assert set(np.unique(mask)) == {0, 255}
    assert mask[5, 5] == 255 and mask[1, 1] == 0  # polygon interior / exterior
    assert mask[3, 22] == 255 and mask[3, 25] == 0  # rect covers x 20..24 only
    assert mask[20, 40] == 255 and mask[20, 45] == 0  # circle radius 3
    assert mask[30, 15] == 255 and mask[34, 10] == 0  # ellipse rx 6, ry 2
    assert mask[35, 38] == 255 and mask[36, 38] == 0  # polyline: a 1-px line, not a filled area


def test_malformed_rows_are_reported_with_their_row_number():
    text = HEADER + "".join(
        [
            via_row("ok.jpg", {"name": "polygon", "all_points_x": [1, 5, 5], "all_points_y": [1, 1, 5]}),
            via_row("bad_json.jpg", "{not json"),
            via_row("two_points.jpg", {"name": "polygon", "all_points_x": [1, 2], "all_points_y": [1, 2]}),
            via_row("lengths.jpg", {"name": "polyline", "all_points_x": [1, 2, 3], "all_points_y": [1, 2]}),
            via_row("unknown.jpg", {"name": "star", "x": 1}),
            via_row("rect.jpg", {"name": "rect", "x": 1, "y": 1, "width": 3}),
        ]
    )
    parsed = parse_via_csv(text)
    assert list(parsed.shapes) == ["ok.jpg"]
    by_file = {p.file: p.reason for p in parsed.problems}
    assert "malformed region JSON" in by_file["labels.csv row 3 (bad_json.jpg)"]
    assert "at least 3 points" in by_file["labels.csv row 4 (two_points.jpg)"]
    assert "all_points_y has 2" in by_file["labels.csv row 5 (lengths.jpg)"]
    assert "unknown region shape 'star'" in by_file["labels.csv row 6 (unknown.jpg)"]
    assert "lacks 'height'" in by_file["labels.csv row 7 (rect.jpg)"]


def test_missing_columns_are_one_clear_problem():
    parsed = parse_via_csv("name,size\na.jpg,3\n")
    assert len(parsed.problems) == 1 and "missing column(s) filename" in parsed.problems[0].reason


@pytest.mark.parametrize("name", ["../outside.jpg", "/etc/passwd", "sub/../../x.jpg", "C:\\data\\x.jpg", "..\\x.jpg"])
def test_escaping_file_names_are_rejected(name):
    assert is_escaping_path(name)
    parsed = parse_via_csv(HEADER + via_row(name, {}, 0))
    assert parsed.unlabelled == set() and parsed.shapes == {}
    assert "escapes the dataset folder" in parsed.problems[0].reason


@pytest.mark.parametrize("name", ["a.jpg", "sub/a.jpg", "a..b.jpg"])
def test_ordinary_names_do_not_escape(name):
    assert not is_escaping_path(name)


def test_points_outside_the_image_are_clipped_with_a_warning():
    parsed = parse_via_csv(HEADER + via_row("a.jpg", {"name": "polygon", "all_points_x": [-5, 15, 30], "all_points_y": [0, 0, 25]}))
    mask, warnings = rasterize_shapes(parsed.shapes["a.jpg"], 20, 20)
    assert len(warnings) == 1 and "2 of 3 polygon points" in warnings[0] and "row 2" in warnings[0]
    assert mask[0, 0] == 255 and mask[19, 19] == 255 and mask[19, 0] == 0


def test_yolo_labels_and_names():
    boxes, _, problems = parse_yolo_labels("0 0.5 0.5 0.5 0.25\n\n5 0.1 0.1 0.2 0.2\nbad line\n1 0.5 0.5 -1 0.2\n", "labels/a.txt")
    assert [b.class_id for b in boxes] == [0, 5]
    assert [p.file for p in problems] == ["labels/a.txt line 4", "labels/a.txt line 5"]
    mask = yolo_box_mask(boxes[:1], 40, 80)
    ys, xs = np.nonzero(mask)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (20, 59, 15, 24)
    assert parse_yolo_names("names: [a, b]") == {0: "a", 1: "b"}
    assert parse_yolo_names("names:\n  0: Deformation\n  3: Disconnect\n") == {0: "Deformation", 3: "Disconnect"}
    with pytest.raises(ValueError, match="no 'names'"):
        parse_yolo_names("train: images\n")


def test_class_filter():
    assert class_is_kept("Deposition", keep=[], drop=["Rupture"])
    assert not class_is_kept("rupture", keep=[], drop=["Rupture"])
    assert class_is_kept("Obstacle", keep=["obstacle"], drop=["Obstacle"])  # keep wins
    assert not class_is_kept("Deposition", keep=["Obstacle"], drop=[])
    assert class_is_kept(None, keep=["Obstacle"], drop=[])  # unnamed regions belong to the dataset's class


def test_shapes_that_cannot_be_a_label_are_errors_naming_the_row():
    text = HEADER + "".join(
        [
            via_row("negative.jpg", {"name": "rect", "x": 10, "y": 10, "width": -5, "height": 4}),
            via_row("radius.jpg", {"name": "circle", "cx": 10, "cy": 10, "r": -2}),
            via_row("nan_angle.jpg", '{"name": "ellipse", "cx": 10, "cy": 10, "rx": 4, "ry": 2, "theta": NaN}'),
            via_row("huge.jpg", {"name": "polygon", "all_points_x": [1, 1e20, 5], "all_points_y": [1, 1, 5]}),
            via_row("digits.jpg", '{"name": "circle", "cx": ' + "9" * 400 + ', "cy": 1, "r": 2}'),
            via_row("text.jpg", {"name": "circle", "cx": "left", "cy": 1, "r": 2}),
        ]
    )
    parsed = parse_via_csv(text)
    assert parsed.shapes == {}
    by_file = {p.file: p.reason for p in parsed.problems}
    assert "'width' -5: it must be above 0" in by_file["labels.csv row 2 (negative.jpg)"]
    assert "'r' -2: it must be above 0" in by_file["labels.csv row 3 (radius.jpg)"]
    assert "'theta' holds a non-finite number" in by_file["labels.csv row 4 (nan_angle.jpg)"]
    assert "beyond any frame" in by_file["labels.csv row 5 (huge.jpg)"]
    assert "'cx' is not a number of pixels: '99999" in by_file["labels.csv row 6 (digits.jpg)"]
    assert "'cx' is not a number of pixels: 'left'" in by_file["labels.csv row 7 (text.jpg)"]


def test_a_shape_wholly_outside_the_image_is_found():
    from sewer_segmentation.data.annotations import Shape, shape_outside

    assert shape_outside(Shape("polygon", {"x": [200, 220, 210], "y": [5, 5, 9]}), 100, 150)
    assert shape_outside(Shape("rect", {"x": -30, "y": 5, "width": 20, "height": 5}), 100, 150)
    assert shape_outside(Shape("circle", {"cx": 10, "cy": -20, "r": 5}), 100, 150)
    assert not shape_outside(Shape("polygon", {"x": [140, 220, 210], "y": [5, 5, 9]}), 100, 150)  # partly inside: clipped
    assert not shape_outside(Shape("ellipse", {"cx": 155, "cy": 50, "rx": 10, "ry": 3, "theta": 0}), 100, 150)
