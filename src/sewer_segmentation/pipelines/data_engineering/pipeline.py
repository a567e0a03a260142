"""Wiring of the data_engineering pipeline (namespace ``data_engineering`` in kedro viz)."""

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from sewer_segmentation.data.splits import BASELINE_TRAIN, BASELINE_VAL, EVAL, WEAK, WEAK_HOLDOUT

from .nodes import (
    assign_splits,
    build_data_report,
    cluster_duplicates,
    extract_box_lists,
    inspect_raw_files,
    parse_annotations,
    publish_data_engineering,
    write_box_only_split,
    write_labelled_split,
)

WRITTEN = [f"{split}_{kind}" for split in (BASELINE_TRAIN, BASELINE_VAL, EVAL) for kind in ("images", "masks", "box_masks")]
WRITTEN += [f"{split}_{kind}" for split in (WEAK, WEAK_HOLDOUT) for kind in ("images", "box_masks")]


def _key(dataset: str) -> str:
    """``baseline_val_box_masks`` -> ``baseline_val__box_masks`` (split, kind), a keyword argument name."""
    for kind in ("box_masks", "images", "masks"):
        if dataset.endswith(f"_{kind}"):
            return f"{dataset[: -len(kind) - 1]}__{kind}"
    raise ValueError(dataset)


RAW = ["raw_images", "raw_box_masks", "raw_label_files", "raw_ground_truth"]
PARAMS = "params:data_engineering"


def _labelled_split_node(split: str) -> Node:
    func = update_wrapper(partial(write_labelled_split, split=split), write_labelled_split)
    return Node(
        func,
        inputs=["split_assignment", "raw_images", "raw_box_masks", "annotations", PARAMS],
        outputs=[f"{split}_images", f"{split}_masks", f"{split}_box_masks"],
        name=f"write_{split}_split",
    )


def _box_only_split_node(split: str) -> Node:
    func = update_wrapper(partial(write_box_only_split, split=split), write_box_only_split)
    return Node(
        func,
        inputs=["split_assignment", "raw_images", "raw_box_masks", "annotations", PARAMS],
        outputs=[f"{split}_images", f"{split}_box_masks"],
        name=f"write_{split}_split",
    )


REPORTS = ["data_report_md", "data_report_json", "data_report_samples", "data_report_duplicates"]


def create_pipeline(**kwargs) -> Pipeline:
    nodes = [
        Node(parse_annotations, inputs=["raw_label_files", PARAMS], outputs="annotations", name="parse_annotations"),
        Node(inspect_raw_files, inputs=["raw_images", "raw_box_masks", "annotations", PARAMS], outputs=["raw_inventory", "excluded_table"],
             name="inspect_raw_files"),  # fmt: skip
        Node(cluster_duplicates, inputs=["raw_inventory", PARAMS], outputs=["image_inventory", "cluster_table"], name="cluster_duplicates"),
        Node(assign_splits, inputs=["image_inventory", PARAMS, "params:seed", "previous_split_manifest", "raw_metadata"], outputs="split_assignment",
             name="assign_splits"),  # fmt: skip
        *(_labelled_split_node(split) for split in (BASELINE_TRAIN, BASELINE_VAL, EVAL)),
        *(_box_only_split_node(split) for split in (WEAK, WEAK_HOLDOUT)),
        Node(extract_box_lists, inputs=["split_assignment", "raw_box_masks", "annotations"], outputs="box_table", name="extract_box_lists"),
        # After the manifest, from the published tables: the report always describes the splits on disk.
        Node(
            build_data_report,
            inputs=[
                "split_manifest", "excluded_files", "duplicate_clusters", "annotations",
                "raw_images", "raw_box_masks", "raw_ground_truth", PARAMS, "params:dataset",
            ],  # fmt: skip
            outputs=REPORTS,
            name="build_data_report",
        ),
        # The tables, once every folder is written (see publish_data_engineering). The manifest is the last
        # table saved: readers trust only folders that agree with it.
        Node(
            publish_data_engineering,
            inputs={"assignment": "split_assignment", "excluded": "excluded_table", "clusters": "cluster_table",
                    "box_lists": "box_table", **{_key(name): name for name in WRITTEN}},  # fmt: skip
            outputs=["excluded_files", "duplicate_clusters", "box_lists", "split_manifest"],
            name="publish_data_engineering",
        ),
    ]
    return Pipeline(
        nodes,
        namespace="data_engineering",
        inputs={*RAW, "previous_split_manifest", "raw_metadata"},
        outputs={"split_manifest", "excluded_files", "duplicate_clusters", "box_lists", *WRITTEN, *REPORTS},
        parameters={PARAMS, "params:seed", "params:dataset"},
    )
