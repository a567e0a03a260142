"""Each pipeline on an in-memory catalog with Kedro's ``SequentialRunner``: no CLI, no files written
after the raw data is read, one chain data_engineering -> baseline_training -> mask_refinement ->
final_training. What each pipeline hands to the next is what the real catalog would hand over."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro.validation.exceptions import ParameterValidationError
from kedro.validation.model_factory import instantiate_model
from kedro.validation.type_extractor import TypeExtractor

from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.files import StagingArea
from sewer_segmentation.modelling.inference import TrainedModel
from sewer_segmentation.modelling.plan import TrainingPlan
from sewer_segmentation.params import plain_params
from sewer_segmentation.pipelines import baseline_training, data_engineering, export_review, final_training, mask_refinement, training_stage
from sewer_segmentation.refinement.masks import RefinedMasks
from tests.conftest import make_dataset, new_project, project_catalog

FAST = {"image_size.height": 64, "image_size.width": 96, "baseline_training.training.steps": 6,
        "baseline_training.training.validations": 2, "final_training.training_overrides.steps": 4}  # fmt: skip
RAW = ("raw_images", "raw_box_masks", "raw_label_files", "raw_ground_truth")


class KeptDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so a test can read intermediate outputs."""

    def _release(self) -> None:
        pass


def parameter(params: dict, name: str):
    value = params
    for part in name.removeprefix("params:").split("."):
        value = value[part]
    return value


def as_partitions(value):
    """Partitioned folders reach nodes as {id: loader}; in memory the producing node returns arrays."""
    if isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
        return {k: (lambda v=v: v) for k, v in value.items()}
    return value


def run_in_memory(pipeline, params: dict, data: dict, keep: tuple[str, ...] = ()) -> dict:
    """Run ``pipeline`` with its inputs from ``data`` (and ``params``, as the models the nodes are typed
    with, found the way Kedro finds them); returns ``keep`` and its free outputs."""
    types = TypeExtractor({"pipeline": pipeline}).extract_types_from_pipelines()

    def typed(name: str):
        key = name.removeprefix("params:")
        return instantiate_model(key, parameter(params, name), types[key]) if key in types else parameter(params, name)

    data = {"refined_masks_staging": StagingArea("unused-by-the-local-engine", versioned=True), **data}
    datasets = {name: MemoryDataset(typed(name)) for name in pipeline.inputs() if name.startswith("params:")}
    datasets.update({name: MemoryDataset(as_partitions(data[name]), copy_mode="assign") for name in pipeline.inputs() if not name.startswith("params:")})
    datasets.update({name: KeptDataset(copy_mode="assign") for name in keep})
    catalog = DataCatalog(datasets=datasets)
    free = SequentialRunner().run(pipeline, catalog)
    return {**{name: catalog.load(name) for name in keep}, **{k: catalog.load(k) if not hasattr(v, "load") else v.load() for k, v in free.items()}}


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """The raw folders of a tiny synthetic dataset, loaded once, and the project's parameters."""
    project = new_project(tmp_path_factory.mktemp("in_memory") / "project")
    make_dataset(project)
    catalog = project_catalog(project, dataset="tiny", **FAST)
    params = plain_params(catalog.load("parameters"))  # Kedro hands typed sections as models: the tests edit dicts
    return {name: catalog.load(name) for name in RAW}, params


SPLIT_FOLDERS = (*(f"{split}_{kind}" for split in ("baseline_train", "baseline_val", "eval") for kind in ("images", "masks", "box_masks")),
                 "weak_images", "weak_box_masks", "weak_holdout_images", "weak_holdout_box_masks")  # fmt: skip


#: What the baseline's in-memory runs keep for the tests and the round after them (the stages gallery reads
#: the baseline's per-frame eval scores).
BASELINE_KEPT = ("baseline.model", "baseline.training_plan", "baseline.eval_per_image")


