"""Nodes of the data_engineering pipeline: raw folders -> validated, de-duplicated, split datasets.

Raw folders arrive as partition dicts ``{relative file name: load function}``: nothing is decoded until
a node asks for it, and each raw image is decoded once for validation and hashing.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from kedro.io.core import DatasetError

from sewer_segmentation.data.annotations import Problem, rasterize_shapes, shape_outside, yolo_box_mask
from sewer_segmentation.data.boxes import box_table, boxes_from_mask, yolo_pixel_boxes
from sewer_segmentation.data.dedupe import cluster_signatures, frame_signature
from sewer_segmentation.data.layouts import Annotations, LabelFiles, choose_layout, label_key
from sewer_segmentation.data.splits import SPLITS, WEAK, WEAK_HOLDOUT, check_splits_agree, holdout_clusters, split_changes, split_clusters
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.imaging import has_image_extension, image_id_of, mask_iou
from sewer_segmentation.params import DataEngineeringParams
from sewer_segmentation.progress import progress_bar
from sewer_segmentation.reporting.plots import duplicate_cluster_gallery, sample_gallery
from sewer_segmentation.reporting.reports import data_report_markdown

logger = logging.getLogger(__name__)

Partitions = dict[str, Callable[[], Any]]
EXCLUDED_COLUMNS = ["file", "reason", "severity"]
#: One distinct hand-labelled image (duplicate cluster) per split is the least that can run at all.
MIN_LABELLED_CLUSTERS = 3
FEW_LABELLED = 30


def _by_image_id(partitions: Partitions) -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for pid in partitions:
        if has_image_extension(pid):
            index.setdefault(image_id_of(pid), []).append(pid)
    return index


# --------------------------------------------------------------------------------------------------
# 1. annotations
# --------------------------------------------------------------------------------------------------


def parse_annotations(label_files: LabelFiles, params: DataEngineeringParams) -> Annotations:
    """Read the raw dataset's label files with its layout (``data_engineering.layout``, or the one whose
    files are there), through the class filter: hand-drawn shapes per image file, detection boxes per
    image, the class counts, and every problem found (``data/layouts``)."""
    name, layout = choose_layout(label_files, params.layout)
    logger.info("Raw layout: %s (%s)", name, layout.files)
    return layout.read(label_files, params)


# --------------------------------------------------------------------------------------------------
# 2. inspection of every raw file
# --------------------------------------------------------------------------------------------------


def _box_mask_for(
    image_id: str, shape: tuple[int, int], box_mask_files: dict[str, list[str]], box_masks: Partitions, annotations: dict
) -> np.ndarray | None:
    """The image's box mask: from ``masks/`` when present, else from its YOLO boxes, else None."""
    if image_id in box_mask_files:
        return box_masks[box_mask_files[image_id][0]]()
    if image_id in annotations.boxes:
        return yolo_box_mask(annotations.boxes[image_id], *shape)
    return None


def _load_failure(exc: BaseException) -> str:
    """The reason a file failed to load, without the path (the caller names the file)."""
    cause = exc
    while cause.__cause__ is not None and not isinstance(cause, BadInputError):
        cause = cause.__cause__
    if isinstance(cause, BadInputError):
        return str(cause).split(": ", 1)[-1]
    return f"cannot be read ({cause})"


#: ``signature``: what near-duplicates are found by (``data.dedupe.frame_signature``), kept in memory only.
INVENTORY_COLUMNS = ["image_id", "source_file", "mask_source", "has_polygon", "width", "height", "signature"]


