"""Refined masks out to labelling tools, for a person to review and correct.

Three formats that CVAT, Label Studio (through its converter) and X-AnyLabeling import:

- **COCO instance JSON**: one annotation per connected region, its mask as COCO RLE (pycocotools: the
  reference implementation of the format) and the frame's review score as an attribute;
- **CVAT for images 1.1 XML**: one polygon per region (the outer contour: a hole inside a region is not
  drawn), the score as an attribute;
- **Ultralytics YOLO segmentation**: one line per region, ``class x1 y1 x2 y2 ...`` normalized to 0..1, and a
  ``data.yaml`` naming the class.

Frames are ordered by their review score, lowest first: the mean decisiveness ``|2p - 1|`` of the soft
refined mask inside the frame's boxes (1: every pixel 0 or 1; 0: every pixel at 0.5, the refinement could
not tell). Plain functions (no Kedro).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import PurePosixPath

import cv2
import numpy as np
from pycocotools import mask as coco_mask

#: Regions smaller than this (pixels) have no polygon: a polygon needs 3 corners.
MIN_POLYGON_POINTS = 3


def _probabilities(soft: np.ndarray) -> np.ndarray:
    """A soft mask (uint8 0..255, or floats 0..1) as floats 0..1."""
    return soft.astype(np.float32) / (255.0 if soft.dtype == np.uint8 else 1.0)


def binarize(soft: np.ndarray, threshold: float) -> np.ndarray:
    """A soft mask -> booleans, ``True`` at or above ``threshold`` (0..1)."""
    return _probabilities(soft) >= threshold


def review_score(soft: np.ndarray, boxes: np.ndarray) -> float:
    """Mean ``|2p - 1|`` of the soft mask inside the boxes (``boxes``: the frame's box mask): low is
    uncertain. A frame without boxes scores 1 (nothing to decide)."""
    inside = boxes > 0
    if not inside.any():
        return 1.0
    return float(np.abs(2 * _probabilities(soft)[inside] - 1).mean())


def regions(mask: np.ndarray) -> list[np.ndarray]:
    """The connected regions (8-connected) of a boolean mask, each as its own boolean mask, largest first."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    order = sorted(range(1, count), key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    return [labels == i for i in order]


def outer_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """``k x 2`` (x, y) pixel corners of each region's outer contour (regions of fewer than 3 corners left out)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c[:, 0, :] for c in contours if len(c) >= MIN_POLYGON_POINTS]


def rasterize_polygons(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Boolean mask of filled polygons given in pixel corners (the reverse of ``outer_polygons``)."""
    out = np.zeros((height, width), np.uint8)
    if polygons:
        cv2.fillPoly(out, [np.round(p).astype(np.int32).reshape(-1, 1, 2) for p in polygons], 1)
    return out.astype(bool)


def coco_document(frames: list[dict], category: str) -> dict:
    """COCO instance JSON of ``frames`` (each: ``file_name``, ``mask`` booleans, ``score``), in their order."""
    images, annotations = [], []
    for image_id, frame in enumerate(frames, start=1):
        height, width = frame["mask"].shape
        images.append({"id": image_id, "file_name": frame["file_name"], "height": height, "width": width})
        for region in regions(frame["mask"]):
            rle = coco_mask.encode(np.asfortranarray(region.astype(np.uint8)))
            x, y, w, h = (float(v) for v in coco_mask.toBbox(rle))
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
                "area": float(coco_mask.area(rle)), "bbox": [x, y, w, h], "attributes": {"review_score": round(frame["score"], 4)},
            })  # fmt: skip
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": category, "supercategory": "defect"}]}


def coco_masks(document: dict) -> dict[str, np.ndarray]:
    """Per file name, the union of its annotations' masks, decoded by pycocotools (to check a round trip)."""
    names = {image["id"]: image for image in document["images"]}
    out = {image["file_name"]: np.zeros((image["height"], image["width"]), bool) for image in document["images"]}
    for annotation in document["annotations"]:
        segmentation = dict(annotation["segmentation"], counts=annotation["segmentation"]["counts"].encode("ascii"))
        out[names[annotation["image_id"]]["file_name"]] |= coco_mask.decode(segmentation).astype(bool)
    return out


