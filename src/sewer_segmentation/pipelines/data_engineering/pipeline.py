"""Wiring of the data_engineering pipeline (namespace ``data_engineering`` in kedro viz)."""

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from sewer_segmentation.splits import BASELINE_TRAIN, BASELINE_VAL, EVAL

from .nodes import (
    assign_splits,
    build_data_report,
    cluster_duplicates,
    inspect_raw_files,
    parse_annotations,
    write_labelled_split,
    write_weak_split,
)

RAW = ["raw_images", "raw_box_masks", "raw_via_labels", "raw_yolo_labels", "raw_yolo_data", "raw_ground_truth"]
PARAMS = "params:data_engineering"


def _labelled_split_node(split: str) -> Node:
    func = update_wrapper(partial(write_labelled_split, split=split), write_labelled_split)
    return Node(
        func,
        inputs=["split_manifest", "raw_images", "raw_box_masks", "annotations", PARAMS],
        outputs=[f"{split}_images", f"{split}_masks", f"{split}_box_masks"],
        name=f"write_{split}_split",
    )


def create_pipeline(**kwargs) -> Pipeline:
    nodes = [
        Node(
            parse_annotations,
            inputs=["raw_via_labels", "raw_yolo_labels", "raw_yolo_data", PARAMS],
            outputs="annotations",
            name="parse_annotations",
        ),
        Node(
            inspect_raw_files,
            inputs=["raw_images", "raw_box_masks", "annotations", PARAMS],
            outputs=["raw_inventory", "excluded_files"],
            name="inspect_raw_files",
        ),
        Node(
            cluster_duplicates,
            inputs=["raw_inventory", "params:data_engineering.dedupe"],
            outputs=["image_inventory", "duplicate_clusters"],
            name="cluster_duplicates",
        ),
        Node(
            assign_splits,
            inputs=["image_inventory", "params:data_engineering.split", "params:seed"],
            outputs="split_manifest",
            name="assign_splits",
        ),
        *(_labelled_split_node(split) for split in (BASELINE_TRAIN, BASELINE_VAL, EVAL)),
        Node(
            write_weak_split,
            inputs=["split_manifest", "raw_images", "raw_box_masks", "annotations", PARAMS],
            outputs=["weak_images", "weak_box_masks"],
            name="write_weak_split",
        ),
        Node(
            build_data_report,
            inputs=[
                "split_manifest", "excluded_files", "duplicate_clusters", "annotations",
                "raw_images", "raw_box_masks", "raw_ground_truth", PARAMS, "params:dataset",
            ],  # fmt: skip
            outputs=["data_report_md", "data_report_json", "data_report_samples", "data_report_duplicates"],
            name="build_data_report",
        ),
    ]
    split_outputs = [
        f"{split}_{kind}" for split in (BASELINE_TRAIN, BASELINE_VAL, EVAL) for kind in ("images", "masks", "box_masks")
    ]
    return Pipeline(
        nodes,
        namespace="data_engineering",
        inputs=set(RAW),
        outputs={
            "split_manifest", "excluded_files", "duplicate_clusters", *split_outputs, "weak_images", "weak_box_masks",
            "data_report_md", "data_report_json", "data_report_samples", "data_report_duplicates",
        },  # fmt: skip
        parameters={PARAMS, "params:data_engineering.dedupe", "params:data_engineering.split", "params:seed", "params:dataset"},
    )