def inspect_raw_files(raw_images: Partitions, raw_box_masks: Partitions, annotations: Annotations, params: DataEngineeringParams):
    """Decode every raw image once: validate it against its mask and labels, and hash it.

    Returns the inventory (one row per usable image) and the table of excluded files with reasons.
    With ``on_bad_file: error`` any bad file stops the run here, before anything is written, with a
    message that names every bad file.
    """
    policy = params.on_bad_file
    images, box_mask_files = _by_image_id(raw_images), _by_image_id(raw_box_masks)
    problems, filtered, unmatched = _layout_problems(raw_images, images, box_mask_files, annotations)
    rows = []
    for image_id, pids in progress_bar(sorted(images.items()), desc="inspect raw images", unit="img"):
        if pids[0] in unmatched or unusable_image_id(image_id):
            continue  # labels.csv names it in another spelling (its polygons would be lost), or its name cannot name files
        row = _inspect_image(image_id, pids[0], raw_images, raw_box_masks, box_mask_files, annotations, params, problems, filtered)
        if row is not None:
            rows.append(row)
    if annotations.boxes and not box_mask_files:
        logger.info("Box masks built from YOLO labels for %d images", len(rows))

    errors = [p for p in problems if p.fatal]
    if errors and policy == "error":
        listing = "\n".join(f"  - {p.file}: {p.reason}" for p in errors)
        raise BadInputError(f"{len(errors)} bad input file(s) (on_bad_file=error, nothing was written):\n{listing}")
    for p in errors:
        logger.warning("Skipping %s: %s", p.file, p.reason)
    excluded = pd.DataFrame([p.as_dict() for p in problems + filtered], columns=["file", "reason", "severity"])
    inventory = pd.DataFrame(rows, columns=INVENTORY_COLUMNS)
    if inventory.empty:
        raise BadInputError("no usable images were found in the raw dataset (see the messages above)")
    return inventory, excluded


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


def _layout_problems(raw_images: Partitions, images: dict, box_mask_files: dict, annotations: Annotations) -> tuple[list[Problem], list[Problem], set[str]]:
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


def _inspect_image(image_id: str, pid: str, raw_images: Partitions, raw_box_masks: Partitions, box_mask_files: dict, annotations: Annotations,
                   params: DataEngineeringParams, problems: list[Problem], filtered: list[Problem]) -> dict | None:  # fmt: skip
    """The inventory row of one image, or None with the reason appended to ``problems`` (bad input) or
    ``filtered`` (left out by a setting)."""
    mask_file = f"masks/{box_mask_files[image_id][0]}" if image_id in box_mask_files else None
    if len(box_mask_files.get(image_id, ())) > 1:
        return None  # two masks for one frame: named by _layout_problems, the frame is left out
    try:
        image = raw_images[pid]()
    except (DatasetError, OSError) as exc:
        problems.append(Problem(f"images/{pid}", _load_failure(exc)))
        return None
    h, w = image.shape[:2]
    try:
        box_mask = _box_mask_for(image_id, (h, w), box_mask_files, raw_box_masks, annotations)
    except (DatasetError, OSError) as exc:
        problems.append(Problem(mask_file or f"images/{pid}", _load_failure(exc)))
        return None
    if box_mask is None:
        problems.append(Problem(f"images/{pid}", "no box mask in masks/ and no YOLO label file"))
        return None
    if box_mask.shape != (h, w):
        problems.append(Problem(mask_file, f"mask is {box_mask.shape[1]}x{box_mask.shape[0]} but its image is {w}x{h}"))
        return None
    shapes = annotations.polygons.get(label_key(pid), [])
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


# --------------------------------------------------------------------------------------------------
# 3. duplicates
# --------------------------------------------------------------------------------------------------


