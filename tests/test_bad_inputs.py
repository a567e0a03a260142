"""Bad inputs: each one gets a clear error naming the file and the problem (or is handled correctly), and
nothing an earlier run wrote changes. The list with the messages is docs/bad_input.md.

Pipelines run in this process on the project's catalog (``run_pipeline``); the few cases that must be
one line on the command line go through the real CLI.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pandas as pd
import pytest

from sewer_segmentation.data.splits import EVAL, SPLITS, check_splits_agree
from sewer_segmentation.errors import BadInputError
from tests.conftest import make_dataset, new_project, project_catalog, run_cli, run_kedro, run_pipeline

SMALL = dict(num_images=20, num_hand_labelled=10, duplicate_fraction=0.0, junk_fraction=0.0)
OUTPUT_LAYERS = ("02_intermediate", "03_primary", "08_reporting")
TRACKING_URI_BEFORE = mlflow.get_tracking_uri()


@pytest.fixture(autouse=True)
def mlflow_left_as_found():
    """Kedro sessions in this process point MLflow at their project: put it back after each test."""
    yield
    assert mlflow.active_run() is None, "a failed run left an MLflow run open"
    mlflow.set_tracking_uri(TRACKING_URI_BEFORE)


@pytest.fixture(scope="module")
def engineered(tmp_path_factory) -> Path:
    """A project whose dataset ``tiny`` went through data_engineering once: the earlier results."""
    project = new_project(tmp_path_factory.mktemp("bad_inputs") / "project")
    make_dataset(project, **SMALL)
    run_pipeline(project, "data_engineering", dataset="tiny")
    return project


@pytest.fixture
def raw(engineered):
    """The raw dataset, restored after the test damaged it."""
    folder = engineered / "data/01_raw/tiny"
    backup = folder.with_name("tiny.backup")
    shutil.copytree(folder, backup, symlinks=True)
    yield folder
    shutil.rmtree(folder)
    backup.rename(folder)


def output_fingerprint(project: Path, dataset: str = "tiny") -> dict[str, str]:
    """Content hash of every file the dataset's runs wrote."""
    files = [p for layer in OUTPUT_LAYERS for p in sorted((project / "data" / layer / dataset).rglob("*")) if p.is_file()]
    return {str(p.relative_to(project)): hashlib.sha1(p.read_bytes()).hexdigest() for p in files}


def _frame(raw: Path, labelled: bool) -> str:
    """A frame name (``frame_00003.jpg``) that has (or has not) polygons in labels.csv."""
    rows = list(csv.DictReader(io.StringIO((raw / "labels.csv").read_text())))
    with_regions = {r["filename"] for r in rows if int(r["region_count"]) > 0}
    names = sorted(p.name for p in (raw / "images").iterdir())
    return next(n for n in names if (n in with_regions) == labelled)


def _png_bytes(array: np.ndarray) -> bytes:
    return cv2.imencode(".png", array)[1].tobytes()


# -- damage functions: each damages the raw dataset and returns (file named, words of the reason) --------


def truncated_image(raw):
    name = _frame(raw, labelled=False)
    path = raw / "images" / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return f"images/{name}", "truncated"


def empty_image(raw):
    name = _frame(raw, labelled=True)
    (raw / "images" / name).write_bytes(b"")
    return f"images/{name}", "empty file"


def not_an_image(raw):
    name = _frame(raw, labelled=False)
    (raw / "images" / name).write_text("<html>404</html>")
    return f"images/{name}", "unreadable image"


def mask_of_wrong_size(raw):
    name = _frame(raw, labelled=False)
    (raw / "masks" / name).write_bytes(_png_bytes(np.zeros((48, 64), np.uint8)))
    return f"masks/{name}", "mask is 64x48 but its image is 128x96"


def malformed_region_json(raw):
    text = (raw / "labels.csv").read_text()
    name = _frame(raw, labelled=True)
    line = next(x for x in text.splitlines() if x.startswith(name + ",") and "polygon" in x)
    (raw / "labels.csv").write_text(text.replace(line, line.replace('"all_points_x"', '"all_points_x', 1)))
    return "labels.csv row", "malformed region JSON"


def path_escape_in_labels(raw):
    with open(raw / "labels.csv", "a") as f:
        f.write('../../etc/passwd,1,{},1,0,"{""name"":""rect"",""x"":1,""y"":1,""width"":5,""height"":5}","{}"\n')
    return "labels.csv row", "escapes the dataset folder"


