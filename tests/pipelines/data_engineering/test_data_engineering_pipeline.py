"""The data_engineering pipeline on tiny generated datasets: in this process (Kedro's runner, or the project's
`kedro run` command through click's runner), which is what the CLI calls."""

import contextlib
import json

import pandas as pd
import pytest

from sewer_segmentation.data.splits import BASELINE_TRAIN, BASELINE_VAL, EVAL, WEAK, WEAK_HOLDOUT
from tests.conftest import make_dataset, nested, run_cli, run_pipeline

pytestmark = pytest.mark.slow


def test_pipeline_builds_manifest_splits_and_report_and_lists_a_corrupt_image(kedro_project):
    raw = make_dataset(kedro_project)
    (raw / "images" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (raw / "masks" / "corrupt.png").write_bytes((raw / "masks" / "frame_00000.jpg").read_bytes())
    (raw / "masks" / "orphan.jpg").write_bytes((raw / "masks" / "frame_00000.jpg").read_bytes())
    run_pipeline(kedro_project, "data_engineering", dataset="tiny")

    manifest = pd.read_csv(kedro_project / "data/03_primary/tiny/split_manifest.csv")
    assert {"image_id", "split", "cluster_id", "source_file", "has_polygon"} <= set(manifest.columns)
    assert set(manifest.split) == {BASELINE_TRAIN, BASELINE_VAL, EVAL, WEAK, WEAK_HOLDOUT}
    assert manifest.image_id.is_unique and "corrupt" not in set(manifest.image_id)
    assert manifest.groupby("cluster_id").split.nunique().max() == 1
    box_only = manifest.split.isin([WEAK, WEAK_HOLDOUT])
    assert manifest[~box_only].has_polygon.all() and not manifest[box_only].has_polygon.any()
    for split in (BASELINE_TRAIN, BASELINE_VAL, EVAL):
        ids = set(manifest[manifest.split == split].image_id)
        for kind in ("images", "masks", "box_masks"):
            files = {p.stem for p in (kedro_project / f"data/03_primary/tiny/{split}/{kind}").iterdir()}
            assert files == ids, (split, kind)
    for split in (WEAK, WEAK_HOLDOUT):
        weak_files = {p.stem for p in (kedro_project / f"data/03_primary/tiny/{split}/box_masks").iterdir()}
        assert weak_files == set(manifest[manifest.split == split].image_id)

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
    result = run_cli(kedro_project, "--pipeline=data_engineering", "--params=dataset=tiny,data_engineering.on_bad_file=error")
    output = result.output
    assert result.exit_code != 0
    assert "images/corrupt.jpg" in output and "escapes the dataset folder" in output
    assert "Traceback" not in output
    assert not any((kedro_project / "data/03_primary/tiny").glob("*"))
    assert not (kedro_project / "data/08_reporting/tiny/data_report.md").exists()


def test_yolo_layout_is_ingested_with_class_filter(kedro_project):
    make_dataset(kedro_project, layout="yolo", other_class_box_fraction=0.5)
    run_pipeline(kedro_project, "data_engineering", dataset="tiny")
    report = json.loads((kedro_project / "data/08_reporting/tiny/data_report.json").read_text())
    assert report["regions_kept_per_class"]["Deposition"] > 0
    dropped = report["regions_dropped_per_class"]
    kept_names = set(report["regions_kept_per_class"])
    assert kept_names.isdisjoint({"Misalignment", "Rupture"})
    assert set(dropped) <= {"Misalignment", "Rupture"}
    manifest = pd.read_csv(kedro_project / "data/03_primary/tiny/split_manifest.csv")
    assert (manifest.mask_source == "boxes").all()
    assert (manifest.split == WEAK).sum() > 0 and (manifest.split == EVAL).sum() > 0


def test_params_that_name_no_parameter_are_refused_with_the_nearest_names(kedro_project):
    make_dataset(kedro_project)
    result = run_cli(kedro_project, "--pipeline=data_engineering", "--params=dataset=tiny,on_bad_file=error")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--params names no parameter: on_bad_file (did you mean data_engineering.on_bad_file?)" in result.output
    assert not (kedro_project / "data/03_primary/tiny").exists()


@pytest.mark.parametrize("env", ["local", "gpu"])
def test_nested_overrides_keep_the_rest_of_their_dictionary_in_every_environment(kedro_project, env):
    """``--params=mask_refinement.method=seed`` changes one key; with ``--env gpu`` it once replaced the
    whole dictionary and the refine pipeline lost ``mask_refinement.gallery_cases``."""
    from kedro.framework.project import pipelines  # noqa: PLC0415
    from kedro.framework.session import KedroSession  # noqa: PLC0415
    from kedro.framework.startup import bootstrap_project  # noqa: PLC0415

    from sewer_segmentation.params import plain_params  # noqa: PLC0415

    overrides = {"dataset": "tiny", "mask_refinement.method": "seed", "model.args.decoder_attention_type": "scse"}
    bootstrap_project(kedro_project)
    with contextlib.chdir(kedro_project), KedroSession.create(project_path=kedro_project, env=env, runtime_params=nested(overrides)) as session:
        catalog = session.load_context().catalog
        params = plain_params(catalog.load("parameters"))  # typed sections arrive as their models
        assert params["mask_refinement"]["method"] == "seed" and "gallery_cases" in params["mask_refinement"]
        assert params["model"]["args"]["decoder_attention_type"] == "scse" and "decoder_channels" in params["model"]["args"]
        for name in ("refine", "__default__", "baseline"):
            needed = {i for i in pipelines[name].inputs() if i.startswith("params:")}
            assert all(catalog.exists(i) for i in needed), (name, sorted(i for i in needed if not catalog.exists(i)))


def test_a_mirrored_and_a_cropped_copy_of_an_eval_frame_reach_no_training_split_or_weak_pool(kedro_project, caplog):
    """Box-only copies of an eval frame are near-duplicates of it: dropped, never trained on or refined."""
    import logging

    import cv2

    raw = make_dataset(kedro_project)
    run_pipeline(kedro_project, "data_engineering", dataset="tiny")
    manifest = pd.read_csv(kedro_project / "data/03_primary/tiny/split_manifest.csv", dtype={"image_id": str})
    source = manifest[manifest.split == EVAL].image_id.iloc[0]
    image, box = cv2.imread(str(raw / "images" / f"{source}.jpg")), cv2.imread(str(raw / "masks" / f"{source}.jpg"))
    h, w = image.shape[:2]
    for name, copy in (("planted_mirror", lambda a: a[:, ::-1]), ("planted_crop", lambda a: a[h // 10 :, : w - w // 10])):
        cv2.imwrite(str(raw / "images" / f"{name}.jpg"), copy(image))
        cv2.imwrite(str(raw / "masks" / f"{name}.jpg"), copy(box))
    with caplog.at_level(logging.INFO):
        run_pipeline(kedro_project, "data_engineering", dataset="tiny")
    manifest = pd.read_csv(kedro_project / "data/03_primary/tiny/split_manifest.csv", dtype={"image_id": str})
    assert not {"planted_mirror", "planted_crop"} & set(manifest.image_id)  # in no split: neither trained on nor refined
    assert manifest.set_index("image_id").split[source] == EVAL
    clusters = pd.read_csv(kedro_project / "data/02_intermediate/tiny/duplicate_clusters.csv")
    members = [set(json.loads(m)) for m in clusters.members]
    assert any({source, "planted_mirror", "planted_crop"} <= m for m in members)
    for split in (BASELINE_TRAIN, BASELINE_VAL, WEAK, WEAK_HOLDOUT):
        assert not any(p.stem.startswith("planted") for p in (kedro_project / f"data/03_primary/tiny/{split}/images").iterdir())


def test_frames_that_change_split_between_two_runs_are_named(kedro_project, caplog):
    import logging

    make_dataset(kedro_project)
    run_pipeline(kedro_project, "data_engineering", dataset="tiny")
    with caplog.at_level(logging.WARNING):
        run_pipeline(kedro_project, "data_engineering", dataset="tiny", seed=7)  # another split of the same frames
    moved = [r.getMessage() for r in caplog.records if "changed split since the last data_engineering run" in r.getMessage()]
    assert len(moved) == 1 and "->" in moved[0] and "Models trained on the old splits are refused" in moved[0]
