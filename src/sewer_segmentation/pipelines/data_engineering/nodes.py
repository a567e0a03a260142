"""Nodes of the data_engineering pipeline: raw folders -> validated, de-duplicated, split datasets.

Raw folders arrive as partition dicts ``{relative file name: load function}``: nothing is decoded until
a node asks for it, and each raw image is decoded once for validation and hashing.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from sewer_segmentation.data.boxes import box_table, boxes_from_mask, yolo_pixel_boxes
from sewer_segmentation.data.dedupe import available_cores, cluster_signatures, keep_one_per_cluster
from sewer_segmentation.data.inventory import (
    INVENTORY_COLUMNS,
    Partitions,
    by_image_id,
    frame_loaders,
    inspect_image,
    layout_problems,
    unusable_image_id,
)
from sewer_segmentation.data.layouts import Annotations, LabelFiles, choose_layout
from sewer_segmentation.data.report import box_coarseness, report_galleries
from sewer_segmentation.data.splits import SPLITS, WEAK, check_splits_agree, draw_splits, log_split_changes, metadata_groups, rows_of_split, split_settings
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.params import DataEngineeringParams
from sewer_segmentation.progress import progress_bar
from sewer_segmentation.reporting.reports import data_report_markdown

logger = logging.getLogger(__name__)

EXCLUDED_COLUMNS = ["file", "reason", "severity"]
#: One distinct hand-labelled image (duplicate cluster) per split is the least that can run at all.
MIN_LABELLED_CLUSTERS = 3
FEW_LABELLED = 30


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


def inspect_raw_files(raw_images: Partitions, raw_box_masks: Partitions, annotations: Annotations, params: DataEngineeringParams):
    """Decode every raw image once: validate it against its mask and labels, and hash it.

    Returns the inventory (one row per usable image) and the table of excluded files with reasons.
    With ``on_bad_file: error`` any bad file stops the run here, before anything is written, with a
    message that names every bad file.
    """
    policy = params.on_bad_file
    images, box_mask_files = by_image_id(raw_images), by_image_id(raw_box_masks)
    problems, filtered, unmatched = layout_problems(raw_images, images, box_mask_files, annotations)
    rows = []
    for image_id, pids in progress_bar(sorted(images.items()), desc="inspect raw images", unit="img"):
        if pids[0] in unmatched or unusable_image_id(image_id):
            continue  # labels.csv names it in another spelling (its polygons would be lost), or its name cannot name files
        row = inspect_image(image_id, pids[0], raw_images, raw_box_masks, box_mask_files, annotations, params, problems, filtered)
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


# --------------------------------------------------------------------------------------------------
# 3. duplicates
# --------------------------------------------------------------------------------------------------


def cluster_duplicates(inventory: pd.DataFrame, params: DataEngineeringParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Group near-duplicates and decide which images stay.

    In a cluster holding a hand-labelled image, box-only members are always dropped (they would leak
    eval content into the weak pool). With ``dedupe.action: drop``, one representative per cluster stays:
    a hand-labelled one if any, else the largest frame (ties: the first image id); with ``group``, every
    other member stays too, and the split (by cluster) keeps them together.
    """
    inventory = inventory.sort_values("image_id").reset_index(drop=True)
    dedupe = params.dedupe
    inventory["cluster_id"] = cluster_signatures(list(inventory["signature"]), dedupe.method, dedupe.min_similarity, dedupe.candidates,
                                                 dedupe.max_distance, available_cores())  # fmt: skip
    inventory, clusters = keep_one_per_cluster(inventory, dedupe.action == "drop")
    logger.info("%d duplicate clusters, %d images dropped", len(clusters), int((~inventory.kept).sum()))
    return inventory, clusters


# --------------------------------------------------------------------------------------------------
# 4. splits
# --------------------------------------------------------------------------------------------------


def assign_splits(inventory: pd.DataFrame, params: DataEngineeringParams, seed: int, previous_manifest: pd.DataFrame | None = None,
                  metadata: pd.DataFrame | None = None) -> pd.DataFrame:  # fmt: skip
    """Split manifest: hand-labelled images split by cluster into train/val/eval, the rest are weak
    (``data/splits.py``: with ``split.stable``, every frame keeps the split it had in ``previous_manifest``).
    Frames that change split against ``previous_manifest`` (the manifest of the last run, if any) are
    named in the log: models trained on the old splits are then refused by their split fingerprint.
    ``metadata`` (the dataset's ``metadata.csv``, if any) groups frames by ``split.group_by_column``."""
    groups = metadata_groups(metadata, params.split.group_by_column)
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
    kept["split"], kept["drawn_with"] = draw_splits(kept, params.split, seed, previous_manifest, groups), split_settings(params.split, seed)
    order = {name: i for i, name in enumerate(SPLITS)}
    kept = kept.sort_values(["split", "image_id"], key=lambda s: s.map(order) if s.name == "split" else s)
    columns = ["image_id", "split", "cluster_id", "source_file", "mask_source", "has_polygon", "width", "height", "drawn_with"]
    manifest = kept[columns].reset_index(drop=True)
    logger.info("Split sizes: %s", manifest.split.value_counts().to_dict())
    log_split_changes(previous_manifest, manifest)
    if not (manifest.split == WEAK).any():
        logger.warning("No box-only images were kept: the weak pool is empty and refinement rounds have nothing to refine "
                       "(excluded_files.csv and data_report.md list the files left out, and why)")  # fmt: skip
    return manifest


# --------------------------------------------------------------------------------------------------
# 5. split folders
# --------------------------------------------------------------------------------------------------


def write_labelled_split(manifest, raw_images, raw_box_masks, annotations: Annotations, params: DataEngineeringParams, split: str):
    """Images, polygon masks and box masks of one hand-labelled split, as lazily saved partitions."""
    loaders = frame_loaders(rows_of_split(manifest, split), raw_images, raw_box_masks, annotations, params)
    images = {k: v[0] for k, v in loaders.items()}
    masks = {k: v[1] for k, v in loaders.items()}
    box_masks = {k: v[2] for k, v in loaders.items()}
    return images, masks, box_masks


def write_box_only_split(manifest, raw_images, raw_box_masks, annotations: Annotations, params: DataEngineeringParams, split: str = WEAK):
    """Images and box masks of a box-only split: the weak pool, or the weak_holdout that scores models."""
    loaders = frame_loaders(rows_of_split(manifest, split), raw_images, raw_box_masks, annotations, params)
    return {k: v[0] for k, v in loaders.items()}, {k: v[2] for k, v in loaders.items()}


def extract_box_lists(manifest: pd.DataFrame, raw_box_masks: Partitions, annotations: Annotations) -> pd.DataFrame:
    """One row per detection box of every kept frame (``data.boxes.BOX_COLUMNS``), from the same source
    as its box mask: the components of ``masks/`` when the frame has one, else its YOLO boxes (each box
    on its own, so overlapping boxes stay apart)."""
    box_mask_files = by_image_id(raw_box_masks)
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
    coarseness, _ = box_coarseness(manifest, raw_images, raw_box_masks, annotations, ground_truth, params)
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
    samples_png, duplicates_png = report_galleries(manifest, clusters, annotations, raw_images, raw_box_masks, ground_truth, params)
    return data_report_markdown(report), report, samples_png, duplicates_png