def link_out_of_the_dataset(raw):
    outside = raw.parent.parent / "outside.jpg"
    name = _frame(raw, labelled=False)
    shutil.copy(raw / "images" / name, outside)
    (raw / "images" / name).unlink()
    (raw / "images" / name).symlink_to(outside)
    return f"images/{name}", "outside the dataset folder"


def huge_frame(raw):
    (raw / "images/huge.png").write_bytes(_png_bytes(np.zeros((10_000, 10_000), np.uint8)))
    return "images/huge.png", "too large (10000x10000 = 100 megapixels); the limit is 89 megapixels"


FILE_CASES = [truncated_image, empty_image, not_an_image, mask_of_wrong_size, malformed_region_json,
              path_escape_in_labels, link_out_of_the_dataset, huge_frame]  # fmt: skip


@pytest.mark.parametrize("damage", FILE_CASES, ids=lambda f: f.__name__)
def test_a_bad_file_stops_the_run_naming_it_and_earlier_results_stay(engineered, raw, damage):
    before = output_fingerprint(engineered)
    named, reason = damage(raw)
    with pytest.raises(Exception) as info:
        run_pipeline(engineered, "data_engineering", dataset="tiny", **{"data_engineering.on_bad_file": "error"})
    message = str(_user_error(info.value))
    assert named in message and reason in message, message
    assert output_fingerprint(engineered) == before


@pytest.mark.parametrize("damage", FILE_CASES, ids=lambda f: f.__name__)
def test_with_skip_a_bad_file_is_left_out_and_listed_with_its_reason(engineered, raw, damage):
    named, reason = damage(raw)
    run_pipeline(engineered, "data_engineering", dataset="tiny")
    excluded = pd.read_csv(engineered / "data/02_intermediate/tiny/excluded_files.csv", dtype=str)
    hits = excluded[excluded.file.str.contains(named, regex=False)]
    assert (hits.reason.str.contains(reason, regex=False)).any(), excluded.to_string()
    manifest = pd.read_csv(engineered / "data/03_primary/tiny/split_manifest.csv", dtype=str)
    assert Path(named).stem not in set(manifest.image_id)
    _assert_consistent(engineered)


