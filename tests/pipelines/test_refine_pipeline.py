"""Refinement rounds end to end on a tiny dataset: rounds, versions, crash safety, clear errors."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from sewer_segmentation.datasets import ImageDataset
from sewer_segmentation.io.files import list_versions
from tests.conftest import make_dataset, new_project, run_cli, run_kedro, run_pipeline

pytestmark = pytest.mark.slow

FAST = ("dataset=tiny,image_size.height=64,image_size.width=96,baseline_training.training.steps=8,"
        "baseline_training.training.validations=2,final_training.training_overrides.steps=4")  # fmt: skip


def snapshot(folder):
    """Hash of every file under the round-1 outputs, to prove later runs never touch them."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def round_one_files(project):
    files = {}
    for folder in ("data/04_feature/tiny/hybrid_masks/round_1", "data/06_models/tiny/round_1", "data/06_models/tiny/baseline"):
        files.update({f"{folder}/{k}": v for k, v in snapshot(project / folder).items()})
    return files


def fast(**extra) -> dict:
    """``FAST`` as runtime parameters for ``run_pipeline``, plus ``extra``."""
    return {**{key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in FAST.split(","))}, **extra}


# The tests below share one project, as a user's sessions build on each other: `round_one` is a plain
# `kedro run`, `round_two` adds round 2 to it, and the later tests read what earlier ones wrote (pytest runs
# a module's tests in file order; pytest-xdist's `--dist loadfile` keeps them on one worker). Errors that
# stop a run before it trains run in this process (`run_cli`), without a new interpreter's start-up.


@pytest.fixture(scope="module")
def round_one(tmp_path_factory):
    """A plain `kedro run` (data engineering, baseline and round 1) of a fresh project, from the CLI."""
    project = new_project(tmp_path_factory.mktemp("refine") / "project")
    make_dataset(project)
    result = run_kedro(project, f"--params={FAST}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((project / "data/08_reporting/tiny/round_1_metrics.json").read_text())
    return SimpleNamespace(project=project, result=result, files=round_one_files(project), metrics=metrics)


@pytest.fixture(scope="module")
def round_two(round_one):
    """Round 2 of that project with the `round:2` form and the oracle; round 1's files stay byte-identical."""
    project = round_one.project
    result = run_kedro(project, "--pipeline=refine", f"--params={FAST},round:2,final_training.oracle.enabled:true")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert round_one_files(project) == round_one.files
    return project


def test_refinement_before_anything_ran_names_the_command_to_run_first(kedro_project):
    make_dataset(kedro_project)
    result = run_cli(kedro_project, "--pipeline=refine", f"--params={FAST}")
    assert result.exit_code != 0
    assert "Run `kedro run --pipeline=baseline` first" in result.output  # baseline runs data_engineering too


def test_a_plain_run_logs_plain_lines_and_ends_with_its_summary(round_one):
    result = round_one.result
    log = result.stdout + result.stderr  # no terminal: plain lines of at most 300 characters
    assert max(len(line) for line in log.splitlines()) <= 300
    assert "\x1b[" not in log and "\r" not in log  # no colour codes, no redrawn progress bars
    listed = re.findall(r"^\| `([^`]+)` \|", (Path(__file__).parents[2] / "docs/logging.md").read_text(), flags=re.MULTILINE)
    unlisted = [line for line in log.splitlines() if " WARNING " in line and not any(text in line for text in listed)]
    assert listed and not unlisted, unlisted  # every warning is one docs/logging.md explains
    summary = result.stdout[result.stdout.rindex("Run summary: pipeline __default__, dataset tiny, finished in"):].splitlines()
    assert summary[-1] == "  next: mlflow ui --backend-store-uri sqlite:///mlflow.db"
    assert any(line.startswith("  baseline: eval mean IoU 0.") for line in summary)
    assert any(line.startswith("  round_1: eval mean IoU 0.") for line in summary)
    assert "  reports: data/08_reporting/tiny/data_report.md, data/08_reporting/tiny/rounds.md" in summary
    galleries = next(line for line in summary if line.startswith("  galleries: "))
    assert "data/08_reporting/tiny/stages_gallery.png" in galleries and "data/08_reporting/tiny/baseline_prediction_gallery.png" in galleries
    assert "  next: kedro run --pipeline=refine --params=round:2" in summary


def test_round_one_records_its_refinement_choice(round_one):
    project, metrics = round_one.project, round_one.metrics
    refinement = metrics["refinement"]
    labels = {f"threshold@{t}" for t in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)} | {"seed", "box_prior", "grabcut", "box"}
    assert metrics["round"] == 1 and set(refinement["methods"]) == labels and refinement["used"] in labels
    assert refinement["selection_images"] >= 1 and metrics["refined_from"] == "baseline"
    assert "weak_vs_ground_truth" in refinement["methods"][refinement["used"]]
    # auto takes the best candidate on baseline_val among those that beat the box masks by box_margin
    # standard errors (the box masks always qualify)
    eligible = refinement["eligible"]
    assert "box" in eligible and refinement["used"] == max(eligible, key=lambda k: refinement["methods"][k]["selection_vs_polygons"])
    assert len(list_versions(project / "data/04_feature/tiny/hybrid_masks/round_1")) == 1
    report = (project / "data/08_reporting/tiny/rounds.md").read_text()
    assert "| round_1 |" in report and "| baseline |" in report