def cvat_xml(frames: list[dict], category: str) -> str:
    """CVAT for images 1.1: one ``<image>`` per frame, one ``<polygon>`` per region's outer contour."""
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(ET.SubElement(ET.SubElement(root, "meta"), "task"), "labels")
    label = ET.SubElement(meta, "label")
    ET.SubElement(label, "name").text = category
    ET.SubElement(label, "type").text = "polygon"
    # declared with the label, as CVAT's own exports declare attributes (datumaro reads it; CVAT's importer wants it in the task)
    declared = ET.SubElement(ET.SubElement(label, "attributes"), "attribute")
    for key, value in (("name", "review_score"), ("mutable", "False"), ("input_type", "text"), ("default_value", ""), ("values", "")):
        ET.SubElement(declared, key).text = value
    # names relative to images/ (the folder a task is made from; datumaro's CVAT layout); ids in name order, as
    # CVAT numbers the frames of a task, so its importer lands each shape on its frame by name or by id
    names = [PurePosixPath(frame["file_name"]).name for frame in frames]
    if len(set(names)) < len(names):
        raise ValueError(f"two frames share a file name in images/: {sorted(n for n in set(names) if names.count(n) > 1)[:5]}")
    frame_number = {name: number for number, name in enumerate(sorted(names))}
    for frame, name in zip(frames, names, strict=True):
        height, width = frame["mask"].shape
        image = ET.SubElement(root, "image", id=str(frame_number[name]), name=name, width=str(width), height=str(height))
        for polygon in outer_polygons(frame["mask"]):
            points = ";".join(f"{x:.2f},{y:.2f}" for x, y in polygon)
            shape = ET.SubElement(image, "polygon", label=category, source="auto", occluded="0", points=points, z_order="0")
            ET.SubElement(shape, "attribute", name="review_score").text = f"{frame['score']:.4f}"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def cvat_polygons(xml_text: str) -> dict[str, tuple[tuple[int, int], list[np.ndarray]]]:
    """Per image name, its (height, width) and its polygons, read back from CVAT XML."""
    out = {}
    for image in ET.fromstring(xml_text).iter("image"):
        polygons = [np.array([[float(v) for v in point.split(",")] for point in p.get("points").split(";")]) for p in image.iter("polygon")]
        out[image.get("name")] = ((int(image.get("height")), int(image.get("width"))), polygons)
    return out


def yolo_segmentation_lines(mask: np.ndarray, class_id: int = 0) -> list[str]:
    """One ``class x1 y1 x2 y2 ...`` line per region's outer contour, corners normalized by the frame's size."""
    height, width = mask.shape
    lines = []
    for polygon in outer_polygons(mask):
        corners = " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in polygon)
        lines.append(f"{class_id} {corners}")
    return lines


def yolo_polygons(text: str, height: int, width: int) -> list[np.ndarray]:
    """Pixel corners of the polygons of a YOLO segmentation label file."""
    polygons = []
    for line in text.splitlines():
        values = [float(v) for v in line.split()[1:]]
        polygons.append(np.array(values).reshape(-1, 2) * [width, height])
    return polygons


def agrees_within_a_pixel(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two masks differ only along their boundaries: every differing pixel lies within one pixel of
    both masks' edges (what a polygon drawn through boundary pixels may gain or lose)."""
    differ = a != b
    if not differ.any():
        return True
    kernel = np.ones((3, 3), np.uint8)

    def near_edge(mask: np.ndarray) -> np.ndarray:
        m = mask.astype(np.uint8)
        return (cv2.dilate(m, kernel) - cv2.erode(m, kernel)) > 0

    return bool((near_edge(a) | near_edge(b))[differ].all())