def _user_error(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None and not isinstance(exc, BadInputError):
        exc = exc.__cause__
    return exc


# -- inputs that used to be silently wrong ----------------------------------------------------------------


def test_sixteen_bit_frames_keep_their_brightness(engineered, raw):
    name = _frame(raw, labelled=False)
    grey = cv2.imread(str(raw / "images" / name), cv2.IMREAD_GRAYSCALE)
    (raw / "images" / name).write_bytes(_png_bytes(grey.astype(np.uint16) * 257))  # PNG content, .jpg name
    run_pipeline(engineered, "data_engineering", dataset="tiny")
    manifest = pd.read_csv(engineered / "data/03_primary/tiny/split_manifest.csv", dtype=str).set_index("image_id")
    split = manifest.split[Path(name).stem]  # the weak pool, or its held-out share
    written = cv2.imread(str(engineered / f"data/03_primary/tiny/{split}/images/{Path(name).stem}.png"), cv2.IMREAD_GRAYSCALE)
    assert abs(float(written.mean()) - float(grey.mean())) < 1.0, (written.mean(), grey.mean())


def test_masks_stored_as_zero_and_one_are_read_as_boxes(engineered, raw):
    weak_before = _split_sizes(engineered)["weak"]
    for path in (raw / "masks").iterdir():
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        path.write_bytes(_png_bytes((mask >= 128).astype(np.uint8)))
    run_pipeline(engineered, "data_engineering", dataset="tiny")
    assert _split_sizes(engineered)["weak"] == weak_before > 0
    box = cv2.imread(str(next((engineered / "data/03_primary/tiny/weak/box_masks").iterdir())), cv2.IMREAD_GRAYSCALE)
    assert set(np.unique(box)) <= {0, 255} and box.max() == 255


def test_spaces_in_the_names_of_duplicates(engineered, raw):
    # one box-only frame copied under a name with spaces (numeric names: test_datasets_end_to_end.py)
    name = _frame(raw, labelled=False)
    for folder in ("images", "masks"):
        shutil.copy(raw / folder / name, raw / folder / f"copy of {name}")
    run_pipeline(engineered, "data_engineering", dataset="tiny", **{"data_engineering.dedupe.action": "drop"})
    clusters = pd.read_csv(engineered / "data/02_intermediate/tiny/duplicate_clusters.csv", dtype=str)
    members = [json.loads(m) for m in clusters.members]
    assert any(f"copy of {Path(name).stem}" in m and Path(name).stem in m for m in members), clusters
    report = (engineered / "data/08_reporting/tiny/data_report.md").read_text()
    assert f"copy of {Path(name).stem}" in report


def test_too_few_hand_labelled_images_stop_data_engineering(engineered, raw):
    before = output_fingerprint(engineered)
    rows = list(csv.reader(io.StringIO((raw / "labels.csv").read_text())))
    labelled = sorted({r[0] for r in rows[1:] if r[3] != "0"})
    keep = set(labelled[:2])
    out = io.StringIO()
    csv.writer(out).writerows(r for r in rows if r[0] == "filename" or r[3] == "0" or r[0] in keep)
    (raw / "labels.csv").write_text(out.getvalue())
    with pytest.raises(Exception) as info:
        run_pipeline(engineered, "data_engineering", dataset="tiny")
    message = str(_user_error(info.value))
    assert "labels.csv: 2 hand-labelled images" in message and "at least 3" in message
    assert output_fingerprint(engineered) == before


def test_yolo_labels_in_pixels_and_unknown_classes_are_named(tmp_path):
    project = new_project(tmp_path / "project")
    raw = make_dataset(project, "yolo", layout="yolo", **SMALL)
    label = sorted((raw / "labels").iterdir())[0]
    label.write_text("0 64 48 20 10\n")
    other = sorted((raw / "labels").iterdir())[1]
    other.write_text("17 0.5 0.5 0.2 0.2\n")
    with pytest.raises(Exception) as info:
        run_pipeline(project, "data_engineering", dataset="yolo", **{"data_engineering.on_bad_file": "error"})
    message = str(_user_error(info.value))
    assert f"labels/{label.name} line 1: malformed YOLO label: coordinates must be normalized to 0..1" in message
    assert f"labels/{other.name}: class id 17 is not in data.yaml" in message
    assert not (project / "data/03_primary/yolo").exists()


# -- crash consistency -----------------------------------------------------------------------------------


def _split_sizes(project: Path) -> dict[str, int]:
    manifest = pd.read_csv(project / "data/03_primary/tiny/split_manifest.csv", dtype=str)
    return manifest.split.value_counts().to_dict()


def _folders(project: Path) -> dict[str, list[str]]:
    catalog = project_catalog(project, dataset="tiny")
    out = {}
    for split in SPLITS:
        for kind in ("images", "masks", "box_masks"):
            if split in ("weak", "weak_holdout") and kind == "masks":
                continue
            folder = project / f"data/03_primary/tiny/{split}/{kind}"
            out[f"{split}/{kind}"] = list(catalog.load(f"{split}_{kind}")) if folder.is_dir() else []
    return out


def _assert_consistent(project: Path) -> None:
    manifest = pd.read_csv(project / "data/03_primary/tiny/split_manifest.csv", dtype=str)
    check_splits_agree(manifest, _folders(project))


@pytest.mark.parametrize("crash_at_save", [1, 4, 9, 13])  # 13: the last split folder (weak_holdout box masks)
def test_a_crash_between_saves_never_lets_eval_images_be_read_as_training_data(engineered, monkeypatch, crash_at_save):
    """data_engineering with another seed (other splits) stops at its n-th folder save: every reader then
    either refuses the folders or finds them all from one run; the next run puts everything right."""
    from sewer_segmentation.datasets import FolderDataset  # noqa: PLC0415

    original, saves = FolderDataset.save, []

    def crashing_save(self, data):
        saves.append(self._root)
        if len(saves) == crash_at_save:
            raise KeyboardInterrupt("simulated kill")
        return original(self, data)

    monkeypatch.setattr(FolderDataset, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(engineered, "data_engineering", dataset="tiny", seed=1000 + crash_at_save)
    monkeypatch.setattr(FolderDataset, "save", original)

    manifest = pd.read_csv(engineered / "data/03_primary/tiny/split_manifest.csv", dtype=str)
    folders = _folders(engineered)
    try:
        check_splits_agree(manifest, folders)
    except BadInputError as exc:
        assert "Run `kedro run --pipeline=data_engineering` again" in str(exc)
    else:  # accepted: then no eval image is in any other folder
        eval_ids = set(manifest.image_id[manifest.split == EVAL])
        assert all(eval_ids.isdisjoint(ids) for name, ids in folders.items() if not name.startswith(EVAL))
    # the data report is built from the manifest after it is saved: the one on disk describes that manifest
    report = json.loads((engineered / "data/08_reporting/tiny/data_report.json").read_text())
    assert report["split_counts"] == {split: int((manifest.split == split).sum()) for split in SPLITS}

    run_pipeline(engineered, "data_engineering", dataset="tiny", seed=1000 + crash_at_save)
    _assert_consistent(engineered)
    leftovers = [p for p in (engineered / "data/03_primary/tiny").rglob(".*") if p.name.endswith((".tmp", ".old"))]
    assert leftovers == []
    run_pipeline(engineered, "data_engineering", dataset="tiny")  # back to the module's splits


# -- one-line errors on the command line ----------------------------------------------------------------

CLI_CASES = {
    "missing dataset": ("--params=dataset=nope", "data/01_raw/nope/images does not exist"),
    "empty images folder": ("--params=dataset=empty", "data/01_raw/empty/images is empty"),
    "dataset given as a path": ("--params=dataset=../01_raw/tiny", "a dataset is the name of a folder in data/01_raw/"),
    "round not a number": ("--params=dataset=tiny,round:abc", "round='abc': Input should be a valid integer"),
    "round zero": ("--params=dataset=tiny,round:0", "round=0: Input should be greater than or equal to 1"),
    "round negative": ("--params=dataset=tiny,round:-1", "round=-1: Input should be greater than or equal to 1"),
    "batch size zero": ("--params=dataset=tiny,baseline_training.training.batch_size=0", "training.batch_size=0: Input should be greater than or equal to 1"),
    "learning rate not a number": ("--params=dataset=tiny,baseline_training.training.learning_rate=abc",
                                   "baseline_training.training.learning_rate='abc': Input should be a valid number"),  # fmt: skip
    "weight decay not a number": ("--params=dataset=tiny,baseline_training.training.weight_decay=xyz",
                                  "baseline_training.training.weight_decay='xyz': Input should be a valid number"),  # fmt: skip
    "no training steps": ("--params=dataset=tiny,baseline_training.training.steps=0", "training.steps=0: Input should be greater than or equal to 1"),
    "no round steps": ("--params=dataset=tiny,final_training.training_overrides.steps=0", "final_training.training_overrides"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_configuration_errors_are_one_line_before_anything_runs(engineered, case):
    """The project's ``kedro run`` command, invoked in this process (the start-up cost of a new
    interpreter per case is what the subprocess test below pays once)."""
    from click.testing import CliRunner  # noqa: PLC0415

    from sewer_segmentation.cli import run  # noqa: PLC0415

    option, expected = CLI_CASES[case]
    (engineered / "data/01_raw/empty/images").mkdir(parents=True, exist_ok=True)
    before = output_fingerprint(engineered)
    with contextlib.chdir(engineered):
        result = CliRunner().invoke(run, ["--pipeline=baseline", option])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(error_lines) == 1 and expected in error_lines[0], result.output[-1500:]
    assert output_fingerprint(engineered) == before


@pytest.mark.slow
def test_the_real_command_line_prints_one_line_without_a_traceback(engineered):
    result = run_kedro(engineered, "--pipeline=baseline", "--params=dataset=nope")
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output
    assert output.strip().splitlines()[-1].startswith("Error: ConfigurationError: ") and "nope/images does not exist" in output


@pytest.mark.parametrize("folder_state", ["missing", "empty", "no images"])
def test_predicting_a_folder_without_frames_names_the_folder(tmp_path, folder_state):
    from sewer_segmentation.params import PredictParams  # noqa: PLC0415
    from sewer_segmentation.pipelines.predict.nodes import predict_folder  # noqa: PLC0415

    folder = tmp_path / "frames"
    if folder_state != "missing":
        folder.mkdir()
    frames = {"notes.txt": lambda: "text"} if folder_state == "no images" else {}
    with pytest.raises(BadInputError, match=f"{folder}: (does not exist|holds no image files)"):
        predict_folder(None, frames, PredictParams(input_folder=str(folder), models_root="data/06_models"))


def test_a_model_trained_on_other_splits_is_never_refined_from(engineered):
    """data_engineering run again with another seed after the baseline: the baseline's training images
    may be eval images now, so refinement refuses it (and says to train the baseline again)."""
    from types import SimpleNamespace  # noqa: PLC0415

    from sewer_segmentation.data.splits import split_fingerprint  # noqa: PLC0415
    from sewer_segmentation.pipelines.mask_refinement.nodes import refine_weak_pool  # noqa: PLC0415

    manifest = pd.read_csv(engineered / "data/03_primary/tiny/split_manifest.csv", dtype=str)
    weak = {i: None for i in manifest.image_id[manifest.split == "weak"]}
    reshuffled = manifest.assign(split=manifest.split.where(manifest.split == "weak", manifest.split.iloc[::-1].to_numpy()))
    assert split_fingerprint(reshuffled) != split_fingerprint(manifest)
    old_model = SimpleNamespace(metadata={"stage": "baseline", "version": "v1", "split_fingerprint": split_fingerprint(reshuffled)})
    with pytest.raises(BadInputError, match=r"the refining model \(baseline, version v1\) was trained on other splits.*--pipeline=baseline"):
        refine_weak_pool(manifest, old_model, weak, {}, {}, {"batch_size": 2}, None, "local", None, None)


def test_an_empty_split_folder_says_the_last_run_left_it_empty(tmp_path):
    from kedro.io.core import DatasetError  # noqa: PLC0415

    from sewer_segmentation.datasets import FolderDataset  # noqa: PLC0415

    folder = FolderDataset(path=str(tmp_path / "weak/images"), dataset="sewer_segmentation.datasets.ImageDataset",
                           missing_hint="kedro run --pipeline=data_engineering")  # fmt: skip
    with pytest.raises(DatasetError, match="Run `kedro run --pipeline=data_engineering` first"):
        folder.load()
    folder.save({})
    with pytest.raises(DatasetError, match="is empty: the last `kedro run --pipeline=data_engineering` run put no images there"):
        folder.load()


def _kill_when(process, condition, timeout: float = 240) -> bool:
    """SIGKILL ``process`` as soon as ``condition()`` holds; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if condition():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_sigkill_of_data_engineering_leaves_one_consistent_state(tmp_path):
    project = new_project(tmp_path / "project")
    make_dataset(project, **{**SMALL, "num_images": 150, "num_hand_labelled": 60})
    run_pipeline(project, "data_engineering", dataset="tiny")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}

    # data_engineering with other splits, killed right after its first split folder was swapped in
    first = project / "data/03_primary/tiny/baseline_train/images"
    inode = first.stat().st_ino
    process = subprocess.Popen([sys.executable, "-m", "kedro", "run", "--pipeline=data_engineering", "--params=dataset=tiny,seed=5"],
                               cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    assert _kill_when(process, lambda: first.exists() and first.stat().st_ino != inode), "data_engineering ended before the kill"
    with pytest.raises(BadInputError, match="do not match split_manifest.csv"):
        _assert_consistent(project)
    run_pipeline(project, "data_engineering", dataset="tiny", seed=5)
    _assert_consistent(project)
    assert not [p for p in (project / "data").rglob(".*") if p.name.endswith((".tmp", ".old"))]


# -- reliability, round 2: valid datasets are accepted ---------------------------------------------------


def test_box_masks_drawn_in_colour_are_boxes(engineered, raw):
    """Red boxes on black (luminance 76): the strongest channel decides, not the grey."""
    run_pipeline(engineered, "data_engineering", dataset="tiny")  # on the restored dataset: the reference split sizes
    weak_before = _split_sizes(engineered)["weak"]
    for path in sorted((raw / "masks").iterdir()):
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        red = np.zeros((*mask.shape, 3), np.uint8)
        red[..., 2] = mask  # BGR: red channel
        path.write_bytes(_png_bytes(red))
    run_pipeline(engineered, "data_engineering", dataset="tiny")
    assert _split_sizes(engineered)["weak"] == weak_before > 0
    box = cv2.imread(str(next((engineered / "data/03_primary/tiny/weak/box_masks").iterdir())), cv2.IMREAD_GRAYSCALE)
    assert box.max() == 255


def test_two_masks_for_one_frame_are_named_and_the_frame_left_out(engineered, raw):
    name = _frame(raw, labelled=False)
    shutil.copy(raw / "masks" / name, raw / "masks" / f"{Path(name).stem}.png")
    run_pipeline(engineered, "data_engineering", dataset="tiny")
    excluded = pd.read_csv(engineered / "data/02_intermediate/tiny/excluded_files.csv")
    assert any(excluded.file.str.startswith("masks/") & excluded.reason.str.contains(f"a second mask for {Path(name).stem}"))
    manifest = pd.read_csv(engineered / "data/03_primary/tiny/split_manifest.csv", dtype=str)
    assert Path(name).stem not in set(manifest.image_id)


def test_a_dataset_whose_frames_are_all_hand_labelled_trains_a_baseline_and_refine_says_why_not(tmp_path):
    project = new_project(tmp_path / "project")
    raw = make_dataset(project, num_images=16, num_hand_labelled=16, duplicate_fraction=0.0, junk_fraction=0.0)
    with_polygons = {r["filename"] for r in csv.DictReader(io.StringIO((raw / "labels.csv").read_text())) if int(r["region_count"]) > 0}
    for path in [*(raw / "images").iterdir(), *(raw / "masks").iterdir()]:
        if path.name not in with_polygons:
            path.unlink()  # frames without a polygon would be the weak pool
    fast = {"dataset": "tiny", "image_size.height": 64, "image_size.width": 96, "baseline_training.training.steps": 2,
            "baseline_training.training.validations": 1}  # fmt: skip
    run_pipeline(project, "baseline", **fast)
    manifest = pd.read_csv(project / "data/03_primary/tiny/split_manifest.csv", dtype=str)
    assert "weak" not in set(manifest.split) and (project / "data/03_primary/tiny/weak/images").is_dir()
    assert (project / "data/08_reporting/tiny/baseline_metrics.json").is_file()
    with pytest.raises(Exception) as info:
        run_pipeline(project, "mask_refinement", round=1, **fast)
    assert "the weak pool is empty" in str(_user_error(info.value)) and "nothing to refine" in str(_user_error(info.value))


def test_yolo_label_files_in_upper_case_are_read(tmp_path):
    from sewer_segmentation.datasets import RawLabelFiles  # noqa: PLC0415
    from sewer_segmentation.params import DataEngineeringParams  # noqa: PLC0415
    from sewer_segmentation.pipelines.data_engineering.nodes import parse_annotations  # noqa: PLC0415

    (tmp_path / "labels").mkdir()
    (tmp_path / "data.yaml").write_text("names: [crack]\n")
    (tmp_path / "labels/frame_1.TXT").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "labels/frame_2.txt").write_text("0 0.4 0.4 0.1 0.1\n")
    params = DataEngineeringParams(layout="yolo")
    parsed = parse_annotations(RawLabelFiles(tmp_path), params)
    assert sorted(parsed.boxes) == ["frame_1", "frame_2"] and not parsed.problems
    (tmp_path / "labels/frame_1.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    if len(list((tmp_path / "labels").iterdir())) == 3:  # a file system that tells the case of names apart
        clash = parse_annotations(RawLabelFiles(tmp_path), params)
        assert any("a second label file for frame_1" in p["reason"] for p in clash.problems)


def test_labels_csv_names_in_another_unicode_form_or_extension_case_keep_their_polygons(engineered, raw):
    run_pipeline(engineered, "data_engineering", dataset="tiny")  # on the restored dataset: the reference split sizes
    labelled_before = _split_sizes(engineered)
    rows = list(csv.reader(io.StringIO((raw / "labels.csv").read_text())))
    names = sorted({r[0] for r in rows[1:] if r[3] != "0"})
    accented = "frame_é.jpg"  # on disk in NFC; labels.csv in NFD, as macOS writes it
    for folder in ("images", "masks"):
        (raw / folder / names[0]).rename(raw / folder / accented)
    spelled = {names[0]: unicodedata.normalize("NFD", accented), names[1]: names[1].replace(".jpg", ".JPG")}
    out = io.StringIO()
    csv.writer(out).writerows([spelled.get(r[0], r[0]), *r[1:]] for r in rows)
    (raw / "labels.csv").write_text(out.getvalue())
    run_pipeline(engineered, "data_engineering", dataset="tiny")
    manifest = pd.read_csv(engineered / "data/03_primary/tiny/split_manifest.csv", dtype=str)
    by_id = manifest.set_index("image_id")
    assert by_id.loc["frame_é", "split"] != "weak" and by_id.loc[Path(names[1]).stem, "split"] != "weak"
    # as many hand-labelled frames as before (the renamed frame is a new frame to the stable splits: the rule places it)
    after = _split_sizes(engineered)
    labelled = ("baseline_train", "baseline_val", "eval")
    assert sum(after[k] for k in labelled) == sum(labelled_before[k] for k in labelled) and after["weak"] == labelled_before["weak"]


def test_a_labels_csv_name_that_differs_in_case_leaves_the_image_out_not_in_the_weak_pool(engineered, raw):
    rows = list(csv.reader(io.StringIO((raw / "labels.csv").read_text())))
    name = sorted({r[0] for r in rows[1:] if r[3] != "0"})[0]
    out = io.StringIO()
    csv.writer(out).writerows([r[0].upper() if r[0] == name else r[0], *r[1:]] for r in rows)
    (raw / "labels.csv").write_text(out.getvalue())
    run_pipeline(engineered, "data_engineering", dataset="tiny")
    manifest = pd.read_csv(engineered / "data/03_primary/tiny/split_manifest.csv", dtype=str)
    assert Path(name).stem not in set(manifest.image_id)
    excluded = pd.read_csv(engineered / "data/02_intermediate/tiny/excluded_files.csv")
    assert any((excluded.file == f"images/{name}") & excluded.reason.str.contains("the case differs"))


LOCK_HOLDER = """
import sys, time
from sewer_segmentation.io.locks import StageLock
lock = StageLock(sys.argv[1], "tiny", "baseline")
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_run_training_the_same_stage_stops_at_once_naming_the_lock(engineered):
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(engineered / "data/06_models")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = output_fingerprint(engineered)
        start = time.monotonic()
        result = run_cli(engineered, "--pipeline=baseline_training", "--params=dataset=tiny")
        assert result.exit_code != 0 and time.monotonic() - start < 30
        assert "another run is training baseline of dataset tiny" in result.output and f"process {holder.pid}" in result.output
        assert "data/06_models/tiny/.locks/baseline.lock" in result.output and "Traceback" not in result.output
        assert output_fingerprint(engineered) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_polygon_wholly_outside_its_image_leaves_the_image_out_naming_the_row(engineered, raw):
    name = _frame(raw, labelled=True)
    with open(raw / "labels.csv", "a") as f:
        f.write(f'{name},1,{{}},1,0,"{{""name"":""polygon"",""all_points_x"":[5000,5010,5005],""all_points_y"":[1,1,9]}}","{{}}"\n')
    run_pipeline(engineered, "data_engineering", dataset="tiny")
    excluded = pd.read_csv(engineered / "data/02_intermediate/tiny/excluded_files.csv")
    hit = excluded[excluded.file.str.startswith("labels.csv row") & excluded.file.str.contains(name, regex=False)]
    assert any(hit.reason.str.contains("polygon lies wholly outside the")), excluded
    manifest = pd.read_csv(engineered / "data/03_primary/tiny/split_manifest.csv", dtype=str)
    assert Path(name).stem not in set(manifest.image_id)


def test_a_frame_stored_sideways_with_an_exif_orientation_is_turned_as_labelling_tools_show_it():
    from PIL import Image

    from sewer_segmentation.io.imaging import decode_image

    stored = np.zeros((20, 30, 3), np.uint8)
    stored[:10, :15] = (255, 0, 0)  # red top-left quadrant as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the viewer turns it 90 degrees clockwise
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="JPEG", quality=100, subsampling=0, exif=exif)
    shown = decode_image(buffer.getvalue(), "images/sideways.jpg")
    assert shown.shape == (30, 20, 3)
    assert np.abs(shown.astype(int) - np.rot90(stored, k=-1).astype(int)).max() < 40  # red now top-right
    plain = io.BytesIO()
    Image.fromarray(stored).save(plain, format="JPEG", quality=100)
    assert decode_image(plain.getvalue(), "images/upright.jpg").shape == (20, 30, 3)


# -- reliability, round 2: whole-file problems are one line naming the file ------------------------------


def latin1_labels(raw):
    text = (raw / "labels.csv").read_text()
    (raw / "labels.csv").write_bytes((text + 'café.jpg,1,{},0,,,\n').encode("latin-1"))
    return "labels.csv: not UTF-8 text (byte 0xe9 at offset", "save it as UTF-8"


def labels_linked_from_outside(raw):
    outside = raw.parent.parent / "labels_elsewhere.csv"
    shutil.move(raw / "labels.csv", outside)
    (raw / "labels.csv").symlink_to(outside)
    return "labels.csv: a link to", "outside the dataset folder"


@pytest.mark.parametrize("damage", [latin1_labels, labels_linked_from_outside], ids=lambda f: f.__name__)
def test_a_labels_file_that_cannot_be_read_as_given_stops_the_run_naming_it(engineered, raw, damage):
    before = output_fingerprint(engineered)
    named, reason = damage(raw)
    with pytest.raises(Exception) as info:
        run_pipeline(engineered, "data_engineering", dataset="tiny")
    message = str(_user_error(info.value))
    assert named in message and reason in message, message
    assert output_fingerprint(engineered) == before


def test_yaml_aliases_in_data_yaml_are_refused_before_they_expand(tmp_path):
    project = new_project(tmp_path / "project")
    raw = make_dataset(project, "yolo", layout="yolo", **SMALL)
    laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    laughs += [f"{b}: &{b} [{', '.join(['*' + a] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi", strict=True)]
    (raw / "data.yaml").write_text("\n".join(laughs) + "\nnames: *i\n")  # 9**9 strings once expanded
    with pytest.raises(Exception) as info:
        run_pipeline(project, "data_engineering", dataset="yolo")
    assert "data.yaml: YAML aliases (*name) are not accepted" in str(_user_error(info.value))
    assert not (project / "data/03_primary/yolo").exists()


def _label_rows(raw: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO((raw / "labels.csv").read_text())))


def _exclusions_after_writing(project: Path, raw: Path, rows: list[list[str]]) -> tuple[dict, pd.DataFrame]:
    """Write ``rows`` as labels.csv, run data_engineering; the reason per excluded file, and the table."""
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    (raw / "labels.csv").write_text(out.getvalue())
    run_pipeline(project, "data_engineering", dataset="tiny")
    excluded = pd.read_csv(project / "data/02_intermediate/tiny/excluded_files.csv", dtype=str)
    return dict(zip(excluded.file, excluded.reason, strict=True)), excluded


def test_file_names_that_cannot_name_derived_files_and_an_infinite_region_count_are_named(engineered, raw):
    name = _frame(raw, labelled=False)
    long = "x" * 230 + ".jpg"
    for new in ("...jpg", long):
        for folder in ("images", "masks"):
            shutil.copy(raw / folder / name, raw / folder / new)
    rows = _label_rows(raw)
    labelled_row = next(k for k, r in enumerate(rows) if k and r[3] not in ("", "0"))
    rows[labelled_row][3] = "inf"
    reasons, excluded = _exclusions_after_writing(engineered, raw, rows)
    assert "image id '..', which cannot name a file" in reasons["images/...jpg"]
    assert "file name is too long (230 bytes; at most 200" in reasons[f"images/{long}"]
    assert any("malformed region JSON or region_count: cannot convert float infinity" in r for r in excluded.reason)
    manifest = pd.read_csv(engineered / "data/03_primary/tiny/split_manifest.csv", dtype=str)
    assert ".." not in set(manifest.image_id) and "x" * 230 not in set(manifest.image_id)
    _assert_consistent(engineered)


def test_a_frame_labelled_only_with_dropped_classes_is_left_out_not_demoted_to_the_weak_pool(engineered, raw):
    name = _frame(raw, labelled=True)
    rows = _label_rows(raw)
    for row in rows[1:]:
        if row[0] == name:
            row[6] = json.dumps({"class": "Rupture"})  # a class the default filter drops
    reasons, _ = _exclusions_after_writing(engineered, raw, rows)
    assert "hand-labelled only with dropped classes (Rupture); left out" in reasons[f"images/{name}"]
    manifest = pd.read_csv(engineered / "data/03_primary/tiny/split_manifest.csv", dtype=str)
    assert Path(name).stem not in set(manifest.image_id)