def test_registered_best_model_predicts_without_project_code(round_one):
    check_registered_best_model_predicts_without_project_code(round_one.project)


def test_each_stage_has_its_own_run_model_and_metrics(round_one):
    check_each_stage_has_its_own_run_model_and_metrics(round_one.project)


def test_served_model_answers_an_encoded_frame_with_its_mask(round_one):
    check_served_model_answers_an_encoded_frame_with_its_mask(round_one.project)


def test_wrong_rounds_name_the_command_that_makes_them(round_one):
    # a later round before its model exists
    result = run_cli(round_one.project, "--pipeline=refine", f"--params={FAST},round:3")
    assert result.exit_code != 0 and "Run `kedro run --pipeline=refine --params=round:2` first" in result.output
    # the default pipeline is round 1 only (rounds that are not whole numbers: tests/test_bad_inputs.py)
    result = run_cli(round_one.project, f"--params={FAST},round:2")
    assert result.exit_code != 0 and "--pipeline=refine --params=round:N" in result.output


def test_round_two_reports_itself_and_the_oracle(round_two):
    report = (round_two / "data/08_reporting/tiny/rounds.md").read_text()
    assert "| round_2 |" in report and "| round_1 |" in report
    assert "## Oracle" in report and "| round_2 | " in report.split("## Oracle")[1]
    oracle = json.loads((round_two / "data/08_reporting/tiny/round_2_metrics.json").read_text())["oracle"]
    manifest = pd.read_csv(round_two / "data/03_primary/tiny/split_manifest.csv")
    # trained on the true masks of the weak pool and baseline_train, scored on every eval image
    assert oracle["enabled"] and oracle["train_images"] == int(manifest.split.isin(["weak", "baseline_train"]).sum())
    assert oracle["eval"]["images"] == int((manifest.split == "eval").sum())