def cluster_duplicates(inventory: pd.DataFrame, params: DataEngineeringParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Group near-duplicates and decide which images stay.

    In a cluster holding a hand-labelled image, box-only members are always dropped (they would leak
    eval content into the weak pool). With ``drop_duplicates``, one representative per cluster stays:
    a hand-labelled one if any, else the largest frame (ties: the first image id).
    """
    inventory = inventory.sort_values("image_id").reset_index(drop=True)
    dedupe = params.dedupe
    inventory["cluster_id"] = cluster_signatures(list(inventory["signature"]), dedupe.method, dedupe.min_similarity, dedupe.candidates,
                                                 dedupe.max_distance, available_cores())  # fmt: skip
    inventory["kept"] = True
    inventory["drop_reason"] = ""
    rank = inventory.assign(area=inventory.width * inventory.height).sort_values(
        ["cluster_id", "has_polygon", "area", "image_id"], ascending=[True, False, False, True]
    )
    representative = rank.groupby("cluster_id")["image_id"].first()
    for cluster_id, members in inventory.groupby("cluster_id"):
        if len(members) == 1:
            continue
        rep = representative[cluster_id]
        any_polygon = members["has_polygon"].any()
        for idx, row in members.iterrows():
            if row.image_id == rep:
                continue
            if dedupe.drop_duplicates or (any_polygon and not row.has_polygon):
                inventory.loc[idx, ["kept", "drop_reason"]] = [False, f"near-duplicate of {rep}"]
    records = [
        {
            "cluster_id": int(cluster_id),
            "size": len(members),
            "representative": representative[cluster_id],
            # JSON, not space-joined: file names may hold spaces
            "members": json.dumps(list(members.image_id)),
            "dropped": int((~members.kept).sum()),
        }
        for cluster_id, members in inventory.groupby("cluster_id")
        if len(members) > 1
    ]
    clusters = pd.DataFrame(records, columns=["cluster_id", "size", "representative", "members", "dropped"])
    logger.info("%d duplicate clusters, %d images dropped", len(clusters), int((~inventory.kept).sum()))
    return inventory, clusters


# --------------------------------------------------------------------------------------------------
# 4. splits
# --------------------------------------------------------------------------------------------------


def assign_splits(inventory: pd.DataFrame, params: DataEngineeringParams, seed: int, previous_manifest: pd.DataFrame | None = None) -> pd.DataFrame:
    """Split manifest: hand-labelled images split by cluster into train/val/eval, the rest are weak.
    Frames that change split against ``previous_manifest`` (the manifest of the last run, if any) are
    named in the log: models trained on the old splits are then refused by their split fingerprint."""
    kept = inventory[inventory.kept].copy()
    labelled = kept[kept.has_polygon]
    clusters = labelled.cluster_id.nunique()
    if clusters < MIN_LABELLED_CLUSTERS:
        raise BadInputError(
            f"labels.csv: {len(labelled)} hand-labelled images survived validation ({clusters} after grouping near-duplicates); "
            f"at least {MIN_LABELLED_CLUSTERS} distinct ones are needed for baseline_train, baseline_val and eval. "
            "Label more images (a few hundred is typical), or see excluded_files.csv for the ones left out."
        )
    if len(labelled) < FEW_LABELLED:
        logger.warning("Only %d hand-labelled images: eval and validation scores will be noisy (a few hundred is typical)", len(labelled))
    assignment = split_clusters(
        labelled.groupby("cluster_id").size(), params.split.eval_fraction, params.split.val_fraction, seed
    )
    kept["split"] = np.where(kept.has_polygon, kept.cluster_id.map(assignment), WEAK)
    # A seeded share of the box-only clusters scores models by their boxes (weak_holdout): never trained on.
    weak = kept[kept.split == WEAK]
    held = holdout_clusters(weak.groupby("cluster_id").size(), params.split.weak_holdout_fraction, seed)
    kept.loc[(kept.split == WEAK) & kept.cluster_id.isin(held), "split"] = WEAK_HOLDOUT
    order = {name: i for i, name in enumerate(SPLITS)}
    kept = kept.sort_values(["split", "image_id"], key=lambda s: s.map(order) if s.name == "split" else s)
    columns = ["image_id", "split", "cluster_id", "source_file", "mask_source", "has_polygon", "width", "height"]
    manifest = kept[columns].reset_index(drop=True)
    logger.info("Split sizes: %s", manifest.split.value_counts().to_dict())
    _log_split_changes(previous_manifest, manifest)
    if not (manifest.split == WEAK).any():
        logger.warning("No box-only images were kept: the weak pool is empty and refinement rounds have nothing to refine "
                       "(excluded_files.csv and data_report.md list the files left out, and why)")  # fmt: skip
    return manifest


def _log_split_changes(previous: pd.DataFrame | None, manifest: pd.DataFrame) -> None:
    changes = split_changes(previous, manifest)
    if changes.empty:
        return
    listing = ", ".join(f"{r.image_id} ({r.before} -> {r.after})" for r in changes.head(20).itertuples())
    logger.warning("%d frames changed split since the last data_engineering run (near-duplicates grouped differently, other data "
                   "or settings): %s%s. Models trained on the old splits are refused; train the baseline again",
                   len(changes), listing, ", ..." if len(changes) > 20 else "")  # fmt: skip


def available_cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


# --------------------------------------------------------------------------------------------------
# 5. split folders
# --------------------------------------------------------------------------------------------------


def _split_rows(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    return manifest[manifest.split == split]


def _loaders(rows, raw_images, raw_box_masks, annotations, params):
    """Lazy loaders (image, polygon mask, box mask) per image id, for PartitionedDataset's lazy saving."""
    box_mask_files = _by_image_id(raw_box_masks)

    def image(pid):
        return lambda: raw_images[pid]()

    def polygon_mask(pid, h, w):
        return lambda: rasterize_shapes(annotations.polygons[label_key(pid)], h, w, params.via.polyline_thickness)[0]

    def box_mask(image_id, h, w):
        return lambda: _box_mask_for(image_id, (h, w), box_mask_files, raw_box_masks, annotations)

    out = {}
    for row in rows.itertuples():
        out[row.image_id] = (
            image(row.source_file),
            polygon_mask(row.source_file, row.height, row.width) if row.has_polygon else None,
            box_mask(row.image_id, row.height, row.width),
        )
    return out


def write_labelled_split(manifest, raw_images, raw_box_masks, annotations: Annotations, params: DataEngineeringParams, split: str):
    """Images, polygon masks and box masks of one hand-labelled split, as lazily saved partitions."""
    loaders = _loaders(_split_rows(manifest, split), raw_images, raw_box_masks, annotations, params)
    images = {k: v[0] for k, v in loaders.items()}
    masks = {k: v[1] for k, v in loaders.items()}
    box_masks = {k: v[2] for k, v in loaders.items()}
    return images, masks, box_masks


def write_box_only_split(manifest, raw_images, raw_box_masks, annotations: Annotations, params: DataEngineeringParams, split: str = WEAK):
    """Images and box masks of a box-only split: the weak pool, or the weak_holdout that scores models."""
    loaders = _loaders(_split_rows(manifest, split), raw_images, raw_box_masks, annotations, params)
    return {k: v[0] for k, v in loaders.items()}, {k: v[2] for k, v in loaders.items()}


def extract_box_lists(manifest: pd.DataFrame, raw_box_masks: Partitions, annotations: Annotations) -> pd.DataFrame:
    """One row per detection box of every kept frame (``data.boxes.BOX_COLUMNS``), from the same source
    as its box mask: the components of ``masks/`` when the frame has one, else its YOLO boxes (each box
    on its own, so overlapping boxes stay apart)."""
    box_mask_files = _by_image_id(raw_box_masks)
    names = annotations.box_class_names
    rows = []
    for row in progress_bar(list(manifest.itertuples()), desc="box lists", unit="img", leave=False):
        if row.image_id in box_mask_files:
            boxes = boxes_from_mask(raw_box_masks[box_mask_files[row.image_id][0]]())
            classes = [""] * len(boxes)
        else:  # YOLO: box by box, so that a box clipped away by the frame takes its class name with it
            pixel = [(yolo_pixel_boxes([b], int(row.height), int(row.width)), names.get(b.class_id, str(b.class_id)))
                     for b in annotations.boxes.get(row.image_id, [])]  # fmt: skip
            kept = [(box, name) for box, name in pixel if len(box)]
            boxes = np.concatenate([box for box, _ in kept]) if kept else np.zeros((0, 4), np.int64)
            classes = [name for _, name in kept]
        rows.append((str(row.image_id), boxes, classes))
    return box_table(rows)


def publish_data_engineering(
    assignment: pd.DataFrame, excluded: pd.DataFrame, clusters: pd.DataFrame, box_lists: pd.DataFrame, **written_folders
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The tables of this run (excluded files, duplicate clusters, box lists, split manifest), returned only once
    every split folder is written and agrees with the assignment (``written_folders``: ``<split>__<kind>`` ->
    that folder's partitions, just listed). The data report is built afterwards, from these tables.

    Readers trust a folder only if it matches the manifest, and the manifest is saved last. A run killed
    or failing part-way therefore leaves the previous run's tables, which disagree with any folder whose
    images changed: the next reader refuses instead of mixing two runs.
    """
    check_splits_agree(assignment, {name.replace("__", "/"): folder for name, folder in written_folders.items()})
    stray = sorted(set(box_lists.image_id.astype(str)) - set(assignment.image_id.astype(str)))
    if stray:
        raise RuntimeError(f"box_lists.csv holds {len(stray)} frames that no split holds ({', '.join(stray[:3])})")
    return excluded, clusters, box_lists, assignment


# --------------------------------------------------------------------------------------------------
# 6. report
# --------------------------------------------------------------------------------------------------


def _coarseness(manifest, raw_images, raw_box_masks, annotations, ground_truth, params) -> tuple[dict, pd.DataFrame]:
    """IoU of box masks against polygons (hand-labelled) and against ground truth (when it exists)."""
    truth_files = _by_image_id(ground_truth)
    loaders = _loaders(manifest, raw_images, raw_box_masks, annotations, params)
    rows = []
    for row in progress_bar(list(manifest.itertuples()), desc="box coarseness", unit="img"):
        _, polygon, box = loaders[row.image_id]
        box_mask = box()
        record = {"image_id": row.image_id, "split": row.split}
        polygon_mask = polygon() if polygon else None
        if polygon_mask is not None:
            record["box_vs_polygon_iou"] = mask_iou(box_mask, polygon_mask)
        if row.image_id in truth_files:
            truth = ground_truth[truth_files[row.image_id][0]]()
            if truth.shape == box_mask.shape:
                record["box_vs_truth_iou"] = mask_iou(box_mask, truth)
                if polygon_mask is not None:
                    record["polygon_vs_truth_iou"] = mask_iou(polygon_mask, truth)
        rows.append(record)
    table = pd.DataFrame(rows)
    summary = {
        column: {"mean": round(float(table[column].mean()), 4), "images": int(table[column].notna().sum())}
        for column in ("box_vs_polygon_iou", "box_vs_truth_iou", "polygon_vs_truth_iou")
        if column in table
    }
    return summary, table


def _representative_first(cluster) -> list[str]:
    return [cluster.representative] + [m for m in json.loads(cluster.members) if m != cluster.representative]


def build_data_report(
    manifest: pd.DataFrame,
    excluded: pd.DataFrame,
    clusters: pd.DataFrame,
    annotations: Annotations,
    raw_images: Partitions,
    raw_box_masks: Partitions,
    ground_truth: Partitions,
    params: DataEngineeringParams,
    dataset: str,
):
    """Markdown and JSON report, a sample gallery and a gallery of the largest duplicate clusters."""
    counts = {split: int((manifest.split == split).sum()) for split in SPLITS}
    coarseness, _ = _coarseness(manifest, raw_images, raw_box_masks, annotations, ground_truth, params)
    report = {
        "dataset": dataset,
        "images_kept": int(len(manifest)),
        "split_counts": counts,
        "hand_labelled_per_split": {s: int(manifest[(manifest.split == s) & manifest.has_polygon].shape[0]) for s in SPLITS},
        "regions_kept_per_class": annotations.kept_classes,
        "regions_dropped_per_class": annotations.dropped_classes,
        "duplicate_clusters": int(len(clusters)),
        "duplicates_dropped": int(clusters["dropped"].sum()) if len(clusters) else 0,
        "excluded_files": excluded.to_dict(orient="records"),
        "box_coarseness": coarseness,
        "clusters": clusters.to_dict(orient="records"),
    }
    samples_png, duplicates_png = _report_galleries(manifest, clusters, annotations, raw_images, raw_box_masks, ground_truth, params)
    return data_report_markdown(report), report, samples_png, duplicates_png


def _report_galleries(manifest, clusters, annotations, raw_images, raw_box_masks, ground_truth, params) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sample of kept images with their masks, and the largest duplicate clusters."""
    box_mask_files = _by_image_id(raw_box_masks)
    truth_files = _by_image_id(ground_truth)

    image_files = _by_image_id(raw_images)  # kept and dropped duplicates alike

    def panel(image_id):
        source = image_files[image_id][0]
        image = raw_images[source]()
        box = _box_mask_for(image_id, image.shape[:2], box_mask_files, raw_box_masks, annotations)
        shapes = annotations.polygons.get(label_key(source))
        polygon = rasterize_shapes(shapes, *image.shape[:2], params.via.polyline_thickness)[0] if shapes else None
        truth = ground_truth[truth_files[image_id][0]]() if image_id in truth_files else None
        return image, box, polygon, truth

    rng = np.random.default_rng(0)
    n = min(params.report.gallery_samples, len(manifest))
    picked = sorted(rng.choice(len(manifest), size=n, replace=False)) if n else []
    samples = [(manifest.image_id.iloc[i], manifest.split.iloc[i], *panel(manifest.image_id.iloc[i])) for i in picked]
    samples_png = sample_gallery(samples)
    biggest = clusters.sort_values(["size", "cluster_id"], ascending=[False, True]).head(params.report.gallery_clusters)
    cluster_images = [
        (int(c.cluster_id), [(m, panel(m)[0]) for m in _representative_first(c)]) for c in biggest.itertuples()
    ]
    duplicates_png = duplicate_cluster_gallery(cluster_images)
    return samples_png, duplicates_png