@pytest.fixture(scope="module")
def engineered(raw):
    data, params = raw
    data = {**data, "previous_split_manifest": None, "raw_metadata": None}  # a first run: no manifest on disk yet
    out = run_in_memory(data_engineering.pipeline.create_pipeline(), params, data, keep=("split_manifest", *SPLIT_FOLDERS))
    return {**data, **out}, params


def test_a_second_data_engineering_run_with_other_fractions_draws_anew_and_with_the_same_keeps_every_split(engineered):
    data, params = engineered
    first = data["split_manifest"]
    assert first.drawn_with.nunique() == 1 and first.drawn_with.iloc[0].startswith(f"seed={params['seed']};")
    pipeline = data_engineering.pipeline.create_pipeline()
    other = {**params, "data_engineering": {**params["data_engineering"], "split": {**params["data_engineering"]["split"], "eval_fraction": 0.3}}}
    redrawn = run_in_memory(pipeline, other, {**data, "previous_split_manifest": first}, keep=("split_manifest",))["split_manifest"]
    assert (redrawn.split == "eval").sum() < (first.split == "eval").sum()
    # back to the first settings, from the redrawn manifest: drawn anew by the first settings, the first splits again
    again = run_in_memory(pipeline, params, {**data, "previous_split_manifest": redrawn}, keep=("split_manifest",))["split_manifest"]
    assert again.set_index("image_id").split.equals(first.set_index("image_id").split)
    kept = run_in_memory(pipeline, params, {**data, "previous_split_manifest": again}, keep=("split_manifest",))["split_manifest"]
    assert kept.set_index("image_id").split.equals(first.set_index("image_id").split)


def test_data_engineering_splits_every_kept_image_once_and_keeps_eval_out_of_training(engineered):
    data, _ = engineered
    manifest = data["split_manifest"]
    assert set(manifest.split) == {"baseline_train", "baseline_val", "eval", "weak", "weak_holdout"}
    for split in ("baseline_train", "baseline_val", "eval", "weak", "weak_holdout"):
        assert sorted(data[f"{split}_images"]) == sorted(manifest.image_id[manifest.split == split])
    labelled = set(manifest.image_id[~manifest.split.isin(["weak", "weak_holdout"])])
    assert set(data["baseline_train_masks"]) | set(data["baseline_val_masks"]) | set(data["eval_masks"]) == labelled
    assert "data_report_md" in data and "| eval |" in data["data_report_md"]


@pytest.fixture(scope="module")
def baseline(engineered):
    data, params = engineered
    out = run_in_memory(baseline_training.pipeline.create_pipeline(), params, data, keep=BASELINE_KEPT)
    return {**data, **out}, params


def test_the_baseline_stage_trains_on_baseline_train_and_reports_eval(baseline):
    data, _ = baseline
    plan, model, metrics = data["baseline.training_plan"], data["baseline.model"], data["baseline.metrics"]
    assert isinstance(plan, TrainingPlan) and plan.stage == "baseline" and plan.initial_state is None
    assert sorted(s.image_id for s in plan.train) == sorted(data["baseline_train_images"])
    assert isinstance(model, TrainedModel) and model.metadata["stage"] == "baseline" and model.metadata["steps"] == 6
    assert metrics["stage"] == "baseline" and metrics["eval_images"] == len(data["eval_images"])
    assert set(metrics["metrics"]) == {"model", "box_mask", "all_background"}
    per_image = metrics["eval_iou_per_image"]  # what a later stage's drop on eval is compared with, image by image
    assert sorted(per_image) == sorted(data["eval_images"])
    assert sum(per_image.values()) / len(per_image) == pytest.approx(metrics["metrics"]["model"]["polygons"]["mean_iou"], abs=1e-4)
    assert data["baseline.learning_curves"].ndim == 3 and data["baseline.prediction_gallery"].ndim == 3
    assert "model.polygons.mean_iou" in data["baseline.mlflow_metrics"]


@pytest.fixture(scope="module")
def refined(baseline):
    data, params = baseline
    data = {**data, "previous_model": data["baseline.model"]}
    out = run_in_memory(mask_refinement.pipeline.create_pipeline(), params, data, keep=("refined_masks", "refinement_failures"))
    return {**data, **out}, params


