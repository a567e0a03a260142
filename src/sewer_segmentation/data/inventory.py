"""The raw dataset's files, one frame at a time: which files belong to which frame, the problems of the
layout before anything is decoded, each frame's inventory row (decoded once: validated against its
mask and labels, and its near-duplicate signature), and lazy loaders of its image and masks. Plain
functions the data_engineering nodes call (no Kedro)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from kedro.io.core import DatasetError

from sewer_segmentation.data.annotations import Problem, rasterize_shapes, shape_outside, yolo_box_mask
from sewer_segmentation.data.config import DataEngineeringParams
from sewer_segmentation.data.dedupe import frame_signature
from sewer_segmentation.data.layouts import Annotations, label_key
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.imaging import has_image_extension, image_id_of

#: A raw folder as Kedro's partitioned dataset hands it over: ``{relative file name: load function}``.
Partitions = dict[str, Callable[[], Any]]

def by_image_id(partitions: Partitions) -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for pid in partitions:
        if has_image_extension(pid):
            index.setdefault(image_id_of(pid), []).append(pid)
    return index


def box_mask_for(
    image_id: str, shape: tuple[int, int], box_mask_files: dict[str, list[str]], box_masks: Partitions, annotations: dict
) -> np.ndarray | None:
    """The image's box mask: from ``masks/`` when present, else from its YOLO boxes, else None."""
    if image_id in box_mask_files:
        return box_masks[box_mask_files[image_id][0]]()
    if image_id in annotations.boxes:
        return yolo_box_mask(annotations.boxes[image_id], *shape)
    return None


def load_failure(exc: BaseException) -> str:
    """The reason a file failed to load, without the path (the caller names the file)."""
    cause = exc
    while cause.__cause__ is not None and not isinstance(cause, BadInputError):
        cause = cause.__cause__
    if isinstance(cause, BadInputError):
        return str(cause).split(": ", 1)[-1]
    return f"cannot be read ({cause})"


#: ``signature``: what near-duplicates are found by (``data.dedupe.frame_signature``), kept in memory only.
INVENTORY_COLUMNS = ["image_id", "source_file", "mask_source", "has_polygon", "width", "height", "signature"]


#: Every derived file of a frame is named ``<image id>.png`` and first written under a temporary name
#: about 45 bytes longer; most file systems allow 255 bytes per name.
MAX_IMAGE_ID_BYTES = 200


def unusable_image_id(image_id: str) -> str | None:
    """Why a frame's id cannot name its derived files (None when it can): an id that is a path of its own
    (``...jpg`` gives ``..``), hidden, or too long for the file system once a temporary suffix is added."""
    if image_id.split("__")[-1] in ("", ".", "..") or image_id.startswith("."):
        return f"the file name gives the image id {image_id!r}, which cannot name a file (hidden or a path); rename the file"
    size = len(image_id.encode("utf-8"))
    if size > MAX_IMAGE_ID_BYTES:
        return f"the file name is too long ({size} bytes; at most {MAX_IMAGE_ID_BYTES}, as derived files add a temporary suffix); rename the file"
    return None


def layout_problems(raw_images: Partitions, images: dict, box_mask_files: dict, annotations: Annotations) -> tuple[list[Problem], list[Problem], set[str]]:
    """Problems of the dataset's layout, before any image is decoded: the annotation parser's, files that
    are not images, two images with one name, labels.csv rows without a file, masks without an image.
    Also the images a labels.csv row names in another case (left out: their polygons would be lost)."""
    problems = [Problem(p["file"], p["reason"], p["severity"] == "error") for p in annotations.problems]
    filtered = [Problem(f"images/{pid}", "not an image file extension; ignored", False) for pid in sorted(raw_images) if not has_image_extension(pid)]
    for image_id, pids in images.items():
        if len(pids) > 1:
            problems.append(Problem(f"images/{pids[1]}", f"same name as images/{pids[0]} with another extension"))
        reason = unusable_image_id(image_id)
        if reason:
            problems.extend(Problem(f"images/{pid}", reason) for pid in pids)
    keys = {label_key(pid): pid for pid in raw_images}
    folded = {key.casefold(): pid for key, pid in keys.items()}
    unmatched = set()
    for filename in annotations.listed:
        if filename in keys:
            continue
        near = folded.get(filename.casefold())
        if near is not None:
            unmatched.add(near)
            problems.append(Problem(f"images/{near}", f"labels.csv names it {filename!r} (the case differs): left out, not "
                                    "used without its polygons; rename the file or the labels.csv row"))  # fmt: skip
        else:
            problems.append(Problem(f"labels ({filename})", "file named in the labels does not exist in images/"))
    for mask_id, pids in sorted(box_mask_files.items()):
        if mask_id not in images:
            problems.append(Problem(f"masks/{pids[0]}", "mask without an image"))
        elif len(pids) > 1:  # which one is the label? Refuse rather than guess.
            problems.append(Problem(f"masks/{pids[1]}", f"a second mask for {mask_id} (same name as masks/{pids[0]} with another extension); remove one"))
    return problems, filtered, unmatched


