"""The data_engineering pipeline run through the real CLI on tiny generated datasets."""

import json

import pandas as pd
import pytest

from sewer_segmentation.splits import BASELINE_TRAIN, BASELINE_VAL, EVAL, WEAK

from .conftest import make_dataset, run_kedro

pytestmark = pytest.mark.slow


def test_pipeline_builds_manifest_splits_and_report_and_lists_a_corrupt_image(kedro_project):
    raw = make_dataset(kedro_project)
    (raw / "images" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (raw / "masks" / "corrupt.png").write_bytes((raw / "masks" / "frame_00000.jpg").read_bytes())
    (raw / "masks" / "orphan.jpg").write_bytes((raw / "masks" / "frame_00000.jpg").read_bytes())
    result = run_kedro(kedro_project, "--pipeline=data_engineering", "--params=dataset=tiny")
    assert result.returncode == 0, result.stdout + result.stderr

    manifest = pd.read_csv(kedro_project / "data/03_primary/tiny/split_manifest.csv")
    assert {"image_id", "split", "cluster_id", "source_file", "has_polygon"} <= set(manifest.columns)
    assert set(manifest.split) == {BASELINE_TRAIN, BASELINE_VAL, EVAL, WEAK}
    assert manifest.image_id.is_unique and "corrupt" not in set(manifest.image_id)
    assert manifest.groupby("cluster_id").split.nunique().max() == 1
    assert manifest[manifest.split != WEAK].has_polygon.all() and not manifest[manifest.split == WEAK].has_polygon.any()
    for split in (BASELINE_TRAIN, BASELINE_VAL, EVAL):
        ids = set(manifest[manifest.split == split].image_id)
        for kind in ("images", "masks", "box_masks"):
            files = {p.stem for p in (kedro_project / f"data/03_primary/tiny/{split}/{kind}").iterdir()}
            assert files == ids, (split, kind)
    weak_files = {p.stem for p in (kedro_project / "data/03_primary/tiny/weak/box_masks").iterdir()}
    assert weak_files == set(manifest[manifest.split == WEAK].image_id)

    report = json.loads((kedro_project / "data/08_reporting/tiny/data_report.json").read_text())
    reasons = {e["file"]: e["reason"] for e in report["excluded_files"]}
    assert reasons["images/corrupt.jpg"].startswith("unreadable")
    assert reasons["masks/orphan.jpg"] == "mask without an image"
    assert report["split_counts"][EVAL] == (manifest.split == EVAL).sum()
    assert 0.2 < report["box_coarseness"]["box_vs_polygon_iou"]["mean"] < 0.9
    assert report["box_coarseness"]["polygon_vs_truth_iou"]["mean"] > 0.9
    md = (kedro_project / "data/08_reporting/tiny/data_report.md").read_text()
    assert "images/corrupt.jpg" in md
    for png in ("data_report_samples.png", "data_report_duplicates.png"):
        assert (kedro_project / "data/08_reporting/tiny" / png).stat().st_size > 10_000


def test_error_policy_stops_before_writing_and_names_every_bad_file(kedro_project):
    raw = make_dataset(kedro_project)
    (raw / "images" / "corrupt.jpg").write_bytes(b"not an image")
    with open(raw / "labels.csv", "a") as f:
        f.write('../../etc/passwd,1,{},0,0,"{}","{}"\n')
    result = run_kedro(kedro_project, "--pipeline=data_engineering", "--params=dataset=tiny,data_engineering.on_bad_file=error")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "images/corrupt.jpg" in output and "escapes the dataset folder" in output
    assert "Traceback" not in output
    assert not any((kedro_project / "data/03_primary/tiny").glob("*"))
    assert not (kedro_project / "data/08_reporting/tiny/data_report.md").exists()


def test_yolo_layout_is_ingested_with_class_filter(kedro_project):
    make_dataset(kedro_project, layout="yolo", other_class_box_fraction=0.5)
    result = run_kedro(kedro_project, "--pipeline=data_engineering", "--params=dataset=tiny")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((kedro_project / "data/08_reporting/tiny/data_report.json").read_text())
    assert report["regions_kept_per_class"]["Deposition"] > 0
    dropped = report["regions_dropped_per_class"]
    kept_names = set(report["regions_kept_per_class"])
    assert kept_names.isdisjoint({"Misalignment", "Rupture"})
    assert set(dropped) <= {"Misalignment", "Rupture"}
    manifest = pd.read_csv(kedro_project / "data/03_primary/tiny/split_manifest.csv")
    assert (manifest.mask_source == "yolo").all()
    assert (manifest.split == WEAK).sum() > 0 and (manifest.split == EVAL).sum() > 0


def test_params_that_name_no_parameter_are_refused_with_the_nearest_names(kedro_project):
    make_dataset(kedro_project)
    result = run_kedro(kedro_project, "--pipeline=data_engineering", "--params=dataset=tiny,on_bad_file=error")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output
    assert "--params names no parameter: on_bad_file (did you mean data_engineering.on_bad_file?)" in output
    assert not (kedro_project / "data/03_primary/tiny").exists()
    # nested keys work in every shipped environment (soft merge: conf/gpu holds only differences)
    for env in ("local", "gpu"):
        result = run_kedro(kedro_project, "--pipeline=data_engineering", f"--env={env}",
                           "--params=dataset=tiny,mask_refinement.method=seed,model.args.decoder_attention_type=scse")  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