def test_refinement_makes_a_mask_and_weight_for_every_weak_image(refined):
    data, _ = refined
    masks = data["refined_masks"]
    assert isinstance(masks, RefinedMasks) and masks.ids() == sorted(data["weak_images"])
    first = masks.ids()[0]
    assert masks.mask(first).shape == data["weak_images"][first]().shape[:2] and masks.weights[first]().dtype == np.uint8
    quality = data["refinement_quality"]
    assert quality["used"] in quality["methods"] and data["refinement_failures"].empty
    assert data["refinement_gallery"].ndim == 3


def test_the_review_export_holds_every_refined_frame_most_uncertain_first(refined):
    from sewer_segmentation.data.review import binarize, coco_masks, cvat_polygons, rasterize_polygons  # noqa: PLC0415

    data, params = refined
    sources = {"review_refined_masks": data["refined_masks"], "review_prediction_masks": {}, "review_predictions_table": None, "inference_images": {}}
    out = run_in_memory(export_review.pipeline.create_pipeline(), params, {**data, **sources})
    coco, order = out["review_coco"], out["review_order"]
    assert list(order.image_id) == [Path(i["file_name"]).stem for i in coco["images"]]  # the files follow the review order
    assert sorted(order.image_id) == sorted(data["refined_masks"].masks) and order.review_score.is_monotonic_increasing
    assert set(out["review_images"]) == set(out["review_yolo_labels"]) == set(order.image_id)
    decoded, polygons = coco_masks(coco), cvat_polygons(out["review_cvat"])
    for image_id in order.image_id:
        mask = binarize(data["refined_masks"].mask(image_id), 0.5)
        assert np.array_equal(decoded[f"images/{image_id}.png"], mask)  # RLE: bit for bit
        (height, width), shapes = polygons[f"{image_id}.png"]  # CVAT names frames relative to images/
        drawn = rasterize_polygons(shapes, height, width)
        assert (height, width) == mask.shape and (drawn & mask).sum() >= 0.9 * mask.sum()  # outer contours: holes are not drawn
    assert "names:\n  0: defect" in out["review_yolo_data"]
    assert out["review_gallery"].ndim == 3 and out["review_gallery"].shape[2] == 3


def test_the_round_fine_tunes_the_baseline_on_refined_and_labelled_images(refined):
    data, params = refined
    data = {**data, **round_inputs(data)}
    out = run_in_memory(final_training.pipeline.create_pipeline(), params, data, keep=("round.model", "round.training_plan", "round.metrics"))
    plan, model, metrics = out["round.training_plan"], out["round.model"], out["round.metrics"]
    assert plan.stage == "round_1" and plan.initial_state is not None and plan.starts_from["stage"] == "baseline"
    trained_on = sorted(s.image_id for s in plan.train)
    assert trained_on == sorted([*data["weak_images"], *data["baseline_train_images"]])
    assert not set(trained_on) & set(data["eval_images"])
    assert model.metadata["refined_from"] == "baseline"
    # "improved": the trained weights were handed on and scored above their start on the selection signal
    meta = model.metadata
    assert meta["improved_on_validation"] == (not meta["kept_initial_weights"] and meta["selection_score"] > meta["start_selection_score"])
    assert metrics["round"] == 1 and metrics["refinement"] == data["refinement_quality"] and metrics["stage"] == "round_1"
    assert "| baseline |" in out["rounds_report_md"] and "| round_1 |" in out["rounds_report_md"]
    assert out["stages_gallery"].ndim == 3  # the baseline and round 1 on the same eval frames
    # the box agreement of both stages counts coverage up to the reach measured on baseline_train's boxes
    # (tiny synthetic boxes are tight, some padded: most of the rows and columns), so they compare alike
    baseline_plan = data["baseline.training_plan"]
    assert 0.5 < plan.box_reach <= 1.0 and plan.box_reach == baseline_plan.box_reach
    assert meta["weak_holdout"]["reach"] == data["baseline.model"].metadata["weak_holdout"]["reach"] == plan.box_reach