def inspect_image(image_id: str, pid: str, raw_images: Partitions, raw_box_masks: Partitions, box_mask_files: dict, annotations: Annotations,
                   params: DataEngineeringParams, problems: list[Problem], filtered: list[Problem]) -> dict | None:  # fmt: skip
    """The inventory row of one image, or None with the reason appended to ``problems`` (bad input) or
    ``filtered`` (left out by a setting)."""
    mask_file = f"masks/{box_mask_files[image_id][0]}" if image_id in box_mask_files else None
    if len(box_mask_files.get(image_id, ())) > 1:
        return None  # two masks for one frame: named by layout_problems, the frame is left out
    try:
        image = raw_images[pid]()
    except (DatasetError, OSError) as exc:
        problems.append(Problem(f"images/{pid}", load_failure(exc)))
        return None
    h, w = image.shape[:2]
    try:
        box_mask = box_mask_for(image_id, (h, w), box_mask_files, raw_box_masks, annotations)
    except (DatasetError, OSError) as exc:
        problems.append(Problem(mask_file or f"images/{pid}", load_failure(exc)))
        return None
    if box_mask is None:
        problems.append(Problem(f"images/{pid}", "no box mask in masks/ and no YOLO label file"))
        return None
    if box_mask.shape != (h, w):
        problems.append(Problem(mask_file, f"mask is {box_mask.shape[1]}x{box_mask.shape[0]} but its image is {w}x{h}"))
        return None
    shapes = annotations.shapes_of(pid)
    dropped = annotations.only_dropped_classes.get(label_key(pid))
    if not shapes and dropped:  # its box mask (drawn for those classes) would teach a dropped class as a defect
        filtered.append(Problem(f"images/{pid}", f"hand-labelled only with dropped classes ({', '.join(dropped)}); left out, not "
                                "used as a box-only frame with the boxes of those classes", False))  # fmt: skip
        return None
    outside = [shape for shape in shapes if shape_outside(shape, h, w)]
    if outside:
        problems += [Problem(f"{s.source} ({pid})", f"{s.name} lies wholly outside the {w}x{h} image") for s in outside]
        return None  # its other polygons are not the whole label either
    if shapes:
        _, warnings = rasterize_shapes(shapes, h, w, params.via.polyline_thickness)
        problems += [Problem(f"labels.csv ({pid})", text, fatal=False) for text in warnings]
    elif params.drop_images_without_boxes and not box_mask.any():
        filtered.append(Problem(f"images/{pid}", "no boxes of the kept classes; left out", False))
        return None
    return {"image_id": image_id, "source_file": pid, "mask_source": mask_file or "boxes", "has_polygon": bool(shapes), "width": w,
            "height": h, "signature": frame_signature(image, params.dedupe.method, params.dedupe.hash_size)}  # fmt: skip


def frame_loaders(rows, raw_images, raw_box_masks, annotations, params):
    """Lazy loaders (image, polygon mask, box mask) per image id, for PartitionedDataset's lazy saving."""
    box_mask_files = by_image_id(raw_box_masks)

    def image(pid):
        return lambda: raw_images[pid]()

    def polygon_mask(pid, h, w):
        return lambda: rasterize_shapes(annotations.shapes_of(pid), h, w, params.via.polyline_thickness)[0]

    def box_mask(image_id, h, w):
        return lambda: box_mask_for(image_id, (h, w), box_mask_files, raw_box_masks, annotations)

    out = {}
    for row in rows.itertuples():
        out[row.image_id] = (
            image(row.source_file),
            polygon_mask(row.source_file, row.height, row.width) if row.has_polygon else None,
            box_mask(row.image_id, row.height, row.width),
        )
    return out