def test_a_round_killed_midway_leaves_earlier_results_and_reruns(round_one, round_two):
    # SIGKILL in the middle of round 2 (with the `round=2` form), then the same command again.
    project = round_two
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    command = [sys.executable, "-m", "kedro", "run", "--pipeline=refine", f"--params={FAST},round=2"]
    process = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    versions_before = list_versions(project / "data/04_feature/tiny/hybrid_masks/round_2")
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if len(list_versions(project / "data/04_feature/tiny/hybrid_masks/round_2")) > len(versions_before):
            break  # refined masks written: training of the final model is under way
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    models_before = list_versions(project / "data/06_models/tiny/round_2")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert round_one_files(project) == round_one.files
    assert list_versions(project / "data/06_models/tiny/round_2") == models_before  # no half-written model version
    result = run_kedro(project, "--pipeline=refine", f"--params={FAST},round=2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(list_versions(project / "data/06_models/tiny/round_2")) == len(models_before) + 1
    assert round_one_files(project) == round_one.files
    # the killed run's temporary files are gone: the next run of the same round removed them
    assert [p for p in (project / "data").rglob("*") if ".tmp" in p.name or p.name.startswith(".tmp")] == []


def test_predict_pipeline(round_one):
    check_predict_pipeline(round_one.project)


def test_review_export(round_one):  # after test_predict_pipeline: it exports that test's predictions too
    check_review_export(round_one.project)


def test_suggested_labels(round_one):
    check_suggested_labels(round_one.project)


def test_ray_engine_writes_the_bytes_of_the_local_one(round_one, round_two):  # after test_predict_pipeline
    check_ray_engine(round_one.project, round_one.files)


def test_notebook_runs_against_the_project(round_one):
    check_notebook(round_one.project)


def test_refinement_choice_ignores_eval(round_one):  # last: it writes a second version of round 1's refined masks
    check_choice_ignores_eval(round_one.project, round_one.metrics["refinement"])


def check_choice_ignores_eval(project, refinement):
    """Corrupting every eval polygon mask changes nothing about the refinement choice: auto never
    looks at eval. (The eval masks are restored afterwards.)"""
    eval_masks = project / "data/03_primary/tiny/eval/masks"
    saved = {p: p.read_bytes() for p in eval_masks.iterdir()}
    for path in saved:
        mask = ImageDataset(str(path), kind="mask").load()
        ImageDataset(str(path), kind="mask").save(255 - mask)
    run_pipeline(project, "mask_refinement", **fast(round=1))
    again = json.loads((project / "data/08_reporting/tiny/round_1_refinement.json").read_text())
    assert again["used"] == refinement["used"]
    assert {k: v["selection_vs_polygons"] for k, v in again["methods"].items()} == {
        k: v["selection_vs_polygons"] for k, v in refinement["methods"].items()}
    for path, data in saved.items():
        path.write_bytes(data)


def check_review_export(project):
    """export_review through the CLI: round 1's refined masks as one folder a labelling tool uploads."""
    result = run_kedro(project, "--pipeline=export_review", "--params=dataset=tiny,round:1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    review = project / "data/08_reporting/tiny/review/round_1"
    order = pd.read_csv(review / "review_order.csv", dtype={"image_id": str})
    weak = sorted(p.stem for p in (project / "data/03_primary/tiny/weak/images").iterdir())
    assert sorted(order.image_id) == weak and sorted(p.stem for p in (review / "images").iterdir()) == weak
    assert sorted(p.stem for p in (review / "labels").iterdir()) == weak
    coco = json.loads((review / "coco.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == [f"images/{i}.png" for i in order.image_id]
    assert (review / "annotations.xml").read_text().startswith("<?xml") and "names:" in (review / "data.yaml").read_text()

    # the predict pipeline's masks (of `best`, predicted by check_predict_pipeline) export the same way
    result = run_kedro(project, "--pipeline=export_review", "--params=dataset=tiny,export_review.source=predictions,predict_model=best")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (predictions,) = (project / "data/08_reporting/tiny/review/predictions/best").glob("inference-*")
    (predicted,) = (project / "data/07_model_output/tiny/predictions/best").glob("inference-*")
    table = pd.read_csv(predicted / "predictions.csv")
    order = pd.read_csv(predictions / "review_order.csv", dtype={"image_id": str})
    assert sorted(order.image_id) == sorted(Path(i).stem for i in table.image[table.status == "ok"]) and (predictions / "coco.json").is_file()


def check_suggested_labels(project):
    """suggest_labels through the CLI: exactly `budget` weak frames, no two of one near-duplicate cluster,
    with the gallery and the labelling tools' files of exactly those frames."""
    result = run_kedro(project, "--pipeline=suggest_labels", "--params=dataset=tiny,round:1,suggest.budget:3")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder = project / "data/08_reporting/tiny/suggestions/round_1"
    chosen = pd.read_csv(folder / "next_to_label.csv", dtype={"frame": str})
    manifest = pd.read_csv(project / "data/03_primary/tiny/split_manifest.csv", dtype={"image_id": str}).set_index("image_id")
    assert list(chosen.columns) == ["frame", "score", "reason"] and len(chosen) == 3
    assert set(manifest.loc[chosen.frame, "split"]) == {"weak"} and manifest.loc[chosen.frame, "cluster_id"].nunique() == 3
    coco = json.loads((folder / "coco.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == [f"images/{f}.png" for f in chosen.frame]
    assert sorted(p.stem for p in (folder / "images").iterdir()) == sorted(chosen.frame) and (folder / "suggestions_gallery.png").is_file()


def check_predict_pipeline(project):
    """predict: sample frames generated, masks at each frame's own size, overlays, CSV, bad files listed."""
    result = run_kedro(project, "--pipeline=predict", "--params=dataset=tiny,predict_model=baseline")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    samples = sorted((project / "data/01_raw/inference").iterdir())
    assert len(samples) >= 8 and {p.suffix for p in samples} == {".jpg", ".png"}
    (out,) = (project / "data/07_model_output/tiny/predictions/baseline").glob("inference-*")  # one folder of frames
    table = pd.read_csv(out / "predictions.csv")
    assert list(table.columns) == ["image", "status", "width", "height", "defect_area_fraction", "mean_confidence", "regions", "boxes"]
    assert (table.status == "ok").all() and len(table) == len(samples)
    for row in table.itertuples():
        mask = ImageDataset(str(out / "masks" / (Path(row.image).stem + ".png")), kind="mask").load()
        assert mask.shape == (row.height, row.width) and set(np.unique(mask)) <= {0, 255}
        assert row.defect_area_fraction == pytest.approx((mask > 0).mean(), abs=1e-5)
        assert (out / "overlays" / (Path(row.image).stem + ".png")).is_file()

    (project / "data/01_raw/inference/broken.png").write_bytes(b"not a png")
    runs = mlflow_runs(project)
    run_id = runs[runs["tags.pipeline"] == "__default__"].iloc[0]["run_id"]
    for choice, folder in ((run_id, run_id), ("best", "best")):  # a round number: tests/pipelines/predict/test_predict.py
        result = run_kedro(project, "--pipeline=predict", f"--params=dataset=tiny,predict_model={choice}")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        (table_file,) = (project / f"data/07_model_output/tiny/predictions/{folder}").glob("inference-*/predictions.csv")
        table = pd.read_csv(table_file)
        assert table.set_index("image").loc["broken.png", "status"].startswith("unreadable")
        assert (table.status == "ok").sum() == len(samples)
    result = run_kedro(project, "--pipeline=predict", "--params=dataset=tiny,predict_model=7")
    assert result.returncode != 0 and "kedro run --pipeline=refine --params=round:7" in result.stdout + result.stderr
    # Predictions are runs of their own experiment (finished ones with their table, the failed one marked
    # so); the training experiment gained none.
    import mlflow

    predictions = mlflow.search_runs(experiment_names=["sewer_segmentation-tiny-predictions"])
    assert sorted(predictions.status) == ["FAILED"] + ["FINISHED"] * 3
    assert sorted(predictions.loc[predictions.status == "FINISHED", "metrics.frames_skipped"]) == [0, 1, 1]
    assert not any(str(folder).startswith("/") for folder in predictions["params.input_folder"])  # relative, no home folders
    assert set(predictions["tags.mlflow.user"]) == {""}
    assert len(mlflow_runs(project)) == len(runs) and "predict" not in set(runs["tags.pipeline"])


def mlflow_runs(project):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=["sewer_segmentation-tiny"])


def check_notebook(project):
    """The exploration notebook runs top to bottom against this project's outputs."""
    import nbformat
    from nbclient import NotebookClient

    from tests.conftest import REPO

    globals_file = project / "conf/base/globals.yml"
    globals_file.write_text(globals_file.read_text().replace("dataset: synthetic", "dataset: tiny"))
    (project / "notebooks").mkdir(exist_ok=True)
    notebook = nbformat.read(REPO / "notebooks/exploration.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(project / "notebooks")}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum(1 for o in outputs if "image/jpeg" in o.get("data", {})) >= 4  # the figures were drawn
    text = "".join(o.get("text", "") for o in outputs)
    assert "dataset: tiny" in text and re.search(r"round 1: \d+ refined masks", text)  # the catalog's round (globals: 1)


def check_ray_engine(project, round_1):
    """engine: ray refines round 3 and predicts a folder with the same bytes as the local engine, from the
    command line (``--params=engine=ray``) and in this process."""
    root = project / "data/04_feature/tiny/hybrid_masks/round_3"
    for engine in ("local", "ray"):
        run_pipeline(project, "mask_refinement", **fast(round=3, engine=engine, **{"ray.refine_batch_size": 4}))
    local, ray = list_versions(root)[-2:]
    assert snapshot(root / ray) == snapshot(root / local) and len(snapshot(root / local)) > 10
    assert round_one_files(project) == round_1

    (out,) = (project / "data/07_model_output/tiny/predictions/best").glob("inference-*")
    before = snapshot(out)  # the local engine's run of check_predict_pipeline, broken.png included
    result = run_kedro(project, "--pipeline=predict", "--params=dataset=tiny,predict_model=best,engine=ray")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert snapshot(out) == before and len(before) > 10
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging folder left


PYFUNC_SCRIPT = """
import sys
sys.modules["sewer_segmentation"] = None  # importing any project code would fail
import cv2, mlflow, numpy as np
mlflow.set_tracking_uri("sqlite:///mlflow.db")
model = mlflow.pyfunc.load_model("models:/sewer-segmentation-tiny@best")
frame = cv2.cvtColor(cv2.imread(sys.argv[1]), cv2.COLOR_BGR2RGB)
np.save(sys.argv[2], model.predict(frame[None]))
"""


def check_registered_best_model_predicts_without_project_code(project):
    """``models:/sewer-segmentation-<dataset>@best`` is the newest stage, loads as a pyfunc
    model in a process that cannot import the project, and predicts what the project predicts."""
    import mlflow

    from sewer_segmentation.datasets import SegmentationModelDataset
    from sewer_segmentation.io.imaging import decode_image
    from sewer_segmentation.io.stages import best_stage, saved_stages
    from sewer_segmentation.modelling.inference import predict_probabilities

    frame_path = sorted((project / "data/01_raw/tiny/images").iterdir())[0]
    out = project / "pyfunc_prediction.npy"
    result = subprocess.run([sys.executable, "-c", PYFUNC_SCRIPT, str(frame_path), str(out)], cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    served = np.load(out)

    saved = saved_stages(project / "data/06_models/tiny")
    best = best_stage(saved)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    version = client.get_model_version_by_alias("sewer-segmentation-tiny", "best")
    assert version.tags["stage"] == best and version.tags["model_version"] == saved[best].name
    assert {a for a in client.get_registered_model("sewer-segmentation-tiny").aliases} >= {"baseline", "round_1", "best"}

    trained = SegmentationModelDataset(path=str(saved[best].parent)).load()
    frame = decode_image(frame_path.read_bytes())
    expected = predict_probabilities(trained.model, [frame], trained.model_config, trained.image_size, precision="32")[0]
    assert served.shape == (1, *frame.shape[:2])
    assert np.abs(served[0] - expected).max() < 1e-3


def check_each_stage_has_its_own_run_model_and_metrics(project):
    """Each stage's model is logged in that stage's child run, with its params; MLflow links to it that
    stage's eval metrics only; the registered version links to the child run and describes it; MLflow
    holds no second copy of the weights (safetensors stay in data/06_models)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow_runs(project)
    parent = runs[runs["tags.pipeline"] == "__default__"].iloc[0]
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"]]
    assert sorted(children["tags.stage"]) == ["baseline", "round_1"]
    experiment = client.get_experiment_by_name("sewer_segmentation-tiny").experiment_id
    models = client.search_logged_models([experiment])
    assert not [m for m in models if m.source_run_id == parent["run_id"]]  # the pipeline's run holds no model
    for _, child in children.iterrows():
        stage = child["tags.stage"]
        run = client.get_run(child.run_id)
        assert run.data.params["training.steps"] in {"8", "4"} and run.data.params["train_images"].isdigit()
        assert len(client.get_metric_history(child.run_id, "train_loss")) >= 1  # its own training curve
        (model,) = [m for m in models if m.source_run_id == child.run_id]
        linked = {m.key for m in model.metrics}
        assert "eval.model.polygons.mean_iou" in linked, linked
        assert not [k for k in linked if k.startswith(("refinement.", "baseline.", "round_"))], linked  # nothing of another stage
        (version,) = client.search_model_versions(f"run_id = '{child.run_id}'")
        assert version.tags["stage"] == stage and "eval mean IoU" in version.description and "trained on" in version.description
    assert not list((project / "mlruns").rglob("*.safetensors"))


def check_served_model_answers_an_encoded_frame_with_its_mask(project):
    """``mlflow models serve`` of ``@best`` on 127.0.0.1 takes base64 PNG frames of different sizes in one
    request, with a threshold parameter, and answers each with a PNG mask of that frame's size."""
    import base64
    import socket
    import urllib.request

    import cv2

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/sewer-segmentation-tiny@best", "--env-manager", "local",
               "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    server = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        frames = [np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in ((70, 90), (120, 100))]
        encoded = [base64.b64encode(cv2.imencode(".png", f)[1].tobytes()).decode() for f in frames]
        body = json.dumps({"dataframe_records": [{"image": e} for e in encoded], "params": {"threshold": 0.0}}).encode()
        answer = None
        for _ in range(120):  # the server takes a few seconds to start
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"})
                answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-3000:]
                time.sleep(1)
        assert answer is not None, "the model server never answered"
        rows = answer["predictions"]
        for frame, row in zip(frames, rows, strict=True):
            mask = cv2.imdecode(np.frombuffer(base64.b64decode(row["mask"]), np.uint8), cv2.IMREAD_UNCHANGED)
            assert mask.shape == frame.shape[:2] == (row["height"], row["width"])
            assert set(np.unique(mask)) == {255} and row["defect_share"] == 1.0  # threshold 0: every pixel
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