def round_inputs(data: dict) -> dict:
    """What a round reads besides the splits, as the catalog would give it after the baseline ran."""
    return {"all_stage_metrics": {}, "all_stage_models": {"baseline": lambda: data["baseline.model"]}}


def test_one_stage_definition_serves_the_baseline_and_every_round():
    baseline = baseline_training.pipeline.create_pipeline()
    rounds = final_training.pipeline.create_pipeline()
    template = training_stage.pipeline.create_pipeline("stage")
    for stage, pipeline in (("baseline", baseline), ("round", rounds)):
        names = {n.name for n in pipeline.nodes}
        assert {f"{stage}.{n.name.split('.', 1)[1]}" for n in template.nodes} <= names
        functions = {n.name.split(".", 1)[1]: n.func for n in pipeline.nodes}
        assert all(functions[n.name.split(".", 1)[1]] is n.func for n in template.nodes)


def test_an_eval_image_never_reaches_a_round_s_training(refined):
    """Two ways an eval frame could leak into a round: among its refined masks, or in the weak pool's folder
    (folders of two data_engineering runs mixed, as a kill half-way leaves them). Each stops the round."""
    data, params = refined
    leaked_id = sorted(data["eval_images"])[0]
    leaked = RefinedMasks({**data["refined_masks"].masks, leaked_id: data["eval_masks"][leaked_id]},
                          {**data["refined_masks"].weights, leaked_id: data["eval_masks"][leaked_id]})  # fmt: skip
    plan_only = final_training.pipeline.create_pipeline().only_nodes("round.plan_training")
    with pytest.raises(BadInputError, match=f"the refined masks of this round holds 1 eval images \\({leaked_id}\\)"):
        run_in_memory(plan_only, params, {**data, "refined_masks": leaked})
    weak_folder = {**data["weak_images"], leaked_id: data["eval_images"][leaked_id]}
    with pytest.raises(BadInputError, match=f"do not match split_manifest.csv.*{leaked_id}"):
        run_in_memory(plan_only, params, {**data, "weak_images": weak_folder})



def test_data_engineering_keeps_a_box_list_for_every_weak_frame(engineered):
    data, _ = engineered
    manifest, boxes = data["split_manifest"], data["box_lists"]
    weak = set(manifest.image_id[manifest.split == "weak"])
    assert weak <= set(boxes.image_id) <= set(manifest.image_id)
    sizes = manifest.set_index("image_id")
    for row in boxes.itertuples():
        assert 0 <= row.x0 < row.x1 <= sizes.width[row.image_id] and 0 <= row.y0 < row.y1 <= sizes.height[row.image_id]
    # the boxes drawn again are the weak frame's box mask
    first = sorted(weak)[0]
    drawn = np.zeros_like(data["weak_box_masks"][first]())
    for row in boxes[boxes.image_id == first].itertuples():
        drawn[row.y0 : row.y1, row.x0 : row.x1] = 255
    assert np.array_equal(drawn, data["weak_box_masks"][first]())


def test_joint_training_trains_the_baseline_on_the_weak_boxes_too(engineered):
    data, params = engineered
    joint = {**params, "baseline_training": {**params["baseline_training"], "joint": {"enabled": True, "labelled_share": 0.5}}}
    out = run_in_memory(baseline_training.pipeline.create_pipeline(), joint, data, keep=("baseline.model", "baseline.training_plan", "baseline.eval_per_image"))
    plan, model = out["baseline.training_plan"], out["baseline.model"]
    weak = [s for s in plan.train if s.box_supervised]
    assert sorted(s.image_id for s in weak) == sorted(data["weak_images"]) and all(len(s.boxes) for s in weak)
    assert all(not s.weight.any() for s in weak)  # no mask target: only the box losses teach them
    assert not {s.image_id for s in plan.train} & set(data["eval_images"])
    assert model.metadata["box_supervised_images"] == len(weak) and model.metadata["steps"] == 6


