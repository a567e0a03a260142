"""What the data report measures and shows beyond the counts: how coarse the box masks are (IoU against
the polygons and, for synthetic data, the truth), a seeded sample of frames and the largest duplicate
clusters. Plain functions the data_engineering report node calls."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from sewer_segmentation.data.annotations import rasterize_shapes
from sewer_segmentation.data.inventory import box_mask_for, by_image_id, frame_loaders
from sewer_segmentation.io.imaging import mask_iou
from sewer_segmentation.progress import progress_bar
from sewer_segmentation.reporting.plots import duplicate_cluster_gallery, sample_gallery


def box_coarseness(manifest, raw_images, raw_box_masks, annotations, ground_truth, params) -> tuple[dict, pd.DataFrame]:
    """IoU of box masks against polygons (hand-labelled) and against ground truth (when it exists)."""
    truth_files = by_image_id(ground_truth)
    loaders = frame_loaders(manifest, raw_images, raw_box_masks, annotations, params)
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


def representative_first(cluster) -> list[str]:
    return [cluster.representative] + [m for m in json.loads(cluster.members) if m != cluster.representative]


def report_galleries(manifest, clusters, annotations, raw_images, raw_box_masks, ground_truth, params) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sample of kept images with their masks, and the largest duplicate clusters."""
    box_mask_files = by_image_id(raw_box_masks)
    truth_files = by_image_id(ground_truth)

    image_files = by_image_id(raw_images)  # kept and dropped duplicates alike

    def panel(image_id):
        source = image_files[image_id][0]
        image = raw_images[source]()
        box = box_mask_for(image_id, image.shape[:2], box_mask_files, raw_box_masks, annotations)
        shapes = annotations.shapes_of(source)
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
        (int(c.cluster_id), [(m, panel(m)[0]) for m in representative_first(c)]) for c in biggest.itertuples()
    ]
    duplicates_png = duplicate_cluster_gallery(cluster_images)
    return samples_png, duplicates_png