@pytest.mark.parametrize("targets", ["boxes", "both"])
def test_a_round_can_train_the_weak_pool_on_its_boxes(refined, targets):
    data, params = refined
    final = {**params["final_training"], "weak_targets": targets}
    plan_only = final_training.pipeline.create_pipeline().only_nodes("round.plan_training")
    out = run_in_memory(plan_only, {**params, "final_training": final}, data, keep=("round.training_plan",))
    plan = out["round.training_plan"]
    weak = [s for s in plan.train if s.box_supervised]
    assert sorted(s.image_id for s in weak) == sorted(data["weak_images"])
    assert all(s.weight.any() for s in weak) == (targets == "both")  # both: the refined masks' weight maps too
    assert plan.metadata["weak_targets"] == targets


def test_a_model_worse_than_its_box_masks_is_flagged_in_the_log_the_report_and_the_summary(engineered, caplog):
    from sewer_segmentation.reporting.reports import rounds_markdown, summarize_rounds
    from sewer_segmentation.reporting.run_summary import summary_lines

    data, params = engineered
    training = {**params["baseline_training"]["training"], "steps": 2, "validations": 1}
    barely = {**params, "baseline_training": {**params["baseline_training"], "training": training}}
    with caplog.at_level("WARNING"):
        out = run_in_memory(baseline_training.pipeline.create_pipeline(), barely, data)
    metrics = out["baseline.metrics"]
    # two steps from random weights: far below the box masks of the synthetic data (box vs polygon IoU ~0.5)
    assert metrics["box_validation_score"] > 0.3 and metrics["best_validation_score"] < metrics["box_validation_score"]
    assert metrics["below_boxes_on_validation"] is True
    assert "BELOW THE BOX MASKS on validation" in caplog.text
    report = rounds_markdown(summarize_rounds({"baseline": metrics}))
    warnings = report.split("## Warnings", 1)[1].split("\n\n", 2)[1]
    assert "**baseline is worse than the box masks it was given**" in warnings
    summary = "\n".join(summary_lines(["baseline"], "tiny", 1.0, ([], [], []), {"baseline": metrics}, None, None, 1))
    assert "WORSE THAN THE BOX MASKS on validation" in summary and "box supervision" in summary


def test_native_mode_trains_on_crops_and_predicts_every_frame_at_its_own_size(engineered):
    """image_size.mode native through the pipelines: the samples keep the frames' size, eval is predicted
    by tiles at each frame's size, and a round refines with that model and trains on crops too."""
    data, params = engineered
    native = {**params, "image_size": {**params["image_size"], "mode": "native", "tile": {"overlap": 32}}}
    out = run_in_memory(baseline_training.pipeline.create_pipeline(), native, data,
                        keep=("baseline.model", "baseline.training_plan", "baseline.eval_per_image", "baseline.eval_probabilities"))  # fmt: skip
    plan, model = out["baseline.training_plan"], out["baseline.model"]
    assert all(s.image.shape[:2] == data["baseline_train_images"][s.image_id]().shape[:2] for s in plan.train)
    assert all(s.image.shape[:2] == data["baseline_val_images"][s.image_id]().shape[:2] for s in plan.val)
    assert model.image_size == {"height": 64, "width": 96, "mode": "native", "tile": {"overlap": 32}}
    for image_id, probability in out["baseline.eval_probabilities"].items():
        assert probability.shape == data["eval_images"][image_id]().shape[:2]
    data = {**data, **out, "previous_model": model, **round_inputs({**data, **out})}
    refined = run_in_memory(mask_refinement.pipeline.create_pipeline(), native, data, keep=("refined_masks",))
    assert refined["refined_masks"].ids() == sorted(data["weak_images"])
    final = run_in_memory(final_training.pipeline.create_pipeline(), native, {**data, **refined}, keep=("round.model",))
    assert final["round.model"].image_size["mode"] == "native" and final["round.model"].metadata["box_supervised_images"] > 0


@pytest.fixture(scope="module")
def three_validation_images(raw):
    """The tiny dataset split so that validation holds 3 images (as on small real sets)."""
    data, params = raw
    split = {**params["data_engineering"]["split"], "val_fraction": 0.375}
    params = {**params, "data_engineering": {**params["data_engineering"], "split": split}}
    data = {**data, "previous_split_manifest": None, "raw_metadata": None}
    out = run_in_memory(data_engineering.pipeline.create_pipeline(), params, data, keep=("split_manifest", *SPLIT_FOLDERS))
    return {**data, **out}, params


def noise_frames(frames: dict) -> dict:
    """Loaders of noise frames of the same sizes."""
    rng = np.random.default_rng(0)
    noise = {i: rng.integers(0, 256, load().shape, dtype=np.uint8) for i, load in frames.items()}
    return {i: (lambda frame=frame: frame) for i, frame in noise.items()}


def test_weak_holdout_frames_never_train_and_only_score_the_models(three_validation_images):
    """Corrupting every weak_holdout frame changes the box agreement and nothing that was trained or refined."""
    import torch

    data, params = three_validation_images
    manifest = data["split_manifest"]
    assert (manifest.split == "baseline_val").sum() == 3
    held = set(manifest.image_id[manifest.split == "weak_holdout"])
    assert held and sorted(held) == sorted(data["weak_holdout_images"]) and not held & set(data["weak_images"])
    refinement = mask_refinement.pipeline.create_pipeline()
    assert not {name for name in refinement.inputs() if "holdout" in name}  # the holdout is never refined
    by_validation = {**params, "model_selection": {"signal": "validation"}}  # the round's decision alone may read the holdout
    runs = []
    for frames in (data["weak_holdout_images"], noise_frames(data["weak_holdout_images"])):
        run = {**data, "weak_holdout_images": frames}
        base = run_in_memory(baseline_training.pipeline.create_pipeline(), by_validation, run, keep=BASELINE_KEPT)
        run = {**run, **base, "previous_model": base["baseline.model"], **round_inputs(base)}
        refined = run_in_memory(refinement, by_validation, run, keep=("refined_masks",))
        final = run_in_memory(final_training.pipeline.create_pipeline(), by_validation, {**run, **refined},
                              keep=("round.model", "round.training_plan"))  # fmt: skip
        runs.append((base, refined["refined_masks"], final))
    (base_a, refined_a, final_a), (base_b, refined_b, final_b) = runs
    assert not {s.image_id for s in final_a["round.training_plan"].train} & held
    for a, b in ((base_a["baseline.model"], base_b["baseline.model"]), (final_a["round.model"], final_b["round.model"])):
        assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True))
    assert refined_a.ids() == refined_b.ids() == sorted(data["weak_images"])
    assert all(np.array_equal(refined_a.mask(i), refined_b.mask(i)) for i in refined_a.ids())
    agreement_a = base_a["baseline.metrics"]["weak_holdout"]
    assert agreement_a["frames"] == len(held)
    assert agreement_a["box_agreement"] != base_b["baseline.metrics"]["weak_holdout"]["box_agreement"]
    # rounds.md shows both signals for every stage
    stages_table = final_a["rounds_report_md"].split("| stage |", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in stages_table.splitlines() if line.startswith(("| baseline |", "| round_1 |"))]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        validation, agreement, score = float(cells[4]), float(cells[6]), float(cells[7])
        assert 0 <= validation <= 1 and 0 <= agreement <= 1 and score == pytest.approx(validation, abs=5e-4)


# -- a new refinement method and a new raw layout: one file each (tests/toys) and one registration ------


def test_a_toy_refinement_method_is_one_file_and_one_registration(refined, monkeypatch):
    import cv2

    from sewer_segmentation.refinement.registry import REFINEMENT_METHODS
    from tests.toys import shrunk_boxes

    monkeypatch.setitem(REFINEMENT_METHODS, "shrunk_boxes", shrunk_boxes.METHOD)
    data, params = refined
    toy = {**params, "mask_refinement": {**params["mask_refinement"], "method": "shrunk_boxes", "shrunk_boxes": {"margin": 1}}}
    out = run_in_memory(mask_refinement.pipeline.create_pipeline(), toy, data, keep=("refined_masks",))
    masks = out["refined_masks"]
    assert masks.ids() == sorted(data["weak_images"])
    for image_id in masks.ids()[:5]:
        box = (data["weak_box_masks"][image_id]() > 0).astype(np.uint8)
        assert np.array_equal(masks.mask(image_id) > 0.5, cv2.erode(box, np.ones((3, 3), np.uint8)) > 0)
    with pytest.raises(ParameterValidationError, match="shrunk_boxes.margin"):  # its own parameter model checks its section
        run_in_memory(mask_refinement.pipeline.create_pipeline(), {**toy, "mask_refinement": {**toy["mask_refinement"], "shrunk_boxes": {"margin": 0}}}, data)


def test_a_toy_raw_layout_is_one_file_and_one_registration(raw, tmp_path, monkeypatch):
    """The tiny dataset's boxes written as a table (boxes.csv) and its polygons kept (labels.csv), with no
    masks/ folder: the toy layout's boxes become the box masks and the per-box lists."""
    import shutil

    import cv2

    from sewer_segmentation.data.layouts import LAYOUTS
    from sewer_segmentation.datasets import RawLabelFiles
    from sewer_segmentation.io.imaging import image_id_of
    from tests.toys import box_table

    monkeypatch.setitem(LAYOUTS, "box_table", box_table.LAYOUT)
    data, params = raw
    rows = ["image,class,x0,y0,x1,y1"]
    for name, load in sorted(data["raw_box_masks"].items()):
        box = load()
        count, _, stats, _ = cv2.connectedComponentsWithStats((box > 0).astype(np.uint8), connectivity=4)
        h, w = box.shape[:2]
        rows += [f"{name},Deposition,{x / w},{y / h},{(x + bw) / w},{(y + bh) / h}" for x, y, bw, bh, _ in stats[1:count]]
    folder = tmp_path / "raw"
    folder.mkdir()
    shutil.copy(data["raw_label_files"].root / "labels.csv", folder / "labels.csv")
    (folder / "boxes.csv").write_text("\n".join(rows) + "\n")
    toy_data = {**data, "raw_label_files": RawLabelFiles(folder), "raw_box_masks": {}, "previous_split_manifest": None, "raw_metadata": None}
    toy_params = {**params, "data_engineering": {**params["data_engineering"], "layout": "box_table"}}  # auto would pick via (labels.csv)
    out = run_in_memory(data_engineering.pipeline.create_pipeline(), toy_params, toy_data, keep=("split_manifest", "box_lists", "weak_box_masks"))
    manifest, boxes = out["split_manifest"], out["box_lists"]
    weak = sorted(manifest.image_id[manifest.split == "weak"])
    assert weak and set(weak) <= set(boxes.image_id)
    originals = {image_id_of(name): load for name, load in data["raw_box_masks"].items()}
    for image_id in weak[:5]:  # drawn from the table, the box masks are the ones the table was written from
        drawn, original = out["weak_box_masks"][image_id]() > 0, originals[image_id]() > 0
        assert (drawn != original).sum() <= 2 * (original.shape[0] + original.shape[1])  # at most a rounded edge per box
    labelled = manifest[~manifest.split.isin(["weak", "weak_holdout"])]
    assert len(labelled) > 0  # the polygons of labels.csv still make hand-labelled frames


def test_a_coco_dataset_is_read_directly_its_segmentations_hand_labels_and_its_boxes_the_weak_pool(raw, engineered, tmp_path):
    """What a labelling tool exports (or the review export): images/ and coco.json, read by the coco layout."""
    import json  # noqa: PLC0415

    import cv2  # noqa: PLC0415
    from pycocotools import mask as coco_mask  # noqa: PLC0415

    from sewer_segmentation.datasets import RawLabelFiles  # noqa: PLC0415
    from sewer_segmentation.io.imaging import image_id_of  # noqa: PLC0415

    data, params = raw
    labelled = set(engineered[0]["split_manifest"].query("has_polygon").image_id)
    truth = {image_id_of(name): load for name, load in data["raw_ground_truth"].items()}
    images, annotations = [], []
    for number, (name, load) in enumerate(sorted(data["raw_box_masks"].items()), start=1):
        box = load() > 0
        height, width = box.shape
        image_name = next(n for n in data["raw_images"] if image_id_of(n) == image_id_of(name))
        images.append({"id": number, "file_name": f"images/{image_name}", "height": height, "width": width})
        count, _, stats, _ = cv2.connectedComponentsWithStats(box.astype(np.uint8), connectivity=4)
        annotations += [{"id": len(annotations) + i, "image_id": number, "category_id": 1, "bbox": [int(v) for v in s[:4]]}
                        for i, s in enumerate(stats[1:count])]  # fmt: skip
        if image_id_of(name) in labelled:
            rle = coco_mask.encode(np.asfortranarray((truth[image_id_of(name)]() > 0).astype(np.uint8)))
            annotations.append({"id": 10_000 + number, "image_id": number, "category_id": 1, "bbox": [0, 0, 1, 1],
                                "segmentation": {"size": [height, width], "counts": rle["counts"].decode()}})  # fmt: skip
    folder = tmp_path / "coco_raw"
    folder.mkdir()
    (folder / "coco.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "Deposition"}]}))
    coco_data = {**data, "raw_label_files": RawLabelFiles(folder), "raw_box_masks": {}, "previous_split_manifest": None, "raw_metadata": None}
    out = run_in_memory(data_engineering.pipeline.create_pipeline(), params, coco_data, keep=("split_manifest", "eval_masks"))
    manifest = out["split_manifest"]
    assert set(manifest.query("has_polygon").image_id) == labelled  # every segmentation is a hand label, and only they
    assert set(manifest.query("not has_polygon").split) <= {"weak", "weak_holdout"}
    for image_id, load in list(out["eval_masks"].items())[:5]:  # the eval masks are the masks the RLE held
        assert np.array_equal(load() > 0, truth[image_id]() > 0)


def test_the_predict_pipelines_masks_export_like_refined_ones_least_confident_first(refined):
    """export_review.source: predictions: the predict pipeline's table, masks and frames as the same files."""
    import pandas as pd  # noqa: PLC0415

    from sewer_segmentation.data.review import coco_masks  # noqa: PLC0415

    data, params = refined
    names = sorted(data["weak_images"])[:4]
    masks = {}
    for k, name in enumerate(names):
        mask = np.zeros(data["weak_images"][name]().shape[:2], np.uint8)
        mask[5 : 15 + 5 * k, 10:40] = 255 if k != 2 else 0  # the third frame: nothing found
        masks[name] = mask
    table = pd.DataFrame({"image": [f"{n}.jpg" for n in names] + ["notes.txt"], "status": ["ok"] * 4 + ["ignored: not an image file extension"],
                          "mean_confidence": [0.9, 0.6, 0.0, 0.75, None], "regions": [1, 1, 0, 1, None]})  # fmt: skip
    sources = {"review_refined_masks": RefinedMasks(), "review_prediction_masks": masks, "review_predictions_table": table,
               "inference_images": {f"{n}.jpg": data["weak_images"][n] for n in names}}  # fmt: skip
    params = {**params, "export_review": {**params["export_review"], "source": "predictions"}}
    out = run_in_memory(export_review.pipeline.create_pipeline(), params, {**data, **sources})
    order = out["review_order"]
    assert list(order.image_id) == [names[1], names[3], names[0], names[2]]  # least confident first, nothing found last
    decoded = coco_masks(out["review_coco"])
    for name in names:
        assert np.array_equal(decoded[f"images/{name}.png"], masks[name] > 0)
    assert set(out["review_images"]) == set(names)
    # with no predictions, the message names the command that makes them
    empty = {**sources, "review_predictions_table": None}
    with pytest.raises(Exception, match="run `kedro run --pipeline=predict`"):
        run_in_memory(export_review.pipeline.create_pipeline(), params, {**data, **empty})
